//! Shared by the server's tests and benchmarks: an in-process server on 127.0.0.1 ephemeral
//! ports, a tiny HTTP client, and a generator of realistic netconsole traffic.
#![allow(dead_code)]

use kmortem_server::{Options, Server};
use std::path::PathBuf;
use std::time::Duration;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

pub fn example(name: &str) -> String {
    std::fs::read_to_string(repo().join("examples").join(name))
        .unwrap_or_else(|e| panic!("examples/{name}: {e}"))
}

/// A temp dir removed at drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "kmortem-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A server running in-process on its own runtime; tests talk to it over loopback.
pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<Server>,
    pub url: String,
}

impl Running {
    pub fn start(mut opts: Options) -> Running {
        opts.listen = "127.0.0.1:0".parse().unwrap();
        if opts.tokens.is_empty() {
            opts.tokens = kmortem_server::Tokens::shared(vec![TOKEN.into()]);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(Server::start(opts)).expect("server starts");
        let url = format!("http://{}", server.http_addr);
        Running {
            rt,
            server: Some(server),
            url,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// (status, body) of a request; never panics on HTTP errors.
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    ctype: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(60));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(c) = ctype {
        req = req.set("Content-Type", c);
    }
    let r = if method == "GET" {
        req.call()
    } else {
        req.send_bytes(body)
    };
    match r {
        Ok(resp) => {
            let s = resp.status();
            (s, resp.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(s, resp)) => (s, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

pub fn get_json(url: &str) -> serde_json::Value {
    let (s, b) = http("GET", url, None, None, b"");
    assert_eq!(s, 200, "GET {url}: {b}");
    serde_json::from_str(&b).unwrap()
}

pub fn post_log(base: &str, host: &str, log: &str) -> (u16, String) {
    http(
        "POST",
        &format!("{base}/api/v1/reports?host={host}"),
        Some(TOKEN),
        Some("text/plain"),
        log.as_bytes(),
    )
}

/// All reports matching `query`, following the pagination cursor.
pub fn all_reports(base: &str, query: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!("{base}/api/v1/reports?limit=1000&{query}");
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let page = get_json(&url);
        out.extend(page["reports"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => return out,
        }
    }
}

/// Deterministic xorshift PRNG (no dependency, reproducible failures).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Message lines of an example crash log: console stamps and syslog prefixes removed, and
/// nothing after the report's `---[ end trace` line.
pub fn template(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in example(name).lines() {
        let l = match l.find("] ") {
            Some(i) if l.contains('[') => &l[i + 2..],
            _ => l,
        };
        out.push(l.to_string());
        if l.starts_with("---[ end trace") {
            break;
        }
    }
    out
}

/// One crash report in a template, made unique by its PID (every ` PID: N` is replaced).
pub fn crash_lines(tpl: &[String], pid: u32) -> Vec<String> {
    tpl.iter()
        .map(|l| match l.find(" PID: ") {
            Some(i) => {
                let rest = &l[i + 6..];
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                format!("{} PID: {pid}{}", &l[..i], &rest[end..])
            }
            None => l.clone(),
        })
        .collect()
}

/// A long `Modules linked in:` line (> 1000 bytes) so that extended netconsole fragments it.
pub fn long_modules_line() -> String {
    let mut s = String::from("Modules linked in: kmlab(OE)");
    let mut i = 0;
    while s.len() < 1500 {
        s.push_str(&format!(" mod_{i:03}_netfilter_helper"));
        i += 1;
    }
    s
}

/// Netconsole traffic for one host: extended records (`level,seq,ts,-;text`), long messages
/// split into `ncfrag` fragments of at most 1000 bytes, locally reordered. Returns the
/// datagrams and the PIDs of the crash reports in them.
pub fn host_stream(rng: &mut Rng, datagrams: usize, first_pid: u32) -> (Vec<Vec<u8>>, Vec<u32>) {
    let tpls = [
        template("null-deref.log"),
        template("warning.log"),
        template("list-corruption.log"),
    ];
    let modules = long_modules_line();
    let mut msgs: Vec<String> = Vec::new();
    let mut pids = Vec::new();
    let mut pid = first_pid;
    let mut count = 0usize;
    // Datagrams a message costs.
    let cost = |m: &str| m.len().div_ceil(1000).max(1);
    loop {
        // A few ordinary lines between crashes.
        for _ in 0..(3 + rng.below(15)) {
            let m = format!(
                "systemd[1]: Started session {} of user core.",
                rng.below(100_000)
            );
            count += 1;
            msgs.push(m);
        }
        let tpl = &tpls[rng.below(tpls.len() as u64) as usize];
        let mut lines = crash_lines(tpl, pid);
        for l in lines.iter_mut() {
            if l.starts_with("Modules linked in:") {
                *l = modules.clone();
            }
        }
        let c: usize = lines.iter().map(|l| cost(l)).sum();
        // Leave room for the trailing filler so that every report is complete.
        if count + c + 25 > datagrams {
            break;
        }
        count += c;
        pids.push(pid);
        pid += 1;
        msgs.extend(lines);
    }
    while count < datagrams {
        msgs.push(format!("systemd[1]: Finished logrotate.service ({count})."));
        count += 1;
    }
    let mut out = Vec::with_capacity(datagrams);
    let seq0 = 1000 + rng.below(1000);
    for (i, m) in msgs.iter().enumerate() {
        let seq = seq0 + i as u64;
        let ts = 1_000_000 + i as u64 * 1000;
        let b = m.as_bytes();
        if b.len() <= 1000 {
            out.push(format!("4,{seq},{ts},-;{m}").into_bytes());
        } else {
            let mut frags = Vec::new();
            let mut off = 0;
            while off < b.len() {
                let end = (off + 1000).min(b.len());
                let mut d = format!("4,{seq},{ts},-,ncfrag={off}/{};", b.len()).into_bytes();
                d.extend_from_slice(&b[off..end]);
                frags.push(d);
                off = end;
            }
            // Fragments of one message may arrive in any order.
            if rng.below(2) == 0 {
                frags.reverse();
            }
            out.extend(frags);
        }
    }
    // Local reordering: swap neighbours within a window of 8.
    for i in 0..out.len() {
        let j = i + rng.below(8) as usize;
        if j < out.len() && rng.below(3) == 0 {
            out.swap(i, j);
        }
    }
    assert_eq!(out.len(), datagrams);
    (out, pids)
}

pub fn pid_of(raw: &str) -> Option<u32> {
    let i = raw.find(" PID: ")?;
    let rest = &raw[i + 6..];
    rest[..rest.find(' ')?].parse().ok()
}
