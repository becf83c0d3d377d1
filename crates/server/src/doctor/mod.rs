//! `kmortem doctor`: every reason a crash on this host would go unseen, each with a verdict
//! (`ok`, `warn`, `fail`), what was read to reach it, and the exact fix.
//!
//! The checks read files only (`/proc`, `/sys`, `/etc`, `/lib/systemd`, `/boot`, ...), all
//! under a configurable root ([`Options::root`], `/` by default), so that tests build fake
//! trees; the two exceptions are the free space of kdump's dump directory (`statvfs` of the
//! directory under the root) and, when [`Options::network`] is set, one HTTP request to the
//! agent's server. A file that cannot be read never aborts a run: its check says so, as a
//! `warn` with the reason.
//!
//! One rule decides the verdicts: **`fail`** when something that is configured is broken, or
//! when the settings together guarantee that a crash leaves nothing (lockups turned into
//! panics, panics into reboots, and nothing that records them); **`warn`** when a way of
//! capturing a crash is missing or weaker than it should be; **`ok`** otherwise.
//!
//! The checks, by family: [`kdump`] (reserved, loaded, service, dump level and space),
//! [`panic`] (the panic sysctls as one combination, the lockup watchdogs), [`netconsole`],
//! [`pstore`], [`console`] (console, framebuffer and `nomodeset`, printk level and buffer),
//! [`debuginfo`] (a vmlinux with the running kernel's build-id, for `kmortem decode`) and
//! [`agent`] (the kmortem agent's server and spool). The JSON is documented in
//! docs/json/doctor.md; its check names are stable, so that the agent can ship a report and the
//! server count the hosts that cannot capture a crash.

pub mod agent;
pub mod console;
pub mod debuginfo;
pub mod kdump;
pub mod netconsole;
pub mod panic;
pub mod pstore;
#[cfg(test)]
mod tests;

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One file (or directory) a check read, and what it held, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read {
    /// The path as on the host (`/proc/sys/kernel/panic`), without the root prefix.
    pub path: String,
    /// What it held (trimmed; long values cut at 300 characters, binary ones summarized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why it could not be read (`absent` for a file that does not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier (`kdump.loaded`, `panic.sysctls`, ...; docs/json/doctor.md lists them).
    pub name: &'static str,
    pub status: Status,
    /// What was found, in one or two sentences.
    pub detail: String,
    /// What to do about it: commands and file contents to copy. `None` when nothing needs doing.
    pub fix: Option<String>,
    /// The files read to reach the verdict.
    pub read: Vec<Read>,
}

/// Counts of each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
}

/// A whole run: what `kmortem doctor --json` prints, and what the agent will ship.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `/proc/sys/kernel/hostname` (or the agent's `--host`).
    pub host: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    /// `/proc/sys/kernel/random/boot_id`: which boot the verdicts are about.
    pub boot_id: Option<String>,
    /// Milliseconds since the Unix epoch when the checks ran.
    pub checked_at_ms: i64,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

impl Report {
    /// The worst verdict (`ok` for no checks).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// The check of that name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The text `kmortem doctor` prints: one block per check, worst first, then a summary.
    pub fn to_text(&self, verbose: bool) -> String {
        let mut out = format!(
            "kmortem doctor: host {}, kernel {}\n\n",
            self.host,
            self.kernel_release.as_deref().unwrap_or("unknown")
        );
        let mut order: Vec<&Check> = self.checks.iter().collect();
        order.sort_by_key(|c| std::cmp::Reverse(c.status));
        for c in order {
            let tag = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            out.push_str(&format!("{tag}  {:<18} {}\n", c.name, c.detail));
            if let Some(fix) = &c.fix {
                for (i, l) in fix.lines().enumerate() {
                    let head = if i == 0 { "fix:" } else { "" };
                    out.push_str(&format!("      {head:<18} {l}\n"));
                }
            }
            if verbose || c.status != Status::Ok {
                let read: Vec<String> = c
                    .read
                    .iter()
                    .map(|r| match (&r.value, &r.error) {
                        (Some(v), _) => format!("{} = {}", r.path, one_line(v, 80)),
                        (None, Some(e)) => format!("{} ({e})", r.path),
                        (None, None) => r.path.clone(),
                    })
                    .collect();
                if !read.is_empty() {
                    out.push_str(&format!("      {:<18} {}\n", "read:", read.join("; ")));
                }
            }
        }
        let s = self.summary;
        out.push_str(&format!(
            "\n{} fail, {} warn, {} ok: {}\n",
            s.fail,
            s.warn,
            s.ok,
            match self.worst() {
                Status::Fail => "a crash on this host can go unseen; fix the FAIL lines first",
                Status::Warn => "crashes are captured, with gaps (the WARN lines)",
                Status::Ok => "every way of capturing a crash checked is in place",
            }
        ));
        out
    }
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace('\n', "\\n");
    if s.chars().count() > max {
        format!("{}...", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

/// What to check, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The file system root the checks read under (`/`; a fake tree in tests).
    pub root: PathBuf,
    /// The agent's server, as `kmortem agent --server` takes it; `None`: read from the agent's
    /// systemd unit (`kmortem-agent.service`, `ExecStart=... --server URL`).
    pub server: Option<String>,
    /// The agent's token file (`--token-file`); `None`: from the unit, else
    /// `/etc/kmortem/token`.
    pub token_file: Option<PathBuf>,
    /// The agent's state directory (`--state-dir`); `None`: from the unit, else
    /// `/var/lib/kmortem-agent`.
    pub state_dir: Option<PathBuf>,
    /// Send one HTTP request to the agent's server (`GET /healthz`) to see that it answers.
    pub network: bool,
    /// Timeout of that request.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: PathBuf::from("/"),
            server: None,
            token_file: None,
            state_dir: None,
            network: true,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Reading under the root, recording every read for the check being built.
pub struct Ctx<'a> {
    pub opts: &'a Options,
    reads: Vec<Read>,
}

/// A cut value for [`Read::value`].
fn shown(s: &str) -> String {
    let t = s.trim();
    if t.chars().count() > 300 {
        format!("{}...", t.chars().take(300).collect::<String>())
    } else {
        t.to_string()
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "absent".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (run as root)".into(),
        _ => e.to_string(),
    }
}

impl<'a> Ctx<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Ctx {
            opts,
            reads: Vec::new(),
        }
    }

    /// `abs` (a path as on the host, `/proc/...`) under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.opts.root.join(abs.trim_start_matches('/'))
    }

    fn record(&mut self, path: &str, value: Option<String>, error: Option<String>) {
        // One entry per path: a later read of the same file replaces the earlier one.
        self.reads.retain(|r| r.path != path);
        self.reads.push(Read {
            path: path.to_string(),
            value,
            error,
        });
    }

    /// Read a text file; the error says why not (`absent`, `permission denied`, ...).
    pub fn read(&mut self, abs: &str) -> Result<String, String> {
        match std::fs::read(self.path(abs)) {
            Ok(b) => {
                let s = String::from_utf8_lossy(&b).into_owned();
                self.record(abs, Some(shown(&s)), None);
                Ok(s)
            }
            Err(e) => {
                let r = io_reason(&e);
                self.record(abs, None, Some(r.clone()));
                Err(r)
            }
        }
    }

    /// Read a file without recording it (for files whose content is summarized by the caller
    /// with [`Ctx::note`]).
    pub fn read_bytes_quiet(&self, abs: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.path(abs)).map_err(|e| io_reason(&e))
    }

    /// Record a read whose value the caller summarized (binary files, directory listings).
    pub fn note(&mut self, abs: &str, value: Result<String, String>) {
        match value {
            Ok(v) => self.record(abs, Some(shown(&v)), None),
            Err(e) => self.record(abs, None, Some(e)),
        }
    }

    /// A file that may legitimately be absent: `Ok(None)` then (recorded as `absent`).
    pub fn read_opt(&mut self, abs: &str) -> Result<Option<String>, String> {
        match self.read(abs) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e == "absent" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An integer file (`/proc/sys/...`): `Err` with the reason for unreadable or odd values.
    pub fn read_i64(&mut self, abs: &str) -> Result<i64, String> {
        let s = self.read(abs)?;
        let t = s.split_whitespace().next().unwrap_or("");
        t.parse::<i64>()
            .map_err(|_| format!("{abs} holds {:?}, not a number", one_line(s.trim(), 40)))
    }

    /// An integer file that may be absent on some kernels (`hardlockup_panic` without the
    /// hard-lockup detector, `unknown_nmi_panic` off x86): `Ok(None)` then.
    pub fn read_i64_opt(&mut self, abs: &str) -> Result<Option<i64>, String> {
        match self.read_i64(abs) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e == "absent" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a path exists (recorded as `exists` or `absent`).
    pub fn exists(&mut self, abs: &str) -> bool {
        let p = self.path(abs);
        let ok = p.exists() || p.symlink_metadata().is_ok();
        if ok {
            self.record(abs, Some("exists".into()), None);
        } else {
            self.record(abs, None, Some("absent".into()));
        }
        ok
    }

    /// Whether a path exists, without recording it (probing many candidates).
    pub fn exists_quiet(&self, abs: &str) -> bool {
        let p = self.path(abs);
        p.exists() || p.symlink_metadata().is_ok()
    }

    /// The names in a directory, sorted (recorded as the list).
    pub fn list(&mut self, abs: &str) -> Result<Vec<String>, String> {
        match std::fs::read_dir(self.path(abs)) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                self.record(abs, Some(format!("[{}]", names.join(", "))), None);
                Ok(names)
            }
            Err(e) => {
                let r = io_reason(&e);
                self.record(abs, None, Some(r.clone()));
                Err(r)
            }
        }
    }

    /// The check built from what was read since the last one.
    pub fn check(
        &mut self,
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix,
            read: std::mem::take(&mut self.reads),
        }
    }
}

/// One kernel command-line parameter (`console=ttyS0,115200` is `("console", Some(...))`,
/// `nomodeset` is `("nomodeset", None)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    pub value: Option<String>,
}

/// Split a kernel command line the way the kernel does (`next_arg` in lib/cmdline.c: spaces
/// separate, double quotes group and are dropped).
pub fn parse_cmdline(s: &str) -> Vec<Param> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut push = |cur: &mut String| {
        if !cur.is_empty() {
            let (k, v) = match cur.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (cur.clone(), None),
            };
            out.push(Param { key: k, value: v });
            cur.clear();
        }
    };
    for ch in s.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => push(&mut cur),
            c => cur.push(c),
        }
    }
    push(&mut cur);
    out
}

/// The kernel command line, parsed, read through `ctx` (`Err` with the reason).
pub fn cmdline(ctx: &mut Ctx) -> Result<Vec<Param>, String> {
    ctx.read("/proc/cmdline").map(|s| parse_cmdline(&s))
}

/// The values of every `key=` on the command line, in order.
pub fn param_values<'p>(params: &'p [Param], key: &str) -> Vec<&'p str> {
    params
        .iter()
        .filter(|p| p.key == key)
        .filter_map(|p| p.value.as_deref())
        .collect()
}

/// Whether a bare flag (or `key=...`) is on the command line.
pub fn has_param(params: &[Param], key: &str) -> bool {
    params.iter().any(|p| p.key == key)
}

/// `/proc/meminfo` as (key, kB) pairs.
pub fn meminfo(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse().ok()?;
            Some((k.trim().to_string(), n))
        })
        .collect()
}

/// A size for humans (`1.5 GiB`, `160 MiB`, `512 KiB`).
pub fn human(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b >= K * K * K {
        format!("{:.1} GiB", b / (K * K * K))
    } else if b >= K * K {
        format!("{:.0} MiB", b / (K * K))
    } else if b >= K {
        format!("{:.0} KiB", b / K)
    } else {
        format!("{bytes} B")
    }
}

/// Parse a kernel size (`160M`, `1G`, `512K`, `4096`): bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Whether a systemd unit is installed (a unit file in one of the unit directories) and
/// enabled (a `*.wants/` or `*.requires/` link to it in `/etc/systemd/system`, or in the vendor
/// directories for units enabled by the distribution, like `systemd-pstore.service`). Read from
/// files, so that it works under a root prefix and on hosts where systemctl cannot run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    /// The unit file found (`/lib/systemd/system/kdump-tools.service`).
    pub file: Option<String>,
    /// The link that enables it (`/etc/systemd/system/multi-user.target.wants/...`).
    pub enabled_by: Option<String>,
    /// A link to `/dev/null` in `/etc/systemd/system` (`systemctl mask`).
    pub masked: bool,
}

/// Unit directories, most specific first (systemd.unit(5)); Debian 12 still ships units in
/// `/lib/systemd/system` (usrmerge makes it the same directory as `/usr/lib/systemd/system`).
pub const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

pub fn unit(ctx: &mut Ctx, name: &str) -> Unit {
    let mut u = Unit::default();
    for d in UNIT_DIRS {
        let p = format!("{d}/{name}");
        let fs = ctx.path(&p);
        if let Ok(target) = std::fs::read_link(&fs) {
            if target == Path::new("/dev/null") {
                u.masked = true;
                ctx.note(&p, Ok("-> /dev/null (masked)".into()));
                return u;
            }
        }
        if u.file.is_none() && fs.is_file() {
            ctx.note(&p, Ok("exists".into()));
            u.file = Some(p);
        }
    }
    for d in UNIT_DIRS {
        let Ok(rd) = std::fs::read_dir(ctx.path(d)) else {
            continue;
        };
        let mut wants: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wants") || n.ends_with(".requires"))
            .collect();
        wants.sort();
        for w in wants {
            let p = format!("{d}/{w}/{name}");
            if ctx.exists_quiet(&p) {
                ctx.note(&p, Ok("exists (enables the unit)".into()));
                u.enabled_by = Some(p);
                return u;
            }
        }
    }
    if u.file.is_none() {
        ctx.note(
            &format!("{{/etc,/lib,/usr/lib}}/systemd/system/{name}"),
            Err("absent".into()),
        );
    }
    u
}

/// Run every check.
pub fn run(opts: &Options) -> Report {
    let mut ctx = Ctx::new(opts);
    let host = ctx
        .read("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let kernel_release = ctx
        .read("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let boot_id = ctx
        .read("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string());
    ctx.reads.clear();
    let mut checks = Vec::new();
    checks.extend(kdump::checks(&mut ctx));
    checks.push(panic::sysctls(&mut ctx));
    checks.push(panic::watchdog(&mut ctx));
    checks.push(netconsole::check(&mut ctx));
    checks.push(pstore::check(&mut ctx));
    checks.push(console::console(&mut ctx));
    checks.push(console::printk(&mut ctx));
    checks.push(debuginfo::check(&mut ctx, kernel_release.as_deref()));
    checks.extend(agent::checks(&mut ctx));
    let mut summary = Summary::default();
    for c in &checks {
        match c.status {
            Status::Ok => summary.ok += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
        }
    }
    Report {
        host,
        kernel_release,
        boot_id,
        checked_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        checks,
        summary,
    }
}
