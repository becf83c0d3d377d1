//! `kmortem agent`: ship this host's crashes to `kmortem serve` (a thin shell over
//! kmortem_server::agent). The systemd unit is dist/kmortem-agent.service.

use anyhow::{Context as _, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Ship this host's kernel crashes to a `kmortem serve`: at start, what the last crash left
/// (pstore, kdump's /var/crash/*/dmesg*), then new reports from /dev/kmsg as they happen.
///
/// Items are spooled to disk first and deleted only once the server answered 2xx, so nothing is
/// lost while the server is down, and each has a key so that nothing is sent twice. An item the
/// server refuses for good (400, 413, 422) moves to STATE_DIR/rejected/ with the reason; any
/// other answer (401, 429, 5xx, ...) keeps it spooled, retried with back-off (and Retry-After).
///
/// Examples:
///   kmortem agent --server https://crash.example:8750 --ca-file /etc/kmortem/ca.pem \
///        --token-file /etc/kmortem/token
///   kmortem agent --server http://127.0.0.1:8750 --token-file t --once --json
///
/// Logging: refused items and an unreachable server are logged to stderr; KMORTEM_LOG (or
/// RUST_LOG) sets the filter (default: warn,kmortem_server=info).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The server's base URL (https://HOST:8750; http:// only to this machine, unless
    /// --insecure-http).
    #[arg(long)]
    pub server: String,
    /// PEM file of the CA certificate(s) that sign the server's certificate
    /// [default: the system's web roots].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Allow an http:// server on another machine (the token and the crashes cross the
    /// network unencrypted).
    #[arg(long)]
    pub insecure_http: bool,
    /// File holding the ingest token.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// Host name to report [default: this machine's hostname].
    #[arg(long)]
    pub host: Option<String>,
    /// Where the spool and the list of sent items live.
    #[arg(long, default_value = "/var/lib/kmortem-agent", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Kernel log device (or a saved file of /dev/kmsg records).
    #[arg(long, default_value = "/dev/kmsg", value_name = "PATH")]
    pub kmsg: PathBuf,
    /// Do not read the kernel log; only ship boot leftovers and the spool.
    #[arg(long)]
    pub no_kmsg: bool,
    /// pstore directories to ship from (repeatable).
    #[arg(long, value_name = "DIR", default_values = ["/sys/fs/pstore", "/var/lib/systemd/pstore"])]
    pub pstore_dir: Vec<PathBuf>,
    /// kdump's crash directory (its */dmesg* files are shipped).
    #[arg(long, default_value = "/var/crash", value_name = "DIR")]
    pub crash_dir: PathBuf,
    /// Ship what is there now, then exit (exit code 1 if items stay spooled).
    #[arg(long)]
    pub once: bool,
    /// Seconds between retries of the spool while the server is unreachable.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub retry: u64,
    /// Print a JSON summary at exit ({"boot_files", "kmsg_reports", "sent", "already_sent",
    /// "spooled", "rejected", "refused_files", "kmsg_lost", "left"}).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    kmortem_server::init_logging().map_err(anyhow::Error::msg)?;
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("cannot read {}", args.token_file.display()))?
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .with_context(|| format!("no token in {}", args.token_file.display()))?;
    let host = match args.host {
        Some(h) => h,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into()),
    };
    let opts = kmortem_server::agent::AgentOptions {
        server: args.server,
        token,
        host,
        state_dir: args.state_dir,
        kmsg: (!args.no_kmsg).then_some(args.kmsg),
        pstore_dirs: args.pstore_dir,
        crash_dir: Some(args.crash_dir),
        once: args.once,
        retry: std::time::Duration::from_secs(args.retry.max(1)),
        ca_file: args.ca_file,
        insecure_http: args.insecure_http,
    };
    let mut agent = kmortem_server::agent::Agent::new(opts)?;
    let left = agent.run()?;
    if args.json {
        let mut v = serde_json::to_value(&agent.summary)?;
        v["left"] = left.into();
        println!("{v}");
    } else {
        let s = &agent.summary;
        eprintln!(
            "kmortem agent: {} boot file(s), {} kmsg report(s); sent {}, already sent {}, rejected {}, {left} still spooled",
            s.boot_files, s.kmsg_reports, s.sent, s.already_sent, s.rejected
        );
    }
    Ok(if left == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
