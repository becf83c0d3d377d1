//! Every input a fuzz target found a problem with (fuzz/regressions/TARGET/*), replayed through
//! the same calls as the target, for the fixes crate's targets.

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
fn fixes_crash_text_regressions() {
    let all = inputs("fixes_crash_text");
    assert!(
        !all.is_empty(),
        "fuzz/regressions/fixes_crash_text holds the caller-id panic"
    );
    for (p, data) in &all {
        let text = String::from_utf8_lossy(data);
        let q = kmortem_fixes::CrashQuery::light(&text);
        let _ = q.key_frames();
        let _ = kmortem_fixes::CrashQuery::from_text(&text);
        let _ = kmortem_fixes::extract::split_report(&text);
        let _ = kmortem_fixes::extract::idents_in_text(&text);
        let _ = kmortem_fixes::extract::kinds_in_text(&text);
        #[cfg(feature = "git")]
        let _ = kmortem_fixes::git::function_header(data);
        println!(
            "fixes_crash_text: {} ({} bytes): no panic",
            p.display(),
            data.len()
        );
    }
}
