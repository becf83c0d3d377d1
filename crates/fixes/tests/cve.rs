//! End-to-end tests over the real CVE records in `../shared/data/kernel-vulns`: full import, the
//! seeds, verdicts, incremental re-import, and the recall evaluation.

use kmortem_fixes::eval::{cases, Case};
use kmortem_fixes::record::cve_record;
use kmortem_fixes::{identify_kernel, CrashQuery, FixIndex, ImportOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn shared() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    assert!(
        p.join("data/kernel-vulns/cve/published").is_dir(),
        "../shared/data/kernel-vulns is missing (expected at {}): the tests read the CVE records from there",
        p.display()
    );
    p
}

fn vulns() -> PathBuf {
    shared().join("data/kernel-vulns")
}

/// The full index (built once per test binary), and the one with quoted traces withheld.
fn full() -> &'static (tempfile::TempDir, f64) {
    static FULL: OnceLock<(tempfile::TempDir, f64)> = OnceLock::new();
    FULL.get_or_init(|| build(false))
}
fn withheld() -> &'static (tempfile::TempDir, f64) {
    static W: OnceLock<(tempfile::TempDir, f64)> = OnceLock::new();
    W.get_or_init(|| build(true))
}

fn build(withhold: bool) -> (tempfile::TempDir, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut ix = FixIndex::open_or_create(dir.path()).unwrap();
    let stats = ix
        .import_cves(
            &vulns(),
            ImportOptions {
                withhold_traces: withhold,
            },
        )
        .unwrap();
    println!(
        "import (withhold_traces={withhold}): {} records, {} added, {} skipped, {:.2}s, index {:.1} MiB",
        stats.scanned,
        stats.added,
        stats.skipped.len(),
        stats.seconds,
        ix.disk_size() as f64 / 1048576.0
    );
    assert!(
        stats.scanned >= 14_000,
        "expected the 14,626 records, scanned {}",
        stats.scanned
    );
    assert_eq!(stats.added + stats.skipped.len(), stats.scanned);
    assert!(
        stats.skipped.len() < 20,
        "too many unreadable records: {:?}",
        &stats.skipped[..stats.skipped.len().min(5)]
    );
    (dir, stats.seconds)
}

fn seed(prefix: &str) -> String {
    let dir = shared().join("seeds");
    let ent = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("seed {prefix} missing in {}", dir.display()));
    std::fs::read_to_string(ent.path()).unwrap()
}

#[test]
fn seed_002_kyber_ranks_cve_2021_46984_first_and_5_12_is_affected() {
    let ix = FixIndex::open(full().0.path()).unwrap();
    let mut q = CrashQuery::from_text(&seed("002"));
    assert!(
        q.key_frames().contains(&"kyber_bio_merge"),
        "frames: {:?}",
        q.key_frames()
    );
    q.kernel = Some(identify_kernel("5.12.0", None));
    let c = ix.search(&q, 5).unwrap();
    for (i, x) in c.iter().enumerate() {
        println!(
            "seed 002 #{}: {:?} {} {:.2} {:?}",
            i + 1,
            x.cve,
            x.subject,
            x.score,
            x.verdict.as_ref().map(|v| &v.status)
        );
    }
    assert_eq!(c[0].cve.as_deref(), Some("CVE-2021-46984"));
    assert_eq!(
        c[0].commits,
        vec!["efed9a3337e341bd0989161b97453b52567bc59d".to_string()]
    );
    let v = c[0].verdict.as_ref().unwrap();
    assert_eq!(v.status, "affected");
    // The record (dyad line `4.18:a608..:5.12.5:2ef3..`) says 5.12.5, not the 5.12.9 of the issue text.
    assert_eq!(v.fixed_in.as_deref(), Some("5.12.5"));
    assert!(c[0]
        .evidence
        .iter()
        .any(|e| e.kind == "trace" && e.matched.iter().any(|m| m == "kyber_bio_merge")));
    // Same crash on 5.12.5 and 5.13: fixed; on RHEL-like release strings: unknown.
    for (k, want) in [
        ("5.12.5", "fixed"),
        ("5.13", "fixed"),
        ("4.17.1", "not affected"),
        ("4.18.0-305.el8.x86_64", "unknown"),
    ] {
        q.kernel = Some(identify_kernel(k, None));
        let c = ix.search(&q, 1).unwrap();
        assert_eq!(c[0].verdict.as_ref().unwrap().status, want, "kernel {k}");
    }
}

#[test]
fn seeds_000_and_004_report_what_ranks() {
    // Neither fix (f6783319737f, 2c51a97f76d2) has a CVE record in this data; the test pins that
    // the query runs, finds the frames, and that the verdict for seed 004's RHEL kernel is unknown.
    let ix = FixIndex::open(full().0.path()).unwrap();
    for (s, frame) in [("000", "enqueue_entity"), ("004", "cascade")] {
        let q = CrashQuery::from_text(&seed(s));
        assert!(
            q.frames.iter().any(|f| f.function == frame),
            "seed {s}: {:?}",
            q.frames
        );
        let c = ix.search(&q, 5).unwrap();
        for (i, x) in c.iter().enumerate() {
            println!(
                "seed {s} #{}: {:?} {:?} {} {:.2}",
                i + 1,
                x.cve,
                x.commits.first(),
                x.subject,
                x.score
            );
        }
        if s == "004" {
            let k = q.kernel.as_ref().expect("seed 004 has a CPU line");
            assert_eq!(k.base.as_deref(), Some("3.10.0"));
            assert!(c
                .iter()
                .all(|x| x.verdict.as_ref().is_none_or(|v| v.status == "unknown")));
        }
    }
}

#[test]
fn reimport_only_does_what_changed() {
    // A small copy of three records: import, touch one, delete one, re-import.
    let src = vulns().join("cve/published/2021");
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("cve/published/2021");
    std::fs::create_dir_all(&dst).unwrap();
    for id in ["CVE-2021-46984", "CVE-2021-46985", "CVE-2021-46986"] {
        for ext in ["json", "sha1", "dyad"] {
            let from = src.join(format!("{id}.{ext}"));
            if from.exists() {
                std::fs::copy(&from, dst.join(format!("{id}.{ext}"))).unwrap();
            }
        }
    }
    let home = tempfile::tempdir().unwrap();
    let mut ix = FixIndex::open_or_create(home.path()).unwrap();
    let s1 = ix
        .import_cves(tmp.path(), ImportOptions::default())
        .unwrap();
    assert_eq!((s1.added, s1.updated, s1.removed), (3, 0, 0));
    let s2 = ix
        .import_cves(tmp.path(), ImportOptions::default())
        .unwrap();
    assert_eq!(
        (s2.added, s2.updated, s2.removed, s2.unchanged),
        (0, 0, 0, 3)
    );
    // Change one dyad (append a line), remove another record.
    let dy = dst.join("CVE-2021-46984.dyad");
    let mut text = std::fs::read_to_string(&dy).unwrap();
    text.push_str("5.12:a6088845c2bf754d6cb2572b484180680b037804:5.12.99:2ef3c76540c49167a0bc3d5f80d00fd1fc4586df\n");
    std::fs::write(&dy, text).unwrap();
    for ext in ["json", "sha1", "dyad"] {
        let _ = std::fs::remove_file(dst.join(format!("CVE-2021-46986.{ext}")));
    }
    let mut ix = FixIndex::open_or_create(home.path()).unwrap();
    let s3 = ix
        .import_cves(tmp.path(), ImportOptions::default())
        .unwrap();
    assert_eq!(
        (s3.added, s3.updated, s3.removed, s3.unchanged),
        (0, 1, 1, 1)
    );
    assert_eq!(ix.len(), 2);
    let e = ix.get("CVE-2021-46984").unwrap().unwrap();
    assert!(e
        .ranges
        .iter()
        .any(|r| r.fixed.as_deref() == Some("5.12.99")));
    assert!(ix.get("CVE-2021-46986").unwrap().is_none());
}

#[test]
fn dyad_semantics_on_real_records() {
    // CVE-2021-46984: mainline fix 5.13, stable fixes per branch, introduced in 4.18.
    let dir = vulns().join("cve/published/2021");
    let rec = |id: &str| {
        let json = std::fs::read(dir.join(format!("{id}.json"))).unwrap();
        let sha1 = std::fs::read_to_string(dir.join(format!("{id}.sha1"))).ok();
        let dyad = std::fs::read_to_string(dir.join(format!("{id}.dyad"))).ok();
        cve_record(&json, sha1.as_deref(), dyad.as_deref(), false)
            .unwrap()
            .entry
    };
    let e = rec("CVE-2021-46984");
    assert_eq!(e.subject, "kyber: fix out of bounds access when preempted");
    assert_eq!(e.ranges.len(), 5);
    assert!(e
        .ranges
        .iter()
        .all(|r| r.introduced.as_deref() == Some("4.18")));
    assert!(e.ranges.iter().any(|r| r.fixed.as_deref() == Some("5.13")));
    assert!(e.files.contains(&"block/kyber-iosched.c".to_string()));
    assert!(
        e.trace
            .starts_with(&["dump_stack".to_string(), "ubsan_epilogue".to_string()])
            || e.trace.contains(&"kyber_bio_merge".to_string())
    );
    assert!(e.kinds.contains(&"out-of-bounds".to_string()));
    // A record whose dyad has unknown intro (`0:0:5.18.3:...`).
    let d = vulns().join("cve/published/2022");
    let json = std::fs::read(d.join("CVE-2022-49420.json")).unwrap();
    let dyad = std::fs::read_to_string(d.join("CVE-2022-49420.dyad")).unwrap();
    let e = cve_record(&json, None, Some(&dyad), false).unwrap().entry;
    assert!(e.ranges.iter().all(|r| r.introduced.is_none()));
    let v = kmortem_fixes::verdict(&identify_kernel("5.18.1", None), &e.ranges);
    assert_eq!(
        (v.status.as_str(), v.fixed_in.as_deref()),
        ("affected", Some("5.18.3"))
    );
}

// ---- Evaluation -----------------------------------------------------------------------------

fn recall(home: &Path, cases: &[Case]) -> (f64, f64, usize) {
    let ix = FixIndex::open(home).unwrap();
    let (mut r1, mut r5) = (0usize, 0usize);
    for c in cases {
        let q = CrashQuery::from_text(&c.log);
        let got = ix.search(&q, 5).unwrap();
        if got.first().and_then(|x| x.cve.as_deref()) == Some(c.id.as_str()) {
            r1 += 1;
        }
        if got.iter().any(|x| x.cve.as_deref() == Some(c.id.as_str())) {
            r5 += 1;
        }
    }
    let n = cases.len().max(1) as f64;
    (r1 as f64 / n, r5 as f64 / n, cases.len())
}

#[test]
fn evaluation_recall_on_synthesized_console_logs() {
    let all = cases(&vulns());
    // Every third case keeps the run short; the selection does not look at the records' contents.
    let cases: Vec<Case> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, c)| c)
        .collect();
    assert!(
        cases.len() > 300,
        "too few records with a quoted trace: {}",
        cases.len()
    );
    println!(
        "example synthesized log ({}):\n{}",
        cases[0].id, cases[0].log
    );
    let (f1, f5, n) = recall(full().0.path(), &cases);
    println!("EVAL quoted traces in the index: n={n} recall@1={f1:.3} recall@5={f5:.3}");
    let (w1, w5, _) = recall(withheld().0.path(), &cases);
    println!("EVAL quoted traces withheld (subjects/functions/files only): n={n} recall@1={w1:.3} recall@5={w5:.3}");
    // Bars, set under the figures measured on 2026-11-21 (n=1007: recall@5/@1 0.992/0.945 with
    // traces, 0.427/0.253 withheld) with a margin for changes in the oops parser, which extracts
    // the quoted traces. The withheld figure is the honest one for crashes nobody quoted yet.
    // 2026-12-03, weights fit on syzbot reports (model.rs): 0.982/0.901 with traces,
    // 0.485/0.330 withheld. The synthesized logs' kernel is now one the record says is affected
    // (`eval::affected_release`), as a real crash of the bug would run.
    assert!(f5 >= 0.95, "recall@5 with traces {f5:.3} < 0.95");
    assert!(f1 >= 0.85, "recall@1 with traces {f1:.3} < 0.85");
    assert!(w5 >= 0.35, "recall@5 without traces {w5:.3} < 0.35");
    assert!(w1 >= 0.20, "recall@1 without traces {w1:.3} < 0.20");
}

// ---- The syzbot dev set: what users send --------------------------------------------------------

fn dev_dir() -> PathBuf {
    let d = shared().join("data/syzbot-fixes-dev");
    assert!(
        d.join("dev.tsv").is_file(),
        "../shared/data/syzbot-fixes-dev/dev.tsv is missing (expected at {}): the syzbot evaluation reads the reports from there",
        d.display()
    );
    d
}

#[test]
fn evaluation_on_real_syzbot_reports_beats_the_baseline() {
    use kmortem_fixes::baseline::Baseline;
    use kmortem_fixes::devset::{self, Part, Recall};
    let ix = FixIndex::open(full().0.path()).unwrap();
    let base = Baseline::build(&ix).unwrap();
    let cases = devset::load(&dev_dir()).unwrap();
    assert!(cases.len() >= 150, "dev set has {} rows", cases.len());
    // [tuning, measured-only] x [ours, baseline]
    let mut ours = [Recall::default(), Recall::default()];
    let mut naive = [Recall::default(), Recall::default()];
    for c in &cases {
        let q = devset::query_of(c).unwrap();
        let got = ix.search(&q, 5).unwrap();
        let ids: Vec<Option<String>> = got.iter().map(|x| x.cve.clone()).collect();
        let k = (c.part == Part::Measured) as usize;
        ours[k].add(devset::rank_of(&ids, &c.expected), c.quotes_trace);
        naive[k].add(
            devset::rank_of(&base.search(&q, 5), &c.expected),
            c.quotes_trace,
        );
    }
    // Latency with the index warm: every report was queried once above.
    let mut lat: Vec<f64> = Vec::new();
    for c in &cases {
        let q = devset::query_of(c).unwrap();
        let t = std::time::Instant::now();
        let got = ix.search(&q, 5).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(got.len() <= 5);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!("SYZBOT tuning        kmortem:  {}", ours[0]);
    println!("SYZBOT tuning        baseline: {}", naive[0]);
    println!("SYZBOT measured-only kmortem:  {}", ours[1]);
    println!("SYZBOT measured-only baseline: {}", naive[1]);
    println!(
        "SYZBOT query latency (index warm, n={}): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(0.5),
        pct(0.95),
        lat[lat.len() - 1]
    );
    let m = ours[1];
    assert!(m.n >= 50, "measured-only part has {} reports", m.n);
    assert!(
        m.r5() >= 0.75,
        "measured-only recall@5 {:.3} < 0.75",
        m.r5()
    );
    assert!(
        m.r5_no() >= 0.60,
        "measured-only recall@5 on no-trace rows {:.3} < 0.60",
        m.r5_no()
    );
    assert!(
        m.r1() >= 0.55,
        "measured-only recall@1 {:.3} < 0.55",
        m.r1()
    );
    assert!(
        m.r5() > naive[1].r5() && m.r1() > naive[1].r1(),
        "the baseline is not beaten on the measured-only part"
    );
    // Latency is printed above, never asserted: a timed assertion fails on a loaded CI machine
    // (p95 114 ms on a fresh 2-core machine building the lab beside it). Query cost is measured
    // in BENCHMARKS.md ("Import and query cost") against its anchor in the same run.
}
