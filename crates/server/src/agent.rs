//! `kmortem agent`: runs on each host and ships crashes to `kmortem serve`.
//!
//! - At start (boot), what the last crash left: pstore files (`/sys/fs/pstore/dmesg-*`,
//!   `/var/lib/systemd/pstore/**/dmesg*`) and kdump's `/var/crash/*/dmesg*`.
//! - While running, new reports cut from `/dev/kmsg` with the parser.
//!
//! Everything to send is first written to a spool directory (one JSON file per item, named so
//! that they sort in order), then posted; a file is deleted only after a 2xx. So the agent
//! spools while the server is unreachable and loses nothing across its own restarts. Every item
//! carries an idempotency key (a content hash, or boot id + sequence number), remembered in
//! `sent` once delivered, and the server also refuses to store a key twice: nothing goes twice.

use kmortem_oops::input::parse_kmsg;
use kmortem_oops::Scanner;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("server refused {0}: {1}")]
    Refused(String, String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |e| AgentError::Io(path.display().to_string(), e)
}

/// 64-bit FNV-1a: a stable content hash for idempotency keys (not for security).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `http://server:8750`
    pub server: String,
    pub token: String,
    pub host: String,
    pub state_dir: PathBuf,
    pub kmsg: Option<PathBuf>,
    pub pstore_dirs: Vec<PathBuf>,
    pub crash_dir: Option<PathBuf>,
    /// Ship what is there now, then exit (instead of following /dev/kmsg).
    pub once: bool,
    pub retry: Duration,
}

/// One item in the spool: exactly the JSON body posted to `/api/v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub host: String,
    pub log: String,
    pub key: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
}

/// What a run did, for `--json` and tests.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub boot_files: usize,
    pub kmsg_reports: usize,
    pub sent: usize,
    pub already_sent: usize,
    pub spooled: usize,
    pub rejected: usize,
}

pub struct Agent {
    opts: AgentOptions,
    spool: PathBuf,
    sent_path: PathBuf,
    sent: HashSet<String>,
    counter: u64,
    pub summary: Summary,
}

impl Agent {
    pub fn new(opts: AgentOptions) -> Result<Agent, AgentError> {
        let spool = opts.state_dir.join("spool");
        std::fs::create_dir_all(&spool).map_err(io(&spool))?;
        let sent_path = opts.state_dir.join("sent");
        let sent = match std::fs::read_to_string(&sent_path) {
            Ok(s) => s.lines().map(String::from).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(AgentError::Io(sent_path.display().to_string(), e)),
        };
        // Continue numbering after what is already spooled.
        let counter = std::fs::read_dir(&spool)
            .map_err(io(&spool))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .max()
            .map_or(0, |n| n + 1);
        Ok(Agent {
            opts,
            spool,
            sent_path,
            sent,
            counter,
            summary: Summary::default(),
        })
    }

    fn kernel_release() -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn boot_id() -> String {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown-boot".into())
    }

    /// Queue an item (durably) unless it was sent before.
    pub fn enqueue(&mut self, item: Item) -> Result<(), AgentError> {
        if self.sent.contains(&item.key) {
            self.summary.already_sent += 1;
            return Ok(());
        }
        let tmp = self.spool.join(format!("{:012}.tmp", self.counter));
        let dst = self.spool.join(format!("{:012}.json", self.counter));
        self.counter += 1;
        let body = serde_json::to_vec(&item)
            .map_err(|e| AgentError::Io(tmp.display().to_string(), e.into()))?;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
        self.summary.spooled += 1;
        Ok(())
    }

    /// Files the last crash left: pstore and kdump dmesg.
    pub fn collect_boot(&mut self) -> Result<(), AgentError> {
        let mut files = Vec::new();
        for d in self.opts.pstore_dirs.clone() {
            walk(&d, 3, &mut |p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("dmesg") || name.starts_with("console") {
                    files.push((p.to_path_buf(), "agent:pstore"));
                }
            });
        }
        if let Some(d) = self.opts.crash_dir.clone() {
            walk(&d, 2, &mut |p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("dmesg") {
                    files.push((p.to_path_buf(), "agent:kdump"));
                }
            });
        }
        files.sort();
        for (p, source) in files {
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.summary.boot_files += 1;
            let key = format!("boot:{:016x}", fnv1a(&data));
            self.enqueue(Item {
                host: self.opts.host.clone(),
                // The server refuses invalid UTF-8; pstore files can hold garbage.
                log: String::from_utf8_lossy(&data).into_owned(),
                key,
                source: source.into(),
                kernel_release: None,
            })?;
        }
        Ok(())
    }

    /// Read `/dev/kmsg` (or a file of kmsg records), queue each report found. With `once`, stop
    /// at the end of what is there; otherwise follow forever, sending as reports complete.
    pub fn follow_kmsg(&mut self, path: &Path) -> Result<(), AgentError> {
        let f = open_kmsg(path, self.opts.once).map_err(io(path))?;
        let boot = Self::boot_id();
        let release = Self::kernel_release();
        let mut scanner = Scanner::new();
        // Sequence number of each line fed, to key reports by (boot, first seq).
        let mut seqs: Vec<u64> = Vec::new();
        let mut reader = KmsgReader::new(f);
        let mut last_send = std::time::Instant::now();
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return Err(AgentError::Io(path.display().to_string(), e)),
            };
            let seq = parse_kmsg(&rec).map(|r| r.seq).unwrap_or(0);
            seqs.push(seq);
            let reports = scanner.push_line(&rec);
            self.kmsg_reports(reports, &seqs, &boot, &release)?;
            if seqs.len() > 100_000 {
                // Keep memory bounded: line numbers only need to reach back one report.
                let keep = seqs.split_off(seqs.len() - 50_000);
                let dropped = seqs.len();
                seqs = vec![0; dropped];
                seqs.extend(keep);
            }
            if !self.opts.once && last_send.elapsed() > Duration::from_secs(1) {
                let _ = self.drain();
                last_send = std::time::Instant::now();
            }
        }
        let reports = scanner.finish();
        self.kmsg_reports(reports, &seqs, &boot, &release)
    }

    fn kmsg_reports(
        &mut self,
        reports: Vec<kmortem_oops::Report>,
        seqs: &[u64],
        boot: &str,
        release: &Option<String>,
    ) -> Result<(), AgentError> {
        for r in reports {
            let seq = seqs
                .get(r.start_line.saturating_sub(1))
                .copied()
                .unwrap_or(0);
            self.summary.kmsg_reports += 1;
            self.enqueue(Item {
                host: self.opts.host.clone(),
                log: r.text.clone(),
                key: format!("kmsg:{boot}:{seq}"),
                source: "agent:kmsg".into(),
                kernel_release: r.kernel_release.clone().or_else(|| release.clone()),
            })?;
        }
        Ok(())
    }

    /// Post every spooled item in order; stop at the first failure (the server is down).
    /// Returns how many items are still spooled.
    pub fn drain(&mut self) -> Result<usize, AgentError> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .map_err(io(&self.spool))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let mut left = names.len();
        for p in names {
            let Ok(body) = std::fs::read(&p) else {
                continue;
            };
            let item: Item = match serde_json::from_slice(&body) {
                Ok(i) => i,
                Err(_) => {
                    // A damaged spool file can never be sent.
                    let _ = std::fs::remove_file(&p);
                    left -= 1;
                    continue;
                }
            };
            match post(&self.opts.server, &self.opts.token, &body) {
                Ok(()) => self.summary.sent += 1,
                Err(Post::Rejected(msg)) => {
                    tracing::warn!("server refused {}: {msg}", item.key);
                    self.summary.rejected += 1;
                }
                Err(Post::Unreachable(msg)) => {
                    tracing::info!("server unreachable ({msg}); {left} item(s) stay spooled");
                    return Ok(left);
                }
            }
            self.remember(&item.key)?;
            std::fs::remove_file(&p).map_err(io(&p))?;
            left -= 1;
        }
        Ok(left)
    }

    fn remember(&mut self, key: &str) -> Result<(), AgentError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.sent_path)
            .map_err(io(&self.sent_path))?;
        writeln!(f, "{key}").map_err(io(&self.sent_path))?;
        f.sync_data().map_err(io(&self.sent_path))?;
        self.sent.insert(key.to_string());
        Ok(())
    }

    /// The whole agent: boot files, then /dev/kmsg; sends as it goes and retries the spool.
    pub fn run(&mut self) -> Result<usize, AgentError> {
        self.collect_boot()?;
        let _ = self.drain();
        if let Some(k) = self.opts.kmsg.clone() {
            if self.opts.once {
                self.follow_kmsg(&k)?;
            } else {
                // Retry the spool in the background while the main thread blocks on kmsg.
                let retry = self.opts.retry;
                let (server, token, state) = (
                    self.opts.server.clone(),
                    self.opts.token.clone(),
                    self.opts.state_dir.clone(),
                );
                std::thread::spawn(move || loop {
                    std::thread::sleep(retry);
                    let opts = AgentOptions {
                        server: server.clone(),
                        token: token.clone(),
                        host: String::new(),
                        state_dir: state.clone(),
                        kmsg: None,
                        pstore_dirs: vec![],
                        crash_dir: None,
                        once: true,
                        retry,
                    };
                    if let Ok(mut a) = Agent::new(opts) {
                        let _ = a.drain();
                    }
                });
                self.follow_kmsg(&k)?;
            }
        }
        self.drain()
    }
}

enum Post {
    Rejected(String),
    Unreachable(String),
}

fn post(server: &str, token: &str, body: &[u8]) -> Result<(), Post> {
    let url = format!("{}/api/v1/reports", server.trim_end_matches('/'));
    let r = ureq::post(&url)
        .timeout(Duration::from_secs(30))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_bytes(body);
    match r {
        Ok(_) => Ok(()),
        // 4xx: retrying will not help (bad token is the exception: keep it spooled).
        Err(ureq::Error::Status(code, resp)) if (400..500).contains(&code) && code != 401 => {
            Err(Post::Rejected(resp.into_string().unwrap_or_default()))
        }
        Err(ureq::Error::Status(code, resp)) => Err(Post::Unreachable(format!(
            "HTTP {code}: {}",
            resp.into_string().unwrap_or_default()
        ))),
        Err(e) => Err(Post::Unreachable(e.to_string())),
    }
}

fn walk(dir: &Path, depth: u32, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if depth > 0 {
                walk(&p, depth - 1, f);
            }
        } else {
            f(&p);
        }
    }
}

fn open_kmsg(path: &Path, nonblock: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    if nonblock {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(0o4000); // O_NONBLOCK: stop at the end of the ring instead of waiting
    }
    o.open(path)
}

/// Reads `/dev/kmsg` records. The device returns one record per `read()`; a regular file (a
/// saved copy, tests) is read line by line.
struct KmsgReader {
    f: std::io::BufReader<std::fs::File>,
    device: bool,
    buf: Vec<u8>,
}

impl KmsgReader {
    fn new(f: std::fs::File) -> Self {
        let device = f.metadata().map(|m| !m.is_file()).unwrap_or(false);
        KmsgReader {
            f: std::io::BufReader::with_capacity(1 << 16, f),
            device,
            buf: vec![0; 16 * 1024],
        }
    }

    fn next_record(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.device {
            loop {
                match self.f.get_mut().read(&mut self.buf) {
                    Ok(0) => return Ok(None),
                    Ok(n) => {
                        let rec = &self.buf[..n];
                        // Dictionary lines (` KEY=VALUE`) follow the first newline.
                        let end = rec.iter().position(|&b| b == b'\n').unwrap_or(n);
                        return Ok(Some(rec[..end].to_vec()));
                    }
                    // Folklore: EPIPE means records were overwritten before we read them
                    // (the ring wrapped); the next read continues with the oldest record left.
                    Err(e) if e.raw_os_error() == Some(32) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.f.read_until(b'\n', &mut line)? == 0 {
                return Ok(None);
            }
            if line.first() == Some(&b' ') {
                continue; // dictionary line of a saved kmsg dump
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}
