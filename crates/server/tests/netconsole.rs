//! The bar: the real server receives 100,000 extended-netconsole datagrams over loopback from
//! 20 interleaved senders (127.0.0.10-29), with fragments and reordering, and stores every crash
//! report in them exactly once. The bar runs with the default worker count (one per core); a
//! smaller run covers each receive path explicitly: one thread reading and parsing, and a
//! reader handing senders to three workers.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[test]
fn hundred_thousand_datagrams_every_report_once() {
    every_report_once(0, 5_000);
}

#[test]
fn one_worker_every_report_once() {
    every_report_once(1, 1_000);
}

#[test]
fn three_workers_every_report_once() {
    every_report_once(3, 1_000);
}

/// Send `20 * per_host` datagrams to a server with `workers` netconsole workers (0 = default).
fn every_report_once(workers: usize, per_host: usize) {
    let dir = TempDir::new("nc100k");
    let mut opts = kmortem_server::Options::new(dir.0.join("k.db").display().to_string());
    opts.netconsole = Some("127.0.0.1:0".parse().unwrap());
    opts.idle_flush = Duration::from_millis(1500);
    opts.netconsole_workers = workers;
    let run = Running::start(opts);
    let target = run.server().netconsole_addr.unwrap();

    const HOSTS: usize = 20;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut streams = Vec::new();
    let mut expected: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for h in 0..HOSTS {
        let (d, pids) = host_stream(&mut rng, per_host, 10_000 * (h as u32 + 1));
        let ip = format!("127.0.0.{}", 10 + h);
        expected.insert(ip.clone(), pids.into_iter().collect());
        let sock = UdpSocket::bind(format!("{ip}:0")).expect("bind 127.0.0.x");
        streams.push((sock, d, 0usize));
    }
    let total_reports: usize = expected.values().map(BTreeSet::len).sum();
    let metrics = run.server().metrics.clone();
    let start = Instant::now();
    let mut sent = 0u64;
    // Interleave the hosts at random; keep at most 256 datagrams in flight so that the socket
    // buffer (net.core.rmem_max) never overflows: a drop there would be UDP's, not ours.
    while streams.iter().any(|(_, d, i)| *i < d.len()) {
        let k = rng.below(HOSTS as u64) as usize;
        let (sock, d, i) = &mut streams[k];
        if *i >= d.len() {
            continue;
        }
        let burst = 1 + rng.below(4) as usize;
        for _ in 0..burst {
            if *i < d.len() {
                sock.send_to(&d[*i], target).unwrap();
                *i += 1;
                sent += 1;
            }
        }
        while sent - metrics.netconsole_datagrams.get() > 256 {
            std::thread::yield_now();
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "receiver stalled"
            );
        }
    }
    assert_eq!(sent, (HOSTS * per_host) as u64);
    let send_secs = start.elapsed().as_secs_f64();

    // Wait for the idle flush and the writer.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = Vec::new();
    while Instant::now() < deadline {
        stored = all_reports(&run.url, "");
        if stored.len() >= total_reports {
            // Give stray duplicates, if any, a moment to show up.
            std::thread::sleep(Duration::from_secs(3));
            stored = all_reports(&run.url, "");
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "netconsole ({workers} workers, 0 = one per core): {sent} datagrams from {HOSTS} hosts in {send_secs:.2}s ({:.0}/s); {} reports expected, {} stored",
        sent as f64 / send_secs,
        total_reports,
        stored.len()
    );
    let mut got: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for r in &stored {
        let host = r["host"].as_str().unwrap().to_string();
        let raw = r["raw"].as_str().unwrap();
        let pid = pid_of(raw).unwrap_or_else(|| panic!("no PID in stored report: {raw}"));
        got.entry(host).or_default().push(pid);
    }
    for (host, pids) in &expected {
        let mut g = got.remove(host).unwrap_or_default();
        g.sort();
        let dups: Vec<_> = g
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        assert!(dups.is_empty(), "{host}: reports stored twice: {dups:?}");
        let g: BTreeSet<u32> = g.into_iter().collect();
        let missing: Vec<_> = pids.difference(&g).collect();
        let extra: Vec<_> = g.difference(pids).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{host}: missing {missing:?}, unexpected {extra:?}"
        );
    }
    assert!(
        got.is_empty(),
        "reports from unknown hosts: {:?}",
        got.keys()
    );
    let m = metrics.encode();
    assert!(
        m.contains(&format!("kmortem_netconsole_datagrams_total {sent}\n")),
        "{m}"
    );
    assert!(
        m.contains(&format!("kmortem_netconsole_senders {HOSTS}\n")),
        "every sender counted once across workers: {m}"
    );
    // Every group spans all hosts that sent it, and the titles are the parser's.
    let groups = get_json(&format!("{}/api/v1/groups", run.url));
    for g in groups["groups"].as_array().unwrap() {
        println!("  group {}: {} x {}", g["id"], g["count"], g["title"]);
    }
}
