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

/// The source address of sender `h`: 127.0.0.10-29 for the 20-sender runs, 127.1.x.y beyond.
fn sender_ip(h: usize, hosts: usize) -> String {
    if hosts <= 200 {
        format!("127.0.0.{}", 10 + h)
    } else {
        format!("127.1.{}.{}", h / 250, 1 + h % 250)
    }
}

/// Resident memory of this process in KiB: (peak since the last reset, now).
fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Many senders at once (a fleet): `hosts` senders of `per_host` datagrams each, interleaved;
/// reports/s from the first datagram until the last report is stored, and the growth of the
/// peak RSS over the process's RSS before the first datagram (the traffic is generated
/// before; `/proc/self/clear_refs` resets the peak).
fn fleet(db: &str, hosts: usize, per_host: usize) -> (f64, usize, u64, u64) {
    let mut opts = kmortem_server::Options::new(db.to_string());
    opts.netconsole = Some("127.0.0.1:0".parse().unwrap());
    // Longer than the netconsole runs' 500 ms: with 1,000 senders a sender waits longer for
    // its turn, and a report cut by the idle flush would be counted twice. The time until the
    // last report is stored includes this wait.
    opts.idle_flush = Duration::from_secs(2);
    let run = Running::start(opts);
    let target = run.server().netconsole_addr.unwrap();
    let mut rng = Rng(7);
    let mut streams = Vec::new();
    let mut reports = 0;
    for h in 0..hosts {
        let (d, pids) = host_stream(&mut rng, per_host, 1000 * h as u32);
        reports += pids.len();
        let sock = UdpSocket::bind(format!("{}:0", sender_ip(h, hosts))).unwrap();
        sock.connect(target).unwrap();
        streams.push((sock, d));
    }
    let m = run.server().metrics.clone();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (_, rss0) = rss_kib();
    let start = Instant::now();
    let mut sent = 0u64;
    const CHUNK: usize = 8;
    const WINDOW: u64 = 1024;
    let mut i = 0;
    while i < per_host {
        let end = (i + CHUNK).min(per_host);
        for (sock, d) in &streams {
            send_many(sock, &d[i..end]);
            sent += (end - i) as u64;
            while sent - m.netconsole_datagrams.get() > WINDOW {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        i = end;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let n = run
            .rt
            .block_on(run.server().store.report_count())
            .unwrap_or(0);
        if n as usize >= reports {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    let (hwm, _) = rss_kib();
    let stored = all_reports(&run.url, "").len();
    if stored != reports {
        println!("  fleet of {hosts}: {stored} reports stored, {reports} sent");
    }
    (reports as f64 / secs, stored, hwm.saturating_sub(rss0), hwm)
}

fn netconsole(db: &str, hosts: usize, per_host: usize) -> (f64, u64, usize) {
    let mut opts = kmortem_server::Options::new(db.to_string());
    opts.netconsole = Some("127.0.0.1:0".parse().unwrap());
    opts.idle_flush = Duration::from_millis(500);
    if let Some(w) = std::env::var("KMORTEM_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.netconsole_workers = w;
    }
    let run = Running::start(opts);
    let target = run.server().netconsole_addr.unwrap();
    let mut rng = Rng(42);
    let mut streams = Vec::new();
    let mut reports = 0;
    for h in 0..hosts {
        let (d, pids) = host_stream(&mut rng, per_host, 1000 * h as u32);
        reports += pids.len();
        let sock = UdpSocket::bind(format!("{}:0", sender_ip(h, hosts))).unwrap();
        // Connected: the route is looked up once, not per datagram.
        sock.connect(target).unwrap();
        streams.push((sock, d));
    }
    let m = run.server().metrics.clone();
    let cpu0 = process_cpu_secs();
    let threads0 = thread_cpu_secs();
    let start = Instant::now();
    let mut sent = 0u64;
    // The senders share the server's two cores here (on a fleet they are other machines), so
    // they are made cheap: `sendmmsg(2)` of 16 datagrams per host in turn, and a short sleep
    // instead of a busy wait while the receiver is `WINDOW` datagrams behind (the socket buffer
    // holds more than that, so nothing is dropped).
    const CHUNK: usize = 16;
    const WINDOW: u64 = 1024;
    let mut i = 0;
    while i < per_host {
        let end = (i + CHUNK).min(per_host);
        for (sock, d) in &streams {
            send_many(sock, &d[i..end]);
            sent += (end - i) as u64;
            while sent - m.netconsole_datagrams.get() > WINDOW {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        i = end;
    }
    while m.netconsole_datagrams.get() < sent {
        std::thread::yield_now();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu0;
    let lines = m.netconsole_lines.get();
    let mut by_thread: Vec<String> = thread_cpu_secs()
        .into_iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t - threads0.get(&name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, t)| *t > 0.0)
        .map(|(name, t)| format!("{name} {:.1}", t * 1e6 / lines.max(1) as f64))
        .collect();
    by_thread.sort();
    println!(
        "  (the process used {:.2} CPUs, {:.1} us of CPU per line; by thread, us/line: {}; \
         the sender is `ingest-*`, it includes the kernel's loopback delivery)",
        cpu / secs,
        cpu * 1e6 / lines.max(1) as f64,
        by_thread.join(", ")
    );
    // Wait until the reports are stored (not timed: the idle flush is a timer).
    let deadline = Instant::now() + Duration::from_secs(120);
    while all_reports(&run.url, "").len() < reports && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let stored = all_reports(&run.url, "").len();
    assert_eq!(stored, reports, "every report stored");
    (lines as f64 / secs, lines, stored)
}

/// CPU seconds (user + system) of this process's threads so far, summed by thread name.
fn thread_cpu_secs() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) / hz;
    }
    out
}

/// User + system CPU seconds of this process so far (every thread).
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: utime is the 14th field of the line, stime the 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Send datagrams on a connected socket with as few system calls as the kernel allows.
fn send_many(sock: &UdpSocket, dgrams: &[Vec<u8>]) {
    use std::os::fd::AsRawFd;
    let mut iov: Vec<libc::iovec> = dgrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) header.
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; dgrams.len()];
    for (h, v) in hdrs.iter_mut().zip(iov.iter_mut()) {
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0;
    while done < hdrs.len() {
        // SAFETY: every header points at live buffers (the datagrams, `iov`) that outlive the
        // call; no address (the socket is connected).
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs[done..].as_mut_ptr(),
                (hdrs.len() - done) as libc::c_uint,
                0,
            )
        };
        assert!(r > 0, "sendmmsg: {}", std::io::Error::last_os_error());
        done += r as usize;
    }
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

/// The receiver without sockets or a database: the same datagrams handed straight to
/// [`kmortem_server::netconsole::Receiver`] (fragments, ordering, the parser, raw excerpts).
fn receiver_anchor(hosts: usize, per_host: usize) -> f64 {
    use kmortem_server::netconsole::{Limits, Receiver};
    let mut rng = Rng(42);
    let mut all = Vec::new();
    for h in 0..hosts {
        all.push(host_stream(&mut rng, per_host, 1000 * h as u32).0);
    }
    let metrics = std::sync::Arc::new(kmortem_server::metrics::Metrics::new());
    let mut r = Receiver::detached(metrics.clone(), Limits::default());
    let ips: Vec<std::net::IpAddr> = (0..hosts)
        .map(|h| format!("127.0.0.{}", 10 + h).parse().unwrap())
        .collect();
    let now = Instant::now();
    let start = Instant::now();
    let mut found = 0;
    for i in 0..per_host {
        for (d, ip) in all.iter().zip(&ips) {
            r.datagram(*ip, &d[i], now);
        }
        if i % 256 == 0 {
            found += r.take_reports().len();
        }
    }
    r.flush_all();
    found += r.take_reports().len();
    let secs = start.elapsed().as_secs_f64();
    assert!(found > 0);
    metrics.netconsole_lines.get() as f64 / secs
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
    if std::env::var("KMORTEM_BENCH_PROFILE").as_deref() == Ok("parser") {
        // For `perf record` (or `valgrind --tool=callgrind` with KMORTEM_BENCH_REPEAT=1): the
        // parser alone, repeated.
        let repeat = std::env::var("KMORTEM_BENCH_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        for _ in 0..repeat {
            println!(
                "parser alone {:.0} lines/s",
                scanner_anchor(hosts, per_host)
            );
        }
        return;
    }
    if std::env::var("KMORTEM_BENCH_PROFILE").as_deref() == Ok("receiver") {
        for _ in 0..10 {
            println!(
                "receiver alone {:.0} lines/s",
                receiver_anchor(hosts, per_host)
            );
        }
        return;
    }
    if std::env::var("KMORTEM_BENCH_PROFILE").as_deref() == Ok("fleet") {
        let db = dir.0.join("fleet.db").display().to_string();
        let (rps, n, growth, hwm) = fleet(&db, 1000, 200);
        println!(
            "sqlite: 1,000 netconsole senders: {rps:.0} reports/s ({n} reports), peak RSS {} MiB \
             ({} MiB over the RSS before the first datagram)",
            hwm >> 10,
            growth >> 10
        );
        return;
    }
    if std::env::var("KMORTEM_BENCH_PROFILE").as_deref() == Ok("netconsole") {
        let db = dir.0.join("profile.db").display().to_string();
        let (rate, lines, reports) = netconsole(&db, hosts, per_host);
        println!("sqlite: netconsole {rate:.0} lines/s ({lines} lines, {reports} reports)");
        return;
    }
    let anchor = scanner_anchor(hosts, per_host);
    println!("anchor: parser alone {anchor:.0} lines/s");
    let recv = receiver_anchor(hosts, per_host);
    println!(
        "receiver alone (no sockets, no database): {recv:.0} lines/s ({:.2}x the parser alone)",
        recv / anchor
    );
    for (name, nc_db, http_db) in dbs {
        if name == "sqlite" {
            // Anchor for the fleet row: the same reports/s measure with 20 senders.
            let (rps20, n20, _, _) = fleet(&format!("{nc_db}.fleet20"), 20, 10_000);
            let (rps, n, growth, hwm) = fleet(&format!("{nc_db}.fleet"), 1000, 200);
            println!(
                "{name}: 1,000 netconsole senders: {rps:.0} reports/s ({n} reports; {:.2}x of 20 \
                 senders at {rps20:.0} reports/s, {n20} reports), peak RSS {} MiB ({} MiB over the \
                 RSS before the first datagram)",
                rps / rps20,
                hwm >> 10,
                growth >> 10
            );
        }
        let (rate, lines, reports) = netconsole(&nc_db, hosts, per_host);
        println!(
            "{name}: netconsole {rate:.0} lines/s ({lines} lines, {reports} reports; {:.2}x the parser alone)",
            rate / anchor
        );
        let mut http_opts = kmortem_server::Options::new(http_db);
        // 64 clients from one address, on purpose: no rate limit.
        http_opts.rate_limit = 0.0;
        let run = Running::start(http_opts);
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
