//! Benchmark (not a test): sustained netconsole lines/s and HTTP reports/s into SQLite and
//! PostgreSQL, each with an anchor measured in the same run:
//! - netconsole: the parser alone (`kmortem_oops::Scanner`) on the same lines;
//! - HTTP: `GET /healthz` with the same client threads (HTTP overhead alone).
//!
//! cargo bench -p kmortem-server --bench ingest
//! (PostgreSQL: KMORTEM_TEST_PG=postgres://... or scripts/pg-start is run.)

#[path = "../tests/common/mod.rs"]
mod common;
use common::*;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn pg_url() -> Option<String> {
    if let Ok(u) = std::env::var("KMORTEM_TEST_PG") {
        if !u.is_empty() {
            return Some(u);
        }
    }
    let out = std::process::Command::new(repo().join("scripts/pg-start"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn fresh_pg(base: &str, name: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Executor};
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(base).await.unwrap();
        c.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await
            .unwrap();
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
    });
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

fn netconsole(db: &str, hosts: usize, per_host: usize) -> (f64, u64, usize) {
    let mut opts = kmortem_server::Options::new(db.to_string());
    opts.netconsole = Some("127.0.0.1:0".parse().unwrap());
    opts.idle_flush = Duration::from_millis(500);
    let run = Running::start(opts);
    let target = run.server().netconsole_addr.unwrap();
    let mut rng = Rng(42);
    let mut streams = Vec::new();
    let mut reports = 0;
    for h in 0..hosts {
        let (d, pids) = host_stream(&mut rng, per_host, 1000 * h as u32);
        reports += pids.len();
        let sock = UdpSocket::bind(format!("127.0.0.{}:0", 10 + h)).unwrap();
        streams.push((sock, d));
    }
    let m = run.server().metrics.clone();
    let start = Instant::now();
    let mut sent = 0u64;
    for i in 0..per_host {
        for (sock, d) in &streams {
            sock.send_to(&d[i], target).unwrap();
            sent += 1;
            while sent - m.netconsole_datagrams.get() > 256 {
                std::thread::yield_now();
            }
        }
    }
    while m.netconsole_datagrams.get() < sent {
        std::thread::yield_now();
    }
    let secs = start.elapsed().as_secs_f64();
    let lines = m.netconsole_lines.get();
    // Wait until the reports are stored (not timed: the idle flush is a timer).
    let deadline = Instant::now() + Duration::from_secs(120);
    while all_reports(&run.url, "").len() < reports && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let stored = all_reports(&run.url, "").len();
    assert_eq!(stored, reports, "every report stored");
    (lines as f64 / secs, lines, stored)
}

fn scanner_anchor(hosts: usize, per_host: usize) -> f64 {
    let mut rng = Rng(42);
    let mut all = Vec::new();
    for h in 0..hosts {
        all.push(host_stream(&mut rng, per_host, 1000 * h as u32).0);
    }
    let start = Instant::now();
    let mut n = 0u64;
    let mut found = 0;
    for d in &all {
        let mut s = kmortem_oops::Scanner::new();
        for dg in d {
            found += s.push_line(dg).len();
            n += 1;
        }
        found += s.finish().len();
    }
    assert!(found > 0);
    n as f64 / start.elapsed().as_secs_f64()
}

fn http_rate(base: &str, path_post: bool, threads: usize, secs: u64) -> f64 {
    let log = example("null-deref.log");
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for t in 0..threads {
        let (base, log, stop, count) = (base.to_string(), log.clone(), stop.clone(), count.clone());
        hs.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().build();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let ok = if path_post {
                    let body =
                        log.replace("PID: 97 ", &format!("PID: {} ", t as u32 * 1_000_000 + i));
                    agent
                        .post(&format!("{base}/api/v1/reports?host=bench-{t}"))
                        .set("Authorization", &format!("Bearer {TOKEN}"))
                        .send_string(&body)
                        .is_ok()
                } else {
                    agent.get(&format!("{base}/healthz")).call().is_ok()
                };
                if ok {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / secs as f64
}

fn main() {
    let hosts = 20;
    let per_host: usize = std::env::var("KMORTEM_BENCH_DATAGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
        / hosts;
    let threads = 64;
    let dir = TempDir::new("bench");
    let mut dbs = vec![(
        "sqlite",
        dir.0.join("nc.db").display().to_string(),
        dir.0.join("http.db").display().to_string(),
    )];
    if let Some(pg) = pg_url() {
        dbs.push((
            "postgres",
            fresh_pg(&pg, "kmt_bench_nc"),
            fresh_pg(&pg, "kmt_bench_http"),
        ));
    } else {
        println!("PostgreSQL not available: skipping its rows");
    }
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let anchor = scanner_anchor(hosts, per_host);
    println!("anchor: parser alone {anchor:.0} lines/s");
    for (name, nc_db, http_db) in dbs {
        let (rate, lines, reports) = netconsole(&nc_db, hosts, per_host);
        println!(
            "{name}: netconsole {rate:.0} lines/s ({lines} lines, {reports} reports; {:.2}x the parser alone)",
            rate / anchor
        );
        let run = Running::start(kmortem_server::Options::new(http_db));
        let health = http_rate(&run.url, false, threads, 3);
        let rps = http_rate(&run.url, true, threads, 5);
        println!(
            "{name}: HTTP {rps:.0} reports/s with {threads} clients ({:.2}x of GET /healthz at {health:.0} req/s)",
            rps / health
        );
        println!(
            "load average now: {}",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
    }
}
