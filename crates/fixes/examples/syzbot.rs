//! The syzbot dev-set evaluation as a tool for tuning (the test `tests/cve.rs` asserts the bars).
//!
//!   cargo run --release -p kmortem-fixes --example syzbot -- HOME [VULNS] [--measured]
//!
//! Imports `VULNS` (default `../shared/data/kernel-vulns`) into `HOME` when `HOME` has no index,
//! then prints, for each report of the *tuning* part, the expected CVE's rank and the top three
//! candidates with their score parts, and the tuning figures beside the naive baseline's. The
//! measured-only part is printed as figures only, and only with `--measured`.

use kmortem_fixes::baseline::Baseline;
use kmortem_fixes::devset::{self, Part, Recall};
use kmortem_fixes::{FixIndex, ImportOptions};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measured = args.iter().any(|a| a == "--measured");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let home = PathBuf::from(
        pos.first()
            .map(|s| s.as_str())
            .unwrap_or("/tmp/kmortem-fixes-dev"),
    );
    let vulns = PathBuf::from(
        pos.get(1)
            .map(|s| s.as_str())
            .unwrap_or("../shared/data/kernel-vulns"),
    );
    let dev = vulns
        .parent()
        .map(|d| d.join("syzbot-fixes-dev"))
        .expect("vulns path has a parent");
    let ix = match FixIndex::open(&home) {
        Ok(ix) => ix,
        Err(_) => {
            let mut ix = FixIndex::open_or_create(&home).expect("index");
            let s = ix
                .import_cves(&vulns, ImportOptions::default())
                .expect("import");
            eprintln!("imported {} records in {:.1}s", s.added, s.seconds);
            ix
        }
    };
    let base = Baseline::build(&ix).expect("baseline");
    let cases = devset::load(&dev).expect("dev set");
    let verbose = std::env::var_os("V").is_some();
    let (mut ours, mut theirs) = (
        [Recall::default(), Recall::default()],
        [Recall::default(), Recall::default()],
    );
    let mut lat = Vec::new();
    for c in &cases {
        let q = devset::query_of(c).expect("report");
        let t = std::time::Instant::now();
        let got = ix.search(&q, 400).expect("search");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        let ids: Vec<Option<String>> = got.iter().map(|x| x.cve.clone()).collect();
        let rank = devset::rank_of(&ids, &c.expected);
        let b = base.search(&q, 5);
        let brank = devset::rank_of(&b, &c.expected);
        let k = (c.part == Part::Measured) as usize;
        ours[k].add(rank.filter(|r| *r <= 5), c.quotes_trace);
        theirs[k].add(brank, c.quotes_trace);
        if c.part != Part::Tuning {
            continue;
        }
        println!(
            "{} rank={:<4} base={:<4} {} | {} | want {} | guilty {:?} {:?} kernel {:?}",
            if c.quotes_trace { "yes" } else { "no " },
            rank.map(|r| r.to_string()).unwrap_or("-".into()),
            brank.map(|r| r.to_string()).unwrap_or("-".into()),
            c.bug_id.get(..8).unwrap_or(""),
            q.title.as_deref().unwrap_or("(no title)"),
            c.expected.join(","),
            q.guilty_frame,
            q.guilty_file,
            q.kernel.as_ref().and_then(|k| k.upstream.clone()),
        );
        if verbose || rank.is_none_or(|r| r > 1) {
            let mut show: Vec<usize> = (0..got.len().min(3)).collect();
            if let Some(r) = rank {
                if r > 3 {
                    show.push(r - 1);
                }
            }
            for i in show {
                let x = &got[i];
                let parts: Vec<String> = x
                    .score_parts
                    .iter()
                    .map(|(k, v)| format!("{k}={v:.2}"))
                    .collect();
                println!(
                    "     #{} {:?} {:.2} {} [{}]",
                    i + 1,
                    x.cve,
                    x.score,
                    x.subject,
                    parts.join(" ")
                );
            }
        }
    }
    // Second pass: the index warm.
    let mut warm = Vec::new();
    for c in &cases {
        let q = devset::query_of(c).expect("report");
        let t = std::time::Instant::now();
        let _ = ix.search(&q, 5).expect("search");
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    warm.sort_by(f64::total_cmp);
    println!(
        "latency warm: p50 {:.1} ms p95 {:.1} ms",
        warm[warm.len() / 2],
        warm[warm.len() * 95 / 100]
    );
    lat.sort_by(f64::total_cmp);
    println!(
        "latency: p50 {:.1} ms p95 {:.1} ms",
        lat[lat.len() / 2],
        lat[lat.len() * 95 / 100]
    );
    println!("tuning       ours:     {}", ours[0]);
    println!("tuning       baseline: {}", theirs[0]);
    if measured {
        println!("measured-only ours:     {}", ours[1]);
        println!("measured-only baseline: {}", theirs[1]);
    }
}
