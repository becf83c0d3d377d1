//! Every input a fuzz target found a problem with (fuzz/regressions/TARGET/*), replayed through
//! the target's entry point, for the dump crate's targets. A hang is a failure too: each input
//! runs on a thread that must finish within a minute (the bug it pins looped for minutes; a
//! fixed build takes milliseconds).

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn dump_open_regressions() {
    let all = inputs("dump_open");
    assert!(
        !all.is_empty(),
        "fuzz/regressions/dump_open holds the PT_LOAD overlap timeout"
    );
    for (p, data) in all {
        let (tx, rx) = std::sync::mpsc::channel();
        let t0 = std::time::Instant::now();
        std::thread::spawn(move || {
            kmortem_dump::fuzz_open(&data);
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{}: still running after 60 s", p.display()));
        println!("dump_open: {}: done in {:?}", p.display(), t0.elapsed());
    }
}
