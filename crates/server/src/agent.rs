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
//!
//! What the server answers decides what happens to an item ([`Outcome`]):
//! - 2xx: stored; the item is deleted.
//! - 400, 413, 422: the server will never take this item as it is (malformed, too large, no
//!   report in it). It moves to `rejected/` in the state directory with the server's reason
//!   beside it (`NAME.json`, `NAME.reason`), is counted and logged, and the spool goes on.
//! - anything else (401 and 403: a token to fix; 408, 429, 5xx, no answer): the item stays,
//!   the spool stops there and is tried again after a back-off that doubles up to 16 times
//!   `--retry`, or after the server's `Retry-After` when it is longer.
//!
//! Boot files are read as root from directories a local user may write to (`/var/crash`), so a
//! file is opened with `O_NOFOLLOW` and read only when it is a regular file owned by root (or
//! by the agent's own user) inside the directory searched, and at most [`MAX_FILE`] bytes of it
//! (its end: the crash is at the end of a log). The token only travels encrypted: an
//! `http://` server that is not on this machine is refused unless `--insecure-http` is given.

use kmortem_oops::input::parse_kmsg;
use kmortem_oops::Scanner;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One drain at a time: the `/dev/kmsg` loop and the retry thread share the spool, and two
/// concurrent drains would post the same file twice.
static DRAIN: Mutex<()> = Mutex::new(());

/// How long `/dev/kmsg` must stay quiet before a report still open in the scanner is cut and
/// shipped. Folklore: the scanner keeps a report open after `---[ end trace ]---` for a grace
/// period of lines (a panic or more frames may follow), and on a real kernel nothing may follow
/// for hours: a WARN() on an idle machine was never shipped (found in the QEMU test,
/// crates/cli/tests/agent_vm.rs; pinned by tests::kmsg_idle_flush_ships_open_report). The
/// netconsole receiver does the same after its own idle time.
pub const KMSG_IDLE_FLUSH: Duration = Duration::from_secs(3);

/// The time stamp of a log line in microseconds: a `/dev/kmsg` record's `ts_usec` field, or the
/// console's `[  12.345678]` (after an optional `<4>` syslog level, as pstore writes them).
pub fn line_usec(line: &[u8]) -> Option<u64> {
    if let Some(r) = parse_kmsg(line) {
        return Some(r.ts_usec);
    }
    let mut s = line;
    if s.first() == Some(&b'<') {
        let end = s.iter().take(6).position(|&b| b == b'>')?;
        s = &s[end + 1..];
    }
    let s = s.strip_prefix(b"[")?;
    let end = s.iter().take(24).position(|&b| b == b']')?;
    let stamp = std::str::from_utf8(&s[..end]).ok()?.trim();
    let (sec, frac) = stamp.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: u64 = sec.parse().ok()?;
    // `%06lu` since forever; scale other widths to microseconds.
    let mut f: u64 = frac.parse().ok()?;
    for _ in frac.len()..6 {
        f *= 10;
    }
    for _ in 6..frac.len() {
        f /= 10;
    }
    sec.checked_mul(1_000_000)?.checked_add(f)
}

/// The idempotency key of one report: host, the time stamp of its first line, and its title.
///
/// Folklore: after a panic, pstore's `dmesg-ramoops-N` holds the tail of the log *as it was*,
/// so a WARNING shipped live from /dev/kmsg an hour before is in it again; and with ramoops'
/// default `max_reason` (oops included) one BUG() with `panic_on_oops` leaves two records
/// (`Oops#1` and `Panic#2`) with the same report in both. Keyed by file or by boot id, each
/// went to the server again as a new report (seen in the QEMU test,
/// crates/cli/tests/agent_vm.rs). The first line's stamp (`ts_usec` in /dev/kmsg,
/// `[sec.usec]` in pstore: the same printk clock, same microsecond) names the report the same
/// way in every source, so the server's idempotency check keeps one. Pinned by
/// tests::pstore_and_kmsg_give_the_same_key.
pub fn report_key(host: &str, first_usec: u64, title: &str) -> String {
    format!(
        "rep:{:08x}:{first_usec}:{:08x}",
        fnv1a(host.as_bytes()) as u32,
        fnv1a(title.as_bytes()) as u32
    )
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("server refused {0}: {1}")]
    Refused(String, String),
    #[error("{0}")]
    Config(String),
}

/// Most bytes read from one boot file (its last ones).
pub const MAX_FILE: u64 = 16 << 20;

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
    /// PEM file of the CA(s) that sign the server's certificate (`https://` servers); the
    /// system's web roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// Allow a plain `http://` server that is not on this machine (the token goes in clear).
    pub insecure_http: bool,
}

impl AgentOptions {
    /// Options with the defaults of `kmortem agent` for everything but the server and token.
    pub fn new(server: &str, token: &str, host: &str, state_dir: PathBuf) -> Self {
        AgentOptions {
            server: server.into(),
            token: token.into(),
            host: host.into(),
            state_dir,
            kmsg: None,
            pstore_dirs: Vec::new(),
            crash_dir: None,
            once: true,
            retry: Duration::from_secs(30),
            ca_file: None,
            insecure_http: false,
        }
    }
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
    /// Items the server refused for good (moved to `rejected/`).
    pub rejected: usize,
    /// Boot files not read: not a regular file, not owned by root, outside the directory.
    pub refused_files: usize,
    /// /dev/kmsg records overwritten before the agent read them (gaps in the sequence).
    pub kmsg_lost: u64,
}

pub struct Agent {
    opts: AgentOptions,
    http: ureq::Agent,
    spool: PathBuf,
    rejected: PathBuf,
    /// After a retryable failure: how long to wait before the next try (the back-off, or the
    /// server's Retry-After), and how many failures in a row.
    pub retry_after: Option<Duration>,
    failures: u32,
    sent_path: PathBuf,
    sent: HashSet<String>,
    counter: u64,
    pub summary: Summary,
    /// Wakes the sender thread (following mode): the kmsg loop never posts itself.
    kick: Option<mpsc::Sender<()>>,
}

impl Agent {
    pub fn new(opts: AgentOptions) -> Result<Agent, AgentError> {
        let http = http_agent(&opts)?;
        let spool = opts.state_dir.join("spool");
        std::fs::create_dir_all(&spool).map_err(io(&spool))?;
        let rejected = opts.state_dir.join("rejected");
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
            http,
            spool,
            rejected,
            retry_after: None,
            failures: 0,
            sent_path,
            sent,
            counter,
            summary: Summary::default(),
            kick: None,
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
            let root = if source == "agent:kdump" {
                self.opts.crash_dir.clone()
            } else {
                self.opts
                    .pstore_dirs
                    .iter()
                    .find(|d| p.starts_with(d))
                    .cloned()
            };
            let data = match root.map(|r| read_boot_file(&r, &p, MAX_FILE)) {
                Some(Ok(d)) => d,
                Some(Err(why)) => {
                    tracing::warn!("not reading {}: {why}", p.display());
                    self.summary.refused_files += 1;
                    continue;
                }
                None => continue,
            };
            let compressed = p.extension().is_some_and(|e| e == "z");
            let items = boot_items(&self.opts.host, source, data, compressed);
            if !items.is_empty() {
                self.summary.boot_files += 1;
            }
            for item in items {
                self.enqueue(item)?;
            }
        }
        Ok(())
    }

    /// Read `/dev/kmsg` (or a file of kmsg records), queue each report found. With `once`, stop
    /// at the end of what is there; otherwise follow forever, sending as reports complete, and
    /// cut a report still open once the log has been quiet for [`KMSG_IDLE_FLUSH`].
    pub fn follow_kmsg(&mut self, path: &Path) -> Result<(), AgentError> {
        let f = open_kmsg(path, self.opts.once).map_err(io(path))?;
        let mut reader = KmsgReader::new(f);
        if self.opts.once {
            return self.scan_kmsg(|_| reader.next_record().map(Rec::from), KMSG_IDLE_FLUSH);
        }
        // Blocking reads on a thread of their own, so the scan loop can wake up when idle.
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<Option<Vec<u8>>>>(1024);
        std::thread::spawn(move || loop {
            let r = reader.next_record();
            let end = !matches!(r, Ok(Some(_)));
            if tx.send(r).is_err() || end {
                return;
            }
        });
        self.scan_kmsg(
            |idle| match rx.recv_timeout(idle) {
                Ok(r) => r.map(Rec::from),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(Rec::Idle),
                Err(mpsc::RecvTimeoutError::Disconnected) => Ok(Rec::End),
            },
            KMSG_IDLE_FLUSH,
        )
        .map_err(|e| match e {
            AgentError::Io(_, e) => AgentError::Io(path.display().to_string(), e),
            e => e,
        })
    }

    /// The scan loop behind [`Agent::follow_kmsg`]: `next(idle)` returns a record, the end, or
    /// [`Rec::Idle`] when nothing came for `idle`.
    pub fn scan_kmsg(
        &mut self,
        mut next: impl FnMut(Duration) -> std::io::Result<Rec>,
        idle: Duration,
    ) -> Result<(), AgentError> {
        let boot = Self::boot_id();
        let release = Self::kernel_release();
        let mut scanner = Scanner::new();
        // (sequence number, time stamp) of each line fed, to key reports by their first line.
        let mut lines: Vec<(u64, Option<u64>)> = Vec::new();
        let mut last_seq: Option<u64> = None;
        loop {
            let rec = match next(idle) {
                Ok(Rec::Record(r)) => r,
                Ok(Rec::End) => break,
                Ok(Rec::Idle) => {
                    if !scanner.is_idle() {
                        let reports = std::mem::take(&mut scanner).finish();
                        self.kmsg_reports(reports, &lines, &boot, &release)?;
                        lines.clear();
                    }
                    continue;
                }
                Err(e) => return Err(AgentError::Io("/dev/kmsg".into(), e)),
            };
            let (seq, us) = parse_kmsg(&rec).map_or((0, None), |r| (r.seq, Some(r.ts_usec)));
            // Folklore: when the ring wraps past a reader, read() fails once with EPIPE and the
            // next read returns the oldest record left (Documentation/ABI/testing/dev-kmsg);
            // the gap in sequence numbers is what was lost. Seen in the QEMU test
            // (crates/cli/tests/agent_vm.rs, the agent stopped while /dev/kmsg is flooded);
            // pinned by tests::kmsg_sequence_gap_is_counted.
            if us.is_some() {
                if let Some(last) = last_seq.filter(|&l| seq > l + 1) {
                    let lost = seq - last - 1;
                    self.summary.kmsg_lost += lost;
                    tracing::warn!(
                        "/dev/kmsg: {lost} record(s) were overwritten before they were read \
                         (seq {} to {}); reports in them are lost",
                        last + 1,
                        seq - 1
                    );
                }
                last_seq = Some(seq);
            }
            lines.push((seq, us));
            let reports = scanner.push_line(&rec);
            self.kmsg_reports(reports, &lines, &boot, &release)?;
            if lines.len() > 100_000 {
                // Keep memory bounded: line numbers only need to reach back one report.
                let keep = lines.split_off(lines.len() - 50_000);
                let dropped = lines.len();
                lines = vec![(0, None); dropped];
                lines.extend(keep);
            }
        }
        let reports = scanner.finish();
        self.kmsg_reports(reports, &lines, &boot, &release)
    }

    fn kmsg_reports(
        &mut self,
        reports: Vec<kmortem_oops::Report>,
        lines: &[(u64, Option<u64>)],
        boot: &str,
        release: &Option<String>,
    ) -> Result<(), AgentError> {
        if reports.is_empty() {
            return Ok(());
        }
        for r in reports {
            let (seq, us) = lines
                .get(r.start_line.saturating_sub(1))
                .copied()
                .unwrap_or((0, None));
            self.summary.kmsg_reports += 1;
            let key = match us {
                Some(us) => report_key(&self.opts.host, us, &r.title),
                None => format!("kmsg:{boot}:{seq}"),
            };
            self.enqueue(Item {
                host: self.opts.host.clone(),
                log: r.text,
                key,
                source: "agent:kmsg".into(),
                kernel_release: r.kernel_release.or_else(|| release.clone()),
            })?;
        }
        // Ship now: the machine may be about to die (a WARN before a panic). Folklore: posting
        // from this loop stalled reading /dev/kmsg for as long as the server took to answer
        // (up to the 30 s timeout per item when it is unreachable without a refusal), and a
        // stalled reader is overrun by the ring; the sender thread posts instead. Pinned by
        // tests::kmsg_loop_does_not_wait_for_a_silent_server.
        match &self.kick {
            Some(k) => {
                let _ = k.send(());
            }
            None if !self.opts.once => {
                let _ = self.drain();
            }
            None => {}
        }
        Ok(())
    }

    /// Post every spooled item in order; stop at the first retryable failure (then
    /// [`Agent::retry_after`] says when to try again). Returns how many items are still
    /// spooled.
    pub fn drain(&mut self) -> Result<usize, AgentError> {
        let _one = DRAIN.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .map_err(io(&self.spool))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let mut left = names.len();
        self.retry_after = None;
        for p in names {
            let Ok(body) = std::fs::read(&p) else {
                continue;
            };
            let item: Item = match serde_json::from_slice(&body) {
                Ok(i) => i,
                Err(e) => {
                    // A damaged spool file can never be sent; it is kept, not deleted.
                    self.reject(&p, &format!("damaged spool file: {e}"))?;
                    left -= 1;
                    continue;
                }
            };
            match post(&self.http, &self.opts.server, &self.opts.token, &body) {
                Outcome::Stored => {
                    self.summary.sent += 1;
                    self.failures = 0;
                    self.remember(&item.key)?;
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
                Outcome::Rejected(code, msg) => {
                    tracing::warn!(
                        "server refused {} for good (HTTP {code}): {msg}; moved to {}",
                        item.key,
                        self.rejected.display()
                    );
                    self.reject(&p, &format!("HTTP {code}: {msg}"))?;
                }
                Outcome::Retry(msg, after) => {
                    self.failures = self.failures.saturating_add(1);
                    let backoff = self.opts.retry * 2u32.pow(self.failures.min(5) - 1);
                    let wait = after.map_or(backoff, |a| a.max(backoff));
                    tracing::info!(
                        "{msg}: {} not stored; {left} item(s) stay spooled, next try in {:.0} s",
                        item.key,
                        wait.as_secs_f64()
                    );
                    self.retry_after = Some(wait);
                    return Ok(left);
                }
            }
            left -= 1;
        }
        Ok(left)
    }

    /// Move a spool file to `rejected/`, with the reason in `NAME.reason`.
    fn reject(&mut self, p: &Path, reason: &str) -> Result<(), AgentError> {
        std::fs::create_dir_all(&self.rejected).map_err(io(&self.rejected))?;
        let name = p.file_name().unwrap_or_default();
        let dst = self.rejected.join(name);
        let why = dst.with_extension("reason");
        std::fs::write(&why, format!("{reason}\n")).map_err(io(&why))?;
        std::fs::rename(p, &dst).map_err(io(&dst))?;
        self.summary.rejected += 1;
        Ok(())
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

    /// Start the sender thread: it drains the spool when kicked (a new item) and every
    /// `retry` while items stay spooled.
    pub fn start_sender(&mut self) {
        let (tx, rx) = mpsc::channel::<()>();
        self.kick = Some(tx);
        let opts = AgentOptions {
            host: String::new(),
            kmsg: None,
            pstore_dirs: vec![],
            crash_dir: None,
            once: true,
            ..self.opts.clone()
        };
        std::thread::spawn(move || {
            let Ok(mut a) = Agent::new(opts.clone()) else {
                return;
            };
            loop {
                let wait = a.retry_after.unwrap_or(opts.retry);
                let start = std::time::Instant::now();
                let stop = matches!(
                    rx.recv_timeout(wait),
                    Err(mpsc::RecvTimeoutError::Disconnected)
                );
                while rx.try_recv().is_ok() {}
                // A new item while the server asked us to wait: wait out the rest first.
                if a.retry_after.is_some() && !stop {
                    if let Some(rest) = wait.checked_sub(start.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
                let _ = a.drain();
                if stop {
                    return;
                }
            }
        });
    }

    /// The whole agent: boot files, then /dev/kmsg; sends as it goes and retries the spool.
    pub fn run(&mut self) -> Result<usize, AgentError> {
        self.collect_boot()?;
        let _ = self.drain();
        if let Some(k) = self.opts.kmsg.clone() {
            if self.opts.once {
                self.follow_kmsg(&k)?;
            } else {
                self.start_sender();
                self.follow_kmsg(&k)?;
            }
        }
        let mut left = self.drain()?;
        // Once: a few more tries for what the server asked to retry (429, 5xx, ...).
        let mut tries = 0;
        while self.opts.once && left > 0 && tries < ONCE_RETRIES {
            let Some(wait) = self.retry_after else { break };
            std::thread::sleep(wait.min(Duration::from_secs(60)));
            left = self.drain()?;
            tries += 1;
        }
        Ok(left)
    }
}

/// What the kmsg scan loop gets next.
#[derive(Debug)]
pub enum Rec {
    Record(Vec<u8>),
    /// Nothing arrived for the idle time.
    Idle,
    End,
}

impl From<Option<Vec<u8>>> for Rec {
    fn from(r: Option<Vec<u8>>) -> Rec {
        r.map_or(Rec::End, Rec::Record)
    }
}

/// Extra drains `--once` makes for items the server asked to retry.
const ONCE_RETRIES: usize = 3;

/// What became of one posted item.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: stored.
    Stored,
    /// 400, 413, 422: never stored as it is; the status and the server's reason.
    Rejected(u16, String),
    /// Anything else: try again (after the server's `Retry-After`, if it gave one).
    Retry(String, Option<Duration>),
}

/// Statuses a retry cannot fix: the item itself is what the server refuses.
pub fn is_final_refusal(code: u16) -> bool {
    matches!(code, 400 | 413 | 422)
}

/// The server's reason: its JSON `error`, else the start of the body.
fn reason(resp: ureq::Response) -> String {
    let text = resp.into_string().unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v["error"].is_string() => v["error"].as_str().unwrap_or_default().to_string(),
        _ => text.chars().take(500).collect(),
    }
}

fn post(http: &ureq::Agent, server: &str, token: &str, body: &[u8]) -> Outcome {
    let url = format!("{}/api/v1/reports", server.trim_end_matches('/'));
    let r = http
        .post(&url)
        .timeout(Duration::from_secs(30))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_bytes(body);
    match r {
        Ok(_) => Outcome::Stored,
        Err(ureq::Error::Status(code, resp)) if is_final_refusal(code) => {
            Outcome::Rejected(code, reason(resp))
        }
        Err(ureq::Error::Status(code, resp)) => {
            // Retry-After in seconds (the HTTP-date form is not worth a date parser here:
            // the back-off applies instead).
            let after = resp
                .header("Retry-After")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600)));
            Outcome::Retry(
                format!("server answered HTTP {code} ({})", reason(resp)),
                after,
            )
        }
        Err(e) => Outcome::Retry(format!("server unreachable ({e})"), None),
    }
}

/// Is `url`'s host this machine (so that plain HTTP does not cross a network)?
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP client: TLS with the system's web roots, or with `ca_file`'s CAs only; plain
/// HTTP only to this machine unless `insecure_http`.
fn http_agent(opts: &AgentOptions) -> Result<ureq::Agent, AgentError> {
    let url = opts.server.as_str();
    if url.starts_with("http://") && !opts.insecure_http && !is_loopback_url(url) {
        return Err(AgentError::Config(format!(
            "refusing to send the token in clear to {url}: use https:// (the server's \
             --tls-cert, and --ca-file here), or pass --insecure-http"
        )));
    }
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(AgentError::Config(format!(
            "--server {url:?}: expected http://HOST:PORT or https://HOST:PORT"
        )));
    }
    let mut b = ureq::AgentBuilder::new();
    if let Some(ca) = &opts.ca_file {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let bad = |e: String| AgentError::Config(format!("--ca-file {}: {e}", ca.display()));
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
            roots
                .add(c.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        b = b.tls_config(Arc::new(cfg));
    }
    Ok(b.build())
}

/// Read a boot file found under `root`, as root, without being tricked into reading another
/// file: `O_NOFOLLOW` (a symlink planted in `/var/crash` fails to open), then on the open file
/// itself: a regular file (not a FIFO that blocks, not a device), owned by root or by us, and
/// really inside `root` (no symlinked directory on the way). At most `cap` bytes, the last ones.
/// Pinned by tests::boot_files_refuse_symlinks_and_foreign_files.
pub fn read_boot_file(root: &Path, p: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use std::io::{Seek, SeekFrom};
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let mut f = o.open(p).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => "it is a symbolic link".to_string(),
        _ => e.to_string(),
    })?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != 0 && meta.uid() != me {
            return Err(format!("owned by uid {}, not by root", meta.uid()));
        }
    }
    let real_root = root.canonicalize().map_err(|e| e.to_string())?;
    let real = p
        .parent()
        .ok_or("no parent directory")?
        .canonicalize()
        .map_err(|e| e.to_string())?;
    if !real.starts_with(&real_root) {
        return Err(format!("it is outside {}", root.display()));
    }
    let len = meta.len();
    if len > cap {
        f.seek(SeekFrom::Start(len - cap))
            .map_err(|e| e.to_string())?;
    }
    let mut data = Vec::new();
    f.take(cap)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    Ok(data)
}

/// The items to ship for one boot file (a pstore record, a kdump dmesg): the file is cut here,
/// not on the server, so that each report gets its own key ([`report_key`]). A file with no
/// report the parser knows is shipped whole (the server keeps it raw); an empty one, not at all.
/// `compressed`: pstore's `.enc.z` ([`inflate`]).
pub fn boot_items(host: &str, source: &str, mut data: Vec<u8>, compressed: bool) -> Vec<Item> {
    if compressed {
        if let Some(plain) = inflate(&data) {
            data = plain;
        }
    }
    if data.is_empty() {
        return Vec::new();
    }
    let digest = fnv1a(&data);
    let mut scanner = Scanner::new();
    let mut stamps: Vec<Option<u64>> = Vec::new();
    let mut reports = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        stamps.push(line_usec(line));
        reports.extend(scanner.push_line(line));
    }
    reports.extend(scanner.finish());
    if reports.is_empty() {
        return vec![Item {
            host: host.into(),
            // The server refuses invalid UTF-8; pstore files can hold garbage.
            log: String::from_utf8_lossy(&data).into_owned(),
            key: format!("boot:{digest:016x}"),
            source: source.into(),
            kernel_release: None,
        }];
    }
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let key = match stamps
                .get(r.start_line.saturating_sub(1))
                .copied()
                .flatten()
            {
                Some(us) => report_key(host, us, &r.title),
                None => format!("boot:{digest:016x}:{i}"),
            };
            Item {
                host: host.into(),
                log: r.text,
                key,
                source: source.into(),
                kernel_release: r.kernel_release,
            }
        })
        .collect()
}

/// Folklore: pstore names a record it could not decompress `dmesg-<backend>-<id>.enc.z`
/// (fs/pstore/inode.c, `record->compressed ? ".enc.z" : ""`): the kernel reading it lacks the
/// compressor the crashed kernel used (before 6.6 one of deflate/lzo/lz4/zstd/842 was chosen at
/// build time; 6.6 kept only deflate), or its decompression failed. Deflate records are raw
/// deflate streams (crypto/deflate.c and 6.6's zlib calls both use negative window bits), which
/// are inflated here (zlib-wrapped as a fallback); anything else is shipped as it is. Output is
/// capped at 16 MiB. Pinned by tests::enc_z_pstore_record_is_inflated.
fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    const CAP: u64 = 16 << 20;
    let try_read = |r: &mut dyn Read| {
        let mut out = Vec::new();
        r.take(CAP)
            .read_to_end(&mut out)
            .ok()
            .filter(|_| !out.is_empty())
            .map(|_| out)
    };
    try_read(&mut flate2::read::DeflateDecoder::new(data))
        .or_else(|| try_read(&mut flate2::read::ZlibDecoder::new(data)))
}

fn walk(dir: &Path, depth: u32, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        // Not `is_dir()`: that follows a symbolic link out of the directory.
        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        if is_dir {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/");
        std::fs::read_to_string(format!("{p}{name}"))
            .unwrap_or_else(|e| panic!("examples/{name} (repo root) is missing: {e}"))
    }

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p =
                std::env::temp_dir().join(format!("kmortem-agent-{tag}-{}", std::process::id()));
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

    fn agent(dir: &Path) -> Agent {
        Agent::new(AgentOptions {
            server: "http://127.0.0.1:9".into(),
            token: "t".into(),
            host: "vm-1".into(),
            state_dir: dir.join("state"),
            kmsg: None,
            pstore_dirs: vec![dir.join("pstore")],
            crash_dir: None,
            once: true,
            retry: Duration::from_secs(1),
            ca_file: None,
            insecure_http: false,
        })
        .unwrap()
    }

    fn spooled(dir: &Path) -> Vec<Item> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("state/spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// `[  812.330418] text` -> `4,SEQ,812330418,-;text`
    fn as_kmsg(console: &str) -> Vec<Vec<u8>> {
        console
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let us = line_usec(l.as_bytes()).unwrap();
                let text = &l[l.find("] ").unwrap() + 2..];
                format!("4,{},{us},-;{text}", 900 + i).into_bytes()
            })
            .collect()
    }

    #[test]
    fn line_usec_reads_kmsg_console_and_pstore_stamps() {
        assert_eq!(line_usec(b"4,1203,5046023,-;WARNING: x"), Some(5_046_023));
        assert_eq!(line_usec(b"[    5.046023] WARNING: x"), Some(5_046_023));
        assert_eq!(line_usec(b"<4>[  812.330418] cut here"), Some(812_330_418));
        assert_eq!(line_usec(b"[ 1.5] x"), Some(1_500_000));
        assert_eq!(line_usec(b"Panic#2 Part1"), None);
        assert_eq!(line_usec(b"[abc.def] x"), None);
        assert_eq!(line_usec(b"<4"), None);
        assert_eq!(line_usec(b"[99999999999999999999.000001] x"), None);
    }

    /// A WARNING shipped live from /dev/kmsg, then found again in the pstore record a later
    /// panic left (as `<4>[stamp] text` lines after a `Panic#1 Part1` header, like ramoops on
    /// 6.1 writes them), gets the same key both times; twice in one file (the Oops and Panic
    /// records) too.
    #[test]
    fn pstore_and_kmsg_give_the_same_key() {
        let dir = Tmp::new("samekey");
        let d = &dir.0;
        let warn = example("warning.log");
        let mut a = agent(d);
        let mut recs = as_kmsg(&warn).into_iter();
        a.scan_kmsg(
            |_| Ok(recs.next().map_or(Rec::End, Rec::Record)),
            KMSG_IDLE_FLUSH,
        )
        .unwrap();
        let live = spooled(d);
        assert_eq!(live.len(), 1, "{live:?}");
        assert!(live[0].key.starts_with("rep:"), "{}", live[0].key);

        std::fs::create_dir_all(d.join("pstore")).unwrap();
        let mut pstore = String::from("Panic#1 Part1\n");
        for l in warn.lines() {
            pstore.push_str(&format!("<4>{l}\n"));
        }
        pstore.push_str("<0>[  813.000001] Kernel panic - not syncing: stop\n");
        std::fs::write(d.join("pstore/dmesg-ramoops-0"), &pstore).unwrap();
        std::fs::write(
            d.join("pstore/dmesg-ramoops-1"),
            pstore.replace("Panic#1", "Oops#2"),
        )
        .unwrap();
        let mut b = agent(d);
        b.collect_boot().unwrap();
        let all = spooled(d);
        let boot: Vec<&Item> = all.iter().filter(|i| i.source == "agent:pstore").collect();
        assert!(!boot.is_empty(), "{all:?}");
        let warning: Vec<&&Item> = boot
            .iter()
            .filter(|i| i.log.contains("WARNING: CPU: 0 PID: 1734"))
            .collect();
        assert_eq!(warning.len(), 2, "one per pstore file: {boot:?}");
        for w in warning {
            assert_eq!(w.key, live[0].key, "pstore vs kmsg key");
        }
        // A different title or host would not collide.
        assert_ne!(report_key("vm-1", 1, "a"), report_key("vm-1", 1, "b"));
        assert_ne!(report_key("vm-1", 1, "a"), report_key("vm-2", 1, "a"));
    }

    #[test]
    fn enc_z_pstore_record_is_inflated() {
        let dir = Tmp::new("encz");
        let d = &dir.0;
        std::fs::create_dir_all(d.join("pstore")).unwrap();
        let mut text = String::from("Oops#1 Part1\n");
        for l in example("null-deref.log").lines() {
            text.push_str(&format!("<4>{l}\n"));
        }
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(text.as_bytes()).unwrap();
        let z = enc.finish().unwrap();
        std::fs::write(d.join("pstore/dmesg-ramoops-0.enc.z"), &z).unwrap();
        // Garbage that does not inflate is shipped as it is (and finds no report).
        std::fs::write(d.join("pstore/dmesg-ramoops-1.enc.z"), b"\x01\x02garbage").unwrap();
        let mut a = agent(d);
        a.collect_boot().unwrap();
        let items = spooled(d);
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(
            items[0]
                .log
                .contains("BUG: kernel NULL pointer dereference"),
            "{items:?}"
        );
        assert!(items[0].key.starts_with("rep:"), "{}", items[0].key);
        assert!(items[1].log.contains("garbage"), "{items:?}");
    }

    #[test]
    fn kmsg_sequence_gap_is_counted() {
        let dir = Tmp::new("gap");
        let mut a = agent(&dir.0);
        let mut recs = [
            &b"6,10,100,-;a"[..],
            b"6,11,101,-;b",
            b"6,50,150,-;c",
            b"6,51,151,-;d",
        ]
        .into_iter();
        a.scan_kmsg(
            |_| Ok(recs.next().map_or(Rec::End, |r| Rec::Record(r.to_vec()))),
            KMSG_IDLE_FLUSH,
        )
        .unwrap();
        assert_eq!(a.summary.kmsg_lost, 38);
    }

    /// A server that accepts connections and never answers must not hold up /dev/kmsg.
    #[test]
    fn kmsg_loop_does_not_wait_for_a_silent_server() {
        let dir = Tmp::new("silent");
        let d = &dir.0;
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = Agent::new(AgentOptions {
            server: format!("http://{}", silent.local_addr().unwrap()),
            once: false,
            ..agent(d).opts
        })
        .unwrap();
        a.start_sender();
        let mut recs = Vec::new();
        for i in 0..5u64 {
            let shift = i * 10_000_000;
            for r in as_kmsg(&example("warning.log")) {
                let r = String::from_utf8(r).unwrap();
                let mut f = r.splitn(4, ',');
                let (pri, seq, us, rest) = (
                    f.next().unwrap(),
                    f.next().unwrap(),
                    f.next().unwrap().parse::<u64>().unwrap(),
                    f.next().unwrap(),
                );
                recs.push(format!("{pri},{seq},{},{rest}", us + shift).into_bytes());
            }
        }
        let mut it = recs.into_iter();
        let t = std::time::Instant::now();
        a.scan_kmsg(
            |_| Ok(it.next().map_or(Rec::End, Rec::Record)),
            KMSG_IDLE_FLUSH,
        )
        .unwrap();
        let took = t.elapsed();
        assert_eq!(a.summary.kmsg_reports, 5);
        assert!(
            took < Duration::from_secs(5),
            "the kmsg loop waited {took:?}"
        );
        drop(silent);
    }

    /// A symlink planted in the crash directory (to make root ship /etc/shadow), a symlinked
    /// directory, a FIFO (a read that blocks forever) and a file owned by another user are
    /// refused; a big file is read to its last `cap` bytes.
    #[test]
    fn boot_files_refuse_symlinks_and_foreign_files() {
        let dir = Tmp::new("bootfiles");
        let d = &dir.0;
        let crash = d.join("crash");
        std::fs::create_dir_all(crash.join("host-1")).unwrap();
        std::fs::create_dir_all(d.join("elsewhere")).unwrap();
        std::fs::write(d.join("elsewhere/dmesg.txt"), "secret\n").unwrap();
        std::fs::write(crash.join("host-1/dmesg.txt"), "0123456789").unwrap();
        std::os::unix::fs::symlink(
            d.join("elsewhere/dmesg.txt"),
            crash.join("host-1/dmesg.lnk"),
        )
        .unwrap();
        std::os::unix::fs::symlink(d.join("elsewhere"), crash.join("linked")).unwrap();
        let fifo = crash.join("host-1/dmesg.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let read = |p: &Path| read_boot_file(&crash, p, 4);
        assert_eq!(read(&crash.join("host-1/dmesg.txt")).unwrap(), b"6789");
        let e = read(&crash.join("host-1/dmesg.lnk")).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        let e = read(&crash.join("linked/dmesg.txt")).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        let e = read(&fifo).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let other = crash.join("host-1/dmesg.other");
            std::fs::write(&other, "x").unwrap();
            std::os::unix::fs::chown(&other, Some(4321), None).unwrap();
            let e = read(&other).unwrap_err();
            assert!(e.contains("uid 4321"), "{e}");
        } else {
            println!("not root: the owner check is not exercised");
        }
        // The walk does not descend into the symlinked directory either.
        let mut a = Agent::new(AgentOptions {
            crash_dir: Some(crash.clone()),
            ..agent(d).opts
        })
        .unwrap();
        a.collect_boot().unwrap();
        assert_eq!(
            a.summary.refused_files,
            2 + usize::from(unsafe { libc::geteuid() } == 0)
        );
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for (u, ok) in [
            ("http://127.0.0.1:8750", true),
            ("http://localhost:8750/", true),
            ("http://[::1]:8750", true),
            ("http://127.9.9.9", true),
            ("http://10.0.0.1:8750", false),
            ("http://crash.example:8750", false),
            ("http://localhost.evil.example", false),
            ("http://127.0.0.1@crash.example", false),
        ] {
            assert_eq!(is_loopback_url(u), ok, "{u}");
        }
        let dir = Tmp::new("insecure");
        let o = AgentOptions::new("http://crash.example:8750", "t", "h", dir.0.join("s"));
        let e = Agent::new(o.clone()).err().expect("refused");
        assert!(e.to_string().contains("--insecure-http"), "{e}");
        assert!(Agent::new(AgentOptions {
            insecure_http: true,
            ..o.clone()
        })
        .is_ok());
        assert!(Agent::new(AgentOptions {
            server: "https://crash.example:8750".into(),
            ..o
        })
        .is_ok());
    }

    /// A report whose end marker is the last thing the kernel printed is shipped once the log
    /// stays quiet, not when (if ever) the next line arrives.
    #[test]
    fn kmsg_idle_flush_ships_open_report() {
        let dir = Tmp::new("idle");
        let d = &dir.0;
        let mut a = agent(d);
        let mut recs = as_kmsg(&example("warning.log")).into_iter();
        let spool = d.join("state/spool");
        let count = || std::fs::read_dir(&spool).unwrap().count();
        let mut seen_before_idle = None;
        let mut seen_after_idle = None;
        let mut calls = 0;
        a.scan_kmsg(
            |_| {
                calls += 1;
                if let Some(r) = recs.next() {
                    return Ok(Rec::Record(r));
                }
                if seen_before_idle.is_none() {
                    seen_before_idle = Some(count());
                    return Ok(Rec::Idle);
                }
                if seen_after_idle.is_none() {
                    seen_after_idle = Some(count());
                }
                Ok(Rec::End)
            },
            KMSG_IDLE_FLUSH,
        )
        .unwrap();
        assert!(calls > 30);
        assert_eq!(seen_before_idle, Some(0), "still open after the end marker");
        assert_eq!(
            seen_after_idle,
            Some(1),
            "the idle flush did not ship the report"
        );
        assert_eq!(a.summary.kmsg_reports, 1);
    }
}
