//! `kmortem serve` and `kmortem agent` as an attacker and a flaky network would meet them, each
//! on the real binaries over loopback (127.0.0.0/8 only): an unauthenticated 100 MB body, 2,000
//! slow connections, a spoofed netconsole flood from 10,000 addresses, a server that answers
//! 400/413/429/500 before 2xx, TLS, token reload, retention, and two replicas on one
//! PostgreSQL. In each, a legitimate crash sent during the attack is stored exactly once.

mod common;
use common::Serve;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kmortem");
const TOKEN: &str = "attack-test-token-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo().join("examples").join(name)).unwrap()
}

fn with_pid(log: &str, pid: u32) -> String {
    log.replace("PID: 97 Comm", &format!("PID: {pid} Comm"))
        .replace("PID: 1734 ", &format!("PID: {pid} "))
        .replace("PID: 0 Comm", &format!("PID: {pid} Comm"))
}

fn pid_of(raw: &str) -> Option<u32> {
    let i = raw.find(" PID: ")?;
    let rest = &raw[i + 6..];
    rest[..rest.find(' ')?].parse().ok()
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("kmortem-att-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Serve {
    common::serve(dir, "127.0.0.1:0", TOKEN, extra, |_| {})
}

fn get(url: &str) -> serde_json::Value {
    ureq::get(url)
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

fn metrics(base: &str) -> String {
    ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// A counter's value in /metrics text (0 when absent).
fn counter(m: &str, series: &str) -> f64 {
    m.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn all_reports(base: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let page = get(&format!("{base}/api/v1/reports?limit=1000{before}"));
        out.extend(page["reports"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(b) => before = format!("&before={b}"),
            None => return out,
        }
    }
}

fn post_crash(base: &str, host: &str, log: &str) -> Result<serde_json::Value, String> {
    match ureq::post(&format!("{base}/api/v1/reports?host={host}"))
        .timeout(Duration::from_secs(30))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_string(log)
    {
        Ok(r) => Ok(r.into_json().unwrap()),
        Err(ureq::Error::Status(c, r)) => Err(format!("HTTP {c}: {}", r.into_string().unwrap())),
        Err(e) => Err(e.to_string()),
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// A TCP connection from a chosen loopback source address.
fn connect_from(src: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((src, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Peak and current resident memory of a process, in KiB (`VmHWM`, `VmRSS`).
fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// No token, a `Content-Length` of 100 MB: the 401 comes before a single body byte is sent, and
/// a client that pushes the body anyway gets cut off long before 100 MB; meanwhile a real crash
/// is stored once.
#[test]
fn unauthenticated_100mb_body_is_refused_unread() {
    let dir = Tmp::new("body");
    let s = serve(&dir.0, &[]);
    let to = addr_of(&s.url);
    const SIZE: usize = 100 << 20;
    let head = |auth: &str| {
        format!(
            "POST /api/v1/reports?host=evil HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain\r\n\
             Content-Length: {SIZE}\r\n\r\n"
        )
    };
    // 1. Headers only: the answer does not wait for the body.
    for auth in ["", "Authorization: Bearer not-the-token-0000000000\r\n"] {
        let mut c = TcpStream::connect(to).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(head(auth).as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = BufReader::new(&c).read_to_string(&mut answer);
        println!("no body sent, {auth:?}: {:?}", answer.lines().next());
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    // 2. The body pushed anyway, while a real crash is sent.
    let mut c = TcpStream::connect(to).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(head("").as_bytes()).unwrap();
    let pusher = std::thread::spawn(move || {
        let chunk = vec![b'A'; 1 << 20];
        let mut sent = 0usize;
        while sent < SIZE {
            match c.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n,
            }
        }
        sent
    });
    let legit = post_crash(&s.url, "web-1", &example("null-deref.log")).unwrap();
    let sent = pusher.join().unwrap();
    println!(
        "unauthenticated client pushed {} KiB of its 100 MB before the server cut it off",
        sent >> 10
    );
    assert!(
        sent < 32 << 20,
        "the server read {sent} bytes of an unauthenticated body"
    );
    let reports = all_reports(&s.url);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["id"], legit["reports"][0]["id"]);
    let m = metrics(&s.url);
    assert!(
        counter(
            &m,
            "kmortem_rejected_requests_total{reason=\"unauthorized\"}"
        ) >= 3.0,
        "{m}"
    );
}

/// 2,000 connections that send their headers one byte at a time (slowloris) from 20 addresses:
/// a real crash from another address lands within 2 s; the slow ones are closed after
/// `--header-timeout`; one address cannot take more than `--max-connections-per-ip`.
#[test]
fn slow_connections_do_not_hold_the_server() {
    raise_fd_limit();
    let dir = Tmp::new("slow");
    let s = serve(
        &dir.0,
        &["--header-timeout", "4", "--max-connections-per-ip", "150"],
    );
    let to = addr_of(&s.url);
    // One address over its cap: the extra connections are closed at once.
    let mut extra = Vec::new();
    for _ in 0..200 {
        if let Ok(c) = connect_from([127, 0, 3, 1], to) {
            extra.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut closed = 0;
    for c in &mut extra {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => closed += 1,
            _ => {}
        }
    }
    let m = metrics(&s.url);
    let refused = counter(
        &m,
        "kmortem_connections_refused_total{reason=\"max_per_ip\"}",
    );
    println!(
        "per-address cap: {closed} of {} connections seen closed, {refused} refused by the server",
        extra.len()
    );
    // A connection refused while its handshake was still finishing fails to connect instead.
    assert!(closed + (200 - extra.len()) >= 50, "{closed} closed");
    assert!(
        counter(
            &m,
            "kmortem_connections_refused_total{reason=\"max_per_ip\"}"
        ) >= 50.0,
        "{m}"
    );
    drop(extra);
    let mut slow = Vec::new();
    for i in 0..2000u32 {
        let src = [127, 0, 2, 1 + (i % 20) as u8];
        let mut c = connect_from(src, to).unwrap();
        let _ = c.write_all(b"POST /api/v1/reports HTTP/1.1\r\nHo");
        slow.push(c);
    }
    // Keep them trickling while the real crash goes in.
    for c in slow.iter_mut().step_by(7) {
        let _ = c.write_all(b"s");
    }
    let t = Instant::now();
    let legit = post_crash(&s.url, "db-7", &example("warning.log"));
    let took = t.elapsed();
    println!("a real crash with 2,000 slow connections open: {legit:?} in {took:?}");
    let legit = legit.unwrap();
    // Served before the 4 s header timeout: it did not wait for the slow connections to be
    // dropped (a bound on starvation, not a speed figure; generous for a loaded CI machine).
    assert!(took < Duration::from_secs(4), "the crash took {took:?}");
    // After the header timeout the slow connections are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut open = slow.len();
    while Instant::now() < deadline && open > 0 {
        std::thread::sleep(Duration::from_millis(500));
        open = 0;
        for c in &mut slow {
            c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let mut b = [0u8; 256];
            match c.read(&mut b) {
                Ok(0) => {}
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    open += 1
                }
                Err(_) => {}
            }
        }
    }
    println!(
        "slow connections still open {:?} after the header timeout: {open}",
        t.elapsed()
    );
    assert_eq!(open, 0);
    let reports = all_reports(&s.url);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["id"], legit["reports"][0]["id"]);
}

/// Extended netconsole records of one crash, `seq` from `seq0`.
fn netconsole_crash(log: &str, seq0: u64) -> Vec<Vec<u8>> {
    log.lines()
        .enumerate()
        .map(|(i, l)| {
            let text = l.find("] ").map_or(l, |j| &l[j + 2..]);
            format!("4,{},{},-;{text}", seq0 + i as u64, 1_000_000 + i as u64).into_bytes()
        })
        .collect()
}

/// A netconsole flood from 10,000 spoofed loopback addresses, each opening reports, leaving
/// fragments half-sent and sequence gaps open (the most memory a sender can make the server
/// hold), plus 2,000 addresses outside the allow-list; meanwhile a configured host sends a real
/// crash. The crash is stored once, as its configured name and `unauthenticated`; no sender
/// outside the allow-list is stored; and the server's peak RSS grows by less than
/// --netconsole-memory over what it held before the flood.
#[test]
fn spoofed_netconsole_flood_from_10000_sources() {
    let dir = Tmp::new("ncflood");
    std::fs::write(
        dir.0.join("kmortem.toml"),
        "[hosts]\n\"127.0.0.10\" = \"db-7\"\n",
    )
    .unwrap();
    let cfg = dir.0.join("kmortem.toml");
    let budget_mib = 64;
    let s = serve(
        &dir.0,
        &[
            "--netconsole",
            "127.0.0.1:0",
            "--netconsole-allow",
            "127.0.0.10,127.1.0.0/16",
            "--netconsole-memory",
            &format!("{budget_mib}MiB"),
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    let nc: SocketAddr = s.info["netconsole"].as_str().unwrap().parse().unwrap();
    let pid = s.child.id();
    let (hwm0, _) = rss_kib(pid);
    let legit = UdpSocket::bind("127.0.0.10:0").unwrap();
    let crash = netconsole_crash(&with_pid(&example("null-deref.log"), 4242), 100);
    let mut sent = 0u64;
    let mut legit_next = 0;
    let pace = |sent: u64| {
        // Keep what the server has not read below the socket buffer: a drop there would be
        // UDP's, not the server's.
        if sent % 2000 == 1999 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let m = metrics(&s.url);
                if counter(&m, "kmortem_netconsole_datagrams_total") + 4000.0 >= sent as f64 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let filler = "z".repeat(900);
    for i in 0..12_000u32 {
        let allowed = i < 10_000;
        let ip = if allowed {
            [127, 1, (i >> 8) as u8, i as u8]
        } else {
            [127, 2, (i >> 8) as u8, i as u8]
        };
        let Ok(sock) = UdpSocket::bind(SocketAddr::from((ip, 0))) else {
            continue;
        };
        let seq = 1000 + u64::from(i);
        let dgrams = [
            format!("4,{seq},1,-;BUG: kernel NULL pointer dereference, address: 0000000000000008"),
            format!("4,{},1,-;{filler}", seq + 5),
            format!("4,{},1,-;{filler}", seq + 9),
            format!("4,{},1,-,ncfrag=0/16000;{filler}", seq + 20),
            format!("4,{},1,-,ncfrag=0/16000;{filler}", seq + 21),
            format!("4,{},1,-,ncfrag=0/16000;{filler}", seq + 22),
            "[ 1.0] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP ".to_string() + &filler,
        ];
        for d in &dgrams {
            let _ = sock.send_to(d.as_bytes(), nc);
            sent += 1;
            pace(sent);
        }
        // The real crash, a line every 300 flood senders.
        if i % 300 == 0 && legit_next < crash.len() {
            legit.send_to(&crash[legit_next], nc).unwrap();
            legit_next += 1;
            sent += 1;
        }
    }
    while legit_next < crash.len() {
        legit.send_to(&crash[legit_next], nc).unwrap();
        legit_next += 1;
        sent += 1;
    }
    let (hwm, rss) = rss_kib(pid);
    // Wait for the idle flush and the writer.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if all_reports(&s.url).iter().any(|r| r["host"] == "db-7") {
            // Give a second copy, if any, the time to show up.
            std::thread::sleep(Duration::from_secs(3));
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let all = all_reports(&s.url);
    let mine: Vec<_> = all.iter().filter(|r| r["host"] == "db-7").collect();
    let m = metrics(&s.url);
    let drops: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("kmortem_netconsole_dropped_total{"))
        .collect();
    println!(
        "netconsole flood: {sent} datagrams from 12,000 addresses; peak RSS {} MiB (at start {} \
         MiB, now {} MiB; budget {budget_mib} MiB); {} reports stored, {} from db-7; {drops:?}",
        hwm >> 10,
        hwm0 >> 10,
        rss >> 10,
        all.len(),
        mine.len()
    );
    assert_eq!(mine.len(), 1, "the real crash, once: {mine:?}");
    assert_eq!(pid_of(mine[0]["raw"].as_str().unwrap()), Some(4242));
    assert_eq!(mine[0]["origin"], "unauthenticated");
    assert!(all.iter().all(|r| r["origin"] == "unauthenticated"));
    assert!(
        !all.iter()
            .any(|r| r["host"].as_str().unwrap().starts_with("127.2.")),
        "a sender outside the allow-list was stored"
    );
    assert!(
        counter(
            &m,
            "kmortem_netconsole_dropped_total{reason=\"not_allowed\"}"
        ) >= 2000.0 * 7.0 * 0.9,
        "{m}"
    );
    // The budget bounds what netconsole holds (reports being assembled, fragments, gaps);
    // the process also holds its own code, the store and the ingest queue, which it had
    // before the flood (`hwm0`). The flood must have hit the budget (memory drops), and the
    // growth over the start must stay under it.
    assert!(
        counter(&m, "kmortem_netconsole_dropped_total{reason=\"memory\"}") > 0.0,
        "the flood never reached the netconsole budget: {m}"
    );
    assert!(
        hwm.saturating_sub(hwm0) < budget_mib << 10,
        "peak RSS grew by {} KiB (from {hwm0} to {hwm} KiB), over the {budget_mib} MiB budget",
        hwm.saturating_sub(hwm0)
    );
}

/// A scripted server: answers the statuses in `script` in order, then 200; returns the keys of
/// the items it was sent, with the status it gave.
fn scripted_server(
    script: Vec<(u16, &'static str)>,
) -> (String, std::sync::mpsc::Receiver<(String, u16)>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let key = serde_json::from_slice::<serde_json::Value>(&body)
                .map(|v| v["key"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let (code, extra) = script.next().unwrap_or((200, ""));
            let text = if code == 200 {
                "{\"reports\":[{\"id\":1,\"group\":1}]}".to_string()
            } else {
                format!("{{\"error\":\"scripted {code}\"}}")
            };
            let _ = write!(
                c,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 {extra}Connection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = tx.send((key, code));
        }
    });
    (url, rx)
}

fn agent(dir: &Path, url: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(BIN)
        .args([
            "agent",
            "--once",
            "--json",
            "--no-kmsg",
            "--host",
            "edge-3",
            "--retry",
            "1",
        ])
        .args(["--server", url])
        .arg("--token-file")
        .arg(dir.join("token"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pstore-dir")
        .arg(dir.join("pstore"))
        .arg("--crash-dir")
        .arg(dir.join("crash"))
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), summary, err)
}

fn four_crashes(d: &Path) {
    std::fs::create_dir_all(d.join("pstore")).unwrap();
    std::fs::write(d.join("token"), format!("{TOKEN}\n")).unwrap();
    for (i, f) in [
        "null-deref.log",
        "warning.log",
        "hung-task.log",
        "soft-lockup.log",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(d.join(format!("pstore/dmesg-efi-{i}")), example(f)).unwrap();
    }
}

/// Only a 2xx deletes a spooled item: 400 and 413 move it to rejected/ with the server's
/// reason; 429 (Retry-After: 1) and 500 keep it and try again, until the 2xx.
#[test]
fn agent_keeps_what_the_server_did_not_store() {
    let dir = Tmp::new("agent-script");
    let d = &dir.0;
    four_crashes(d);
    let (url, rx) = scripted_server(vec![
        (400, ""),
        (413, ""),
        (429, "Retry-After: 1\r\n"),
        (500, ""),
    ]);
    let (code, sum, err) = agent(d, &url, &[]);
    let got: Vec<(String, u16)> = rx.try_iter().collect();
    println!("agent: exit {code}, {sum}; server saw {got:?}");
    assert_eq!(code, 0, "{sum} {err}");
    assert_eq!(sum["sent"], 2, "{sum}");
    assert_eq!(sum["rejected"], 2, "{sum}");
    assert_eq!(sum["left"], 0, "{sum}");
    let codes: Vec<u16> = got.iter().map(|g| g.1).collect();
    assert_eq!(codes, [400, 413, 429, 500, 200, 200]);
    // The 429'd item is the one retried (after the 500) and stored.
    assert_eq!(got[2].0, got[3].0);
    assert_eq!(got[3].0, got[4].0);
    let mut rejected: Vec<String> = std::fs::read_dir(d.join("state/rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    rejected.sort();
    assert_eq!(
        rejected.len(),
        4,
        "two items and their reasons: {rejected:?}"
    );
    let reasons: Vec<String> = rejected
        .iter()
        .filter(|n| n.ends_with(".reason"))
        .map(|n| std::fs::read_to_string(d.join("state/rejected").join(n)).unwrap())
        .collect();
    assert!(reasons[0].contains("HTTP 400: scripted 400"), "{reasons:?}");
    assert!(reasons[1].contains("HTTP 413: scripted 413"), "{reasons:?}");
    for n in rejected.iter().filter(|n| n.ends_with(".json")) {
        let item: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("state/rejected").join(n)).unwrap())
                .unwrap();
        assert!(
            item["log"].as_str().unwrap().len() > 100,
            "the crash is kept whole"
        );
    }
    assert_eq!(std::fs::read_dir(d.join("state/spool")).unwrap().count(), 0);
    let sent = std::fs::read_to_string(d.join("state/sent")).unwrap();
    assert_eq!(
        sent.lines().count(),
        2,
        "only stored items count as sent: {sent}"
    );
    assert!(err.contains("refused") && err.contains("HTTP 400"), "{err}");
}

/// A server that never stores (always 503): nothing is deleted, whatever the number of runs.
#[test]
fn agent_never_deletes_an_item_that_was_not_stored() {
    let dir = Tmp::new("agent-503");
    let d = &dir.0;
    four_crashes(d);
    let (url, rx) = scripted_server(vec![(503, "Retry-After: 1\r\n"); 100]);
    for _ in 0..1 {
        let (code, sum, _) = agent(d, &url, &[]);
        assert_eq!(code, 1, "{sum}");
        assert_eq!(sum["left"], 4, "{sum}");
        assert_eq!(sum["sent"], 0, "{sum}");
    }
    let tries = rx.try_iter().count();
    println!("503 server: {tries} tries, 4 items still spooled");
    assert!(tries >= 2);
    assert_eq!(std::fs::read_dir(d.join("state/spool")).unwrap().count(), 4);
    assert!(!d.join("state/rejected").exists());
}

/// A test CA and a server certificate it signs for 127.0.0.1 and localhost: (CA, cert, key).
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kmortem test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
    let (a, c, k) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&a, ca_cert.pem()).unwrap();
    std::fs::write(&c, leaf.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (a, c, k)
}

/// `kmortem serve --tls-cert/--tls-key` speaks only TLS; the agent with `--ca-file` ships over
/// it; without the CA it refuses the certificate and keeps its items; and it never sends the
/// token over plain HTTP to another machine.
#[test]
fn tls_server_and_agent() {
    let dir = Tmp::new("tls");
    let d = &dir.0;
    let (ca, cert, key) = test_pki(d);
    let s = serve(
        d,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    // Plain HTTP to the TLS port gets no answer.
    let plain = s.url.replace("https://", "http://");
    assert!(ureq::get(&format!("{plain}/healthz"))
        .timeout(Duration::from_secs(5))
        .call()
        .is_err());
    four_crashes(d);
    let (code, sum, err) = agent(d, &s.url, &[]);
    println!(
        "agent without --ca-file: exit {code} {sum} {}",
        err.lines().last().unwrap_or("")
    );
    assert_eq!(
        (code, sum["sent"].as_u64(), sum["left"].as_u64()),
        (1, Some(0), Some(4)),
        "{err}"
    );
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );
    let (code, sum, err) = agent(d, &s.url, &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(code, 0, "{sum} {err}");
    // The 4 boot files again and the 4 items kept from the first run, under the same keys.
    assert_eq!(
        (sum["sent"].as_u64(), sum["left"].as_u64()),
        (Some(8), Some(0)),
        "{sum}"
    );
    // Read back over TLS with the same CA.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(cfg))
        .build();
    let page: serde_json::Value = client
        .get(&format!("{}/api/v1/reports", s.url))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(page["reports"].as_array().unwrap().len(), 4);
    // Plain HTTP to another machine: refused before any connection.
    let (code, _, err) = agent(d, "http://192.0.2.1:8750", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--insecure-http"), "{err}");
}

/// Per-host tokens from the token file, reloaded on SIGHUP: a token added to the file works
/// after the signal, a removed one stops working, and a broken file keeps the tokens in use.
#[test]
fn token_file_reloads_on_sighup() {
    let dir = Tmp::new("sighup");
    let d = &dir.0;
    let s = common::serve(
        d,
        "127.0.0.1:0",
        &format!("{TOKEN}\nweb-1 web1-token-0123456789"),
        &[],
        |_| {},
    );
    let post = |tok: &str, host: &str, pid: u32| {
        ureq::post(&format!("{}/api/v1/reports?host={host}", s.url))
            .set("Authorization", &format!("Bearer {tok}"))
            .send_string(&with_pid(&example("null-deref.log"), pid))
            .map(|_| 200)
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(c, _) => c,
                e => panic!("{e}"),
            })
    };
    assert_eq!(post("web1-token-0123456789", "web-1", 1), 200);
    assert_eq!(post("web1-token-0123456789", "web-2", 2), 403);
    assert_eq!(post("web2-token-0123456789", "web-2", 3), 401);
    let hup = |s: &Serve| {
        // SAFETY: kill with a pid we started.
        unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) };
    };
    let wait_for = |tok: &str, host: &str, want: u16| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pid = 100;
        loop {
            pid += 1;
            let got = post(tok, host, pid);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::fs::write(d.join("token"), "web-2 web2-token-0123456789\n").unwrap();
    hup(&s);
    assert_eq!(wait_for("web2-token-0123456789", "web-2", 200), 200);
    assert_eq!(
        post("web1-token-0123456789", "web-1", 4),
        401,
        "removed token"
    );
    assert_eq!(post(TOKEN, "web-1", 5), 401, "removed shared token");
    // A broken file: the tokens in use stay.
    std::fs::write(d.join("token"), "short\n").unwrap();
    hup(&s);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(post("web2-token-0123456789", "web-2", 6), 200);
    let origins: Vec<String> = all_reports(&s.url)
        .iter()
        .map(|r| r["origin"].as_str().unwrap().to_string())
        .collect();
    assert!(origins.iter().all(|o| o == "host_token"), "{origins:?}");
}

/// `--retention-keep 1` on a restart: each group keeps its first and last report, and the
/// sizes freed are in /metrics.
#[test]
fn retention_at_start_keeps_first_and_last() {
    let dir = Tmp::new("retention");
    let d = &dir.0;
    let s = serve(d, &[]);
    let mut ids = Vec::new();
    for pid in 0..5 {
        let v = post_crash(
            &s.url,
            "web-1",
            &with_pid(&example("null-deref.log"), 500 + pid),
        )
        .unwrap();
        ids.push(v["reports"][0]["id"].as_i64().unwrap());
    }
    post_crash(&s.url, "web-2", &example("warning.log")).unwrap();
    drop(s);
    let first_run = |s: &Serve| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = metrics(&s.url);
            if counter(&m, "kmortem_retention_runs_total") >= 1.0 || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let s = serve(d, &["--retention", "3650d", "--retention-keep", "1"]);
    let m = first_run(&s);
    // Nothing is ten years old: nothing goes.
    assert_eq!(
        counter(&m, "kmortem_retention_deleted_reports_total"),
        0.0,
        "{m}"
    );
    assert_eq!(all_reports(&s.url).len(), 6);
    drop(s);
    let s = serve(d, &["--retention-keep", "1"]);
    let m = first_run(&s);
    let left: Vec<i64> = all_reports(&s.url)
        .iter()
        .filter(|r| r["host"] == "web-1")
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    println!("retention: {left:?} left of {ids:?}");
    assert_eq!(left, [ids[4], ids[0]]);
    assert_eq!(
        counter(&m, "kmortem_retention_deleted_reports_total"),
        3.0,
        "{m}"
    );
    assert!(
        counter(&m, "kmortem_retention_freed_bytes_total") > 3000.0,
        "{m}"
    );
}

/// A fresh database on the throwaway PostgreSQL (`scripts/pg-start`, or KMORTEM_TEST_PG).
fn pg_database(name: &str) -> String {
    let base = match std::env::var("KMORTEM_TEST_PG") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            let out = Command::new(repo().join("scripts/pg-start"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "scripts/pg-start failed (PostgreSQL is needed for this test): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        }
    };
    let db = format!("kmt_{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        let out = Command::new("psql")
            .args([base.as_str(), "-q", "-c", sql.as_str()])
            .output()
            .expect("psql (the postgresql client)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

/// A local webhook receiver counting alerts by (rule, group).
fn webhook() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                g.lock().unwrap().push(v);
            }
        }
    });
    (url, got)
}

/// Two `kmortem serve` replicas on one PostgreSQL: 10,000 reports posted concurrently to both
/// (every tenth to both under one key, as an agent retrying on the other replica would),
/// three titles whose first reports race on both replicas. Every report is stored once, each
/// title makes one group, and each new-group alert fires once.
#[test]
fn two_replicas_on_postgres_store_10000_reports_once() {
    let db = pg_database("replicas");
    let dir = Tmp::new("replicas");
    let (hook, alerts) = webhook();
    let cfg = dir.0.join("kmortem.toml");
    std::fs::write(
        &cfg,
        format!("[[alert]]\nname = \"new\"\nwhen = \"new_group\"\nwebhook = \"{hook}\"\n"),
    )
    .unwrap();
    let (da, db_dir) = (dir.0.join("a"), dir.0.join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db_dir).unwrap();
    let args = [
        "--db",
        db.as_str(),
        "--rate-limit",
        "0",
        "--config",
        cfg.to_str().unwrap(),
    ];
    let a = serve(&da, &args);
    let b = serve(&db_dir, &args);
    let urls = [a.url.clone(), b.url.clone()];
    let tpls = [
        example("null-deref.log"),
        example("warning.log"),
        example("list-corruption.log"),
    ];
    const N: u32 = 10_000;
    const THREADS: u32 = 16;
    let t = Instant::now();
    let mut hs = Vec::new();
    for th in 0..THREADS {
        let (urls, tpls) = (urls.clone(), tpls.clone());
        hs.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().build();
            let mut failures = Vec::new();
            for i in (th..N).step_by(THREADS as usize) {
                let pid = 100_000 + i;
                let log = with_pid(&tpls[(i % 3) as usize], pid);
                let body = serde_json::json!({"host": format!("h{}", i % 50), "log": log, "key": format!("k{i}")});
                let targets: &[usize] = if i % 10 == 0 { &[0, 1] } else { &[(i % 2) as usize] };
                for &r in targets {
                    let mut tries = 0;
                    loop {
                        let res = agent
                            .post(&format!("{}/api/v1/reports", urls[r]))
                            .set("Authorization", &format!("Bearer {TOKEN}"))
                            .set("Content-Type", "application/json")
                            .send_string(&body.to_string());
                        match res {
                            Ok(_) => break,
                            Err(e) if tries < 3 => {
                                tries += 1;
                                eprintln!("retrying {i} on replica {r}: {e}");
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            Err(e) => {
                                failures.push(format!("{i}: {e}"));
                                break;
                            }
                        }
                    }
                }
            }
            failures
        }));
    }
    let failures: Vec<String> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let secs = t.elapsed().as_secs_f64();
    assert!(failures.is_empty(), "{failures:?}");
    let stored = all_reports(&a.url);
    let mut pids: Vec<u32> = stored
        .iter()
        .map(|r| pid_of(r["raw"].as_str().unwrap()).unwrap())
        .collect();
    pids.sort_unstable();
    let before = pids.len();
    pids.dedup();
    let groups = get(&format!("{}/api/v1/groups", b.url));
    let groups = groups["groups"].as_array().unwrap().clone();
    // Alerts are delivered asynchronously: wait for them to settle.
    std::thread::sleep(Duration::from_secs(3));
    let alerts = alerts.lock().unwrap().clone();
    println!(
        "replicas: {} posts ({} reports) in {secs:.1}s ({:.0} reports/s); {before} stored, {} distinct; {} groups; {} new-group alerts",
        N + N / 10,
        N,
        f64::from(N) / secs,
        pids.len(),
        groups.len(),
        alerts.len()
    );
    assert_eq!(before, N as usize, "no duplicate");
    assert_eq!(
        pids,
        (100_000..100_000 + N).collect::<Vec<_>>(),
        "none lost"
    );
    assert_eq!(groups.len(), 3, "{groups:?}");
    let mut alerted: Vec<i64> = alerts
        .iter()
        .map(|a| a["group"]["id"].as_i64().unwrap())
        .collect();
    alerted.sort_unstable();
    let mut gids: Vec<i64> = groups.iter().map(|g| g["id"].as_i64().unwrap()).collect();
    gids.sort_unstable();
    assert_eq!(
        alerted, gids,
        "one new-group alert per group across both replicas"
    );
}
