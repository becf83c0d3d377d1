//! syzkaller's guilty-file corpus (`../shared/corpus/syzkaller/guilty/`): symbolised reports
//! with `FILE:` = the source file to blame (syzkaller's `extractGuiltyFile`, ported in
//! `src/syz/guilty.rs`). Prints the agreement; bar 95%.

use std::path::PathBuf;

#[test]
fn guilty_file_agreement() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/syzkaller/guilty"
    ));
    assert!(
        dir.is_dir(),
        "the shared corpus is missing: expected {}",
        dir.display()
    );
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let (mut n, mut ok) = (0, 0);
    for p in &paths {
        let raw: Vec<u8> = std::fs::read(p)
            .unwrap()
            .into_iter()
            .filter(|&b| b != b'\r')
            .collect();
        let split = raw
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(raw.len(), |i| i + 2);
        let head = String::from_utf8_lossy(&raw[..split]);
        let Some(want) = head
            .lines()
            .find_map(|l| l.strip_prefix("FILE:"))
            .map(|s| s.trim().to_string())
        else {
            continue;
        };
        n += 1;
        let reports = kmortem_oops::parse(&raw[split..]);
        let got = reports.first().and_then(|r| r.guilty_file.clone());
        // `FILE:` empty: syzkaller finds no file to blame.
        if got.as_deref() == Some(want.as_str()) || (want.is_empty() && got.is_none()) {
            ok += 1;
        } else {
            println!(
                "GUILTY MISMATCH {}: expected {want}, got {got:?}",
                p.file_name().unwrap().to_string_lossy()
            );
        }
    }
    let pct = 100.0 * ok as f64 / n.max(1) as f64;
    println!("guilty file: {ok}/{n} = {pct:.1}% (bar 95%)");
    assert!(
        n > 0 && pct >= 95.0,
        "guilty-file agreement {pct:.1}% below 95%"
    );
}
