//! Benchmarks for BENCHMARKS.md (`## kmortem fixes`). Run with:
//!
//!   cargo run --release -p kmortem-fixes --example bench -- ../shared/data/kernel-vulns
//!
//! Prints: full import time against an anchor (reading and JSON-parsing every record, the least
//! any importer must do), a no-change re-import, the index size, and query latency over the
//! synthesized console logs of the evaluation against an anchor (one tantivy term query).

use kmortem_fixes::eval::cases;
use kmortem_fixes::{CrashQuery, FixIndex, ImportOptions};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let vulns = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data/kernel-vulns".into()),
    );
    // Anchor: read + parse every JSON record.
    let t = Instant::now();
    let mut n = 0usize;
    for y in std::fs::read_dir(vulns.join("cve/published"))
        .expect("vulns path")
        .flatten()
    {
        for f in std::fs::read_dir(y.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "json") {
                let b = std::fs::read(f.path()).unwrap_or_default();
                let v: Result<serde_json::Value, _> = serde_json::from_slice(&b);
                n += v.is_ok() as usize;
            }
        }
    }
    let anchor_import = t.elapsed().as_secs_f64();
    let home = tempfile::tempdir().expect("tempdir");
    let mut ix = FixIndex::open_or_create(home.path()).expect("index");
    let cpu0 = cpu_seconds();
    let s = ix
        .import_cves(&vulns, ImportOptions::default())
        .expect("import");
    let import_cpu = cpu_seconds() - cpu0;
    let s2 = ix
        .import_cves(&vulns, ImportOptions::default())
        .expect("re-import");
    println!("records: {n} (anchor read+parse JSON: {anchor_import:.2}s)");
    println!(
        "import CPU (user+sys, all threads): {import_cpu:.2}s; load average before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "import: {:.2}s = {:.1}x anchor; re-import with no change: {:.3}s ({} unchanged); index {:.1} MiB, {} docs",
        s.seconds,
        s.seconds / anchor_import,
        s2.seconds,
        s2.unchanged,
        ix.disk_size() as f64 / 1048576.0,
        ix.len()
    );
    // Query latency, index opened once (as a server would) and freshly per query (as the CLI does).
    let cs = cases(&vulns);
    let ix = FixIndex::open(home.path()).expect("open");
    let mut lat = Vec::new();
    for c in cs.iter().step_by(3) {
        let t = Instant::now();
        let q = CrashQuery::from_text(&c.log);
        let _ = ix.search(&q, 5).expect("search");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    // Anchor: the same number of single-term lookups (the cheapest query tantivy can answer).
    let t = Instant::now();
    let mut hits = 0u64;
    for c in cs.iter().step_by(3) {
        hits += ix.get(&c.id).ok().flatten().is_some() as u64;
    }
    let anchor_q = t.elapsed().as_secs_f64() * 1000.0 / lat.len().max(1) as f64;
    println!(
        "query (index open): n={} median {:.2} ms, p95 {:.2} ms, max {:.2} ms; anchor id lookup {:.3} ms ({hits} found); median = {:.0}x anchor",
        lat.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0),
        anchor_q,
        pct(0.5) / anchor_q
    );
    let mut cold = Vec::new();
    for c in cs.iter().step_by(60) {
        let t = Instant::now();
        let ix = FixIndex::open(home.path()).expect("open");
        let q = CrashQuery::from_text(&c.log);
        let _ = ix.search(&q, 5).expect("search");
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    cold.sort_by(f64::total_cmp);
    println!(
        "query (open index + query, as the CLI): n={} median {:.2} ms, max {:.2} ms",
        cold.len(),
        cold[cold.len() / 2],
        cold[cold.len() - 1]
    );
}

/// User + system CPU seconds of this process so far (all threads), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // USER_HZ is 100 on every Linux architecture kmortem runs on.
    f.get(11)
        .zip(f.get(12))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}
