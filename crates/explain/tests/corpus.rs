//! `explain` on syzkaller's real console logs (../shared/corpus, no debug info for them): it must
//! never panic, every finding must carry evidence, and a `high` finding must agree with the
//! report's own title.

use kmortem_explain::{Confidence, Context};
use kmortem_symbols::Symbolizer;
use std::collections::BTreeMap;

#[test]
fn corpus_never_panics_and_stays_honest() {
    let dir = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/syzkaller/report"
    ));
    assert!(dir.is_dir(), "../shared corpus missing: {}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let (mut reports, mut with) = (0, 0);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for p in &files {
        let raw = std::fs::read(p).expect("read");
        let mut raw: Vec<u8> = raw.into_iter().filter(|&b| b != b'\r').collect();
        // Header `KEY: value` lines up to the first empty line.
        if let Some(i) = raw.windows(2).position(|w| w == b"\n\n") {
            raw.drain(..i + 2);
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut sym = Symbolizer::new();
        for r in kmortem_oops::parse(&raw) {
            reports += 1;
            let mut ctx = Context {
                sym: &mut sym,
                source: None,
                log: Some(&text),
                program: None,
            };
            let fs = kmortem_explain::explain(&r, &mut ctx);
            if !fs.is_empty() {
                with += 1;
            }
            for f in &fs {
                *kinds.entry(f.kind.clone()).or_default() += 1;
                assert!(!f.evidence.is_empty(), "{}: {f:?}", p.display());
                if f.confidence == Confidence::High && f.kind == "list_corruption" {
                    let t = r.title.to_ascii_lowercase();
                    assert!(
                        t.contains("list") || t.contains("corrupt"),
                        "{}: high list finding under title {:?}",
                        p.display(),
                        r.title
                    );
                }
                // Without debug info nothing about variables can be high.
                if f.kind == "bad_pointer" {
                    assert!(f.confidence <= Confidence::Medium, "{}: {f:?}", p.display());
                    assert!(f.summary.contains("variable is unknown"), "{}", f.summary);
                }
            }
        }
    }
    println!(
        "explain over {} corpus files: {reports} reports, {with} with findings (no debug info); kinds: {kinds:?}",
        files.len()
    );
    assert!(reports > 100);
    assert!(kinds.get("bad_pointer").copied().unwrap_or(0) > 5);
}
