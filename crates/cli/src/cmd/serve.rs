//! `kmortem serve`: the fleet crash server (a thin shell over kmortem-server).

use anyhow::{Context as _, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the crash server: HTTP ingest API, netconsole receiver, dashboard, /metrics and alerts.
///
/// With no options it listens on http://127.0.0.1:8750, stores crashes in
/// $KMORTEM_HOME/kmortem.db (KMORTEM_HOME defaults to ~/.local/share/kmortem) and creates an
/// ingest token in $KMORTEM_HOME/token.
///
/// Examples:
///   kmortem serve --ingest examples/*.log          # the dashboard with the bundled crashes
///   kmortem serve --listen 0.0.0.0:8750 --netconsole 0.0.0.0:6666 --config kmortem.toml
///   kmortem serve --db postgres://kmortem@db.example/kmortem
///   kmortem serve --listen 0.0.0.0:8750 --tls-cert cert.pem --tls-key key.pem \
///        --netconsole 0.0.0.0:6666 --netconsole-allow 10.0.0.0/8 --retention 180d
///   curl -H "Authorization: Bearer $(cat ~/.local/share/kmortem/token)" \
///        --data-binary @crash.log 'http://127.0.0.1:8750/api/v1/reports?host=web-1'
///
/// The HTTP API and its JSON are documented in docs/json/server.md.
///
/// Logging: rejected requests, database errors and alert deliveries go to stderr. Set
/// KMORTEM_LOG (or RUST_LOG) to change what is shown, e.g. KMORTEM_LOG=kmortem_server=debug
/// also logs every dropped netconsole datagram; the default is
/// warn,kmortem_server=info,kmortem_store=info.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// HTTP address to listen on (API, dashboard, /metrics).
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub listen: SocketAddr,
    /// Database: a SQLite file path, or postgres://USER@HOST/DB.
    /// [default: $KMORTEM_HOME/kmortem.db]
    #[arg(long)]
    pub db: Option<String>,
    /// Receive netconsole (plain and extended) on this UDP address, e.g. 0.0.0.0:6666.
    /// netconsole is not authenticated: see --netconsole-allow.
    #[arg(long, value_name = "ADDR")]
    pub netconsole: Option<SocketAddr>,
    /// Accept netconsole only from these networks (comma-separated or repeated), e.g.
    /// 10.0.0.0/8,192.168.7.0/24 [default: any sender]
    #[arg(long, value_name = "NETS", value_delimiter = ',')]
    pub netconsole_allow: Vec<kmortem_server::netconsole::Net>,
    /// Memory netconsole may add to the server (its RSS): a quarter of it for all senders'
    /// buffers together (fragments, reordering, open reports), past which the least advanced
    /// senders are dropped first; the rest is headroom for what a flood costs besides.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    pub netconsole_memory: usize,
    /// Memory one netconsole sender may hold.
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = parse_size)]
    pub netconsole_sender_memory: usize,
    /// File with the ingest tokens, one per line: `TOKEN` (shared: its holder may report as
    /// any host) or `HOST TOKEN` (reports as HOST only). Clients send `Authorization: Bearer
    /// TOKEN`. Re-read on SIGHUP.
    /// [default: $KMORTEM_HOME/token, created with a random token if missing]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key); there is no plain port.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most HTTP connections open at once; more are closed at accept.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_connections: usize,
    /// Most HTTP connections open at once from one address.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request's headers (and a TLS handshake); an idle
    /// keep-alive connection is closed after it too.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub header_timeout: f64,
    /// Seconds a connection may move no byte before it is closed (a stalled body).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub idle_timeout: f64,
    /// Ingest requests per second per host (the per-host token's host, else the client's
    /// address), in bursts of up to 4 times as many; over it: 429 with Retry-After. 0 = off.
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    pub rate_limit: f64,
    /// Require the token for reads too (API, /metrics); reads are open by default.
    #[arg(long)]
    pub auth_reads: bool,
    /// Config file (TOML): netconsole host names by IP, and alert rules. See docs/json/server.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ingest these log files at start (host: --ingest-host, or the file name's stem).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub ingest: Vec<PathBuf>,
    /// Host name for --ingest files.
    #[arg(long, value_name = "NAME")]
    pub ingest_host: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Seconds of netconsole silence after which a sender's open report is closed.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub idle_flush: f64,
    /// Netconsole worker threads: each parses the streams of its share of the senders (one
    /// sender always goes to the same worker). 0 = one per core, at most 8.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub netconsole_workers: usize,
    /// Delete reports older than this (e.g. 180d, 12w, 36h), except what --retention-keep
    /// keeps; checked at start and every hour.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub retention: Option<i64>,
    /// Keep each group's first N and last N reports (with --retention: whatever their age;
    /// alone: delete the reports between them).
    #[arg(long, value_name = "N")]
    pub retention_keep: Option<i64>,
    /// Base URL used in alert links [default: http://LISTEN].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Print the startup information as one JSON line on stdout
    /// ({"url", "db", "token_file", "netconsole", "ingested"}).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    kmortem_server::init_logging().map_err(anyhow::Error::msg)?;
    let db = match args.db {
        Some(d) => d,
        None => kmortem_store::default_db_path().display().to_string(),
    };
    let token_file = args
        .token_file
        .clone()
        .unwrap_or_else(kmortem_server::default_token_path);
    if args.token_file.is_none() && !token_file.exists() {
        if let Some(dir) = token_file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let token = kmortem_server::new_token()?;
        write_private(&token_file, &format!("{token}\n"))?;
    }
    let tokens = kmortem_server::read_tokens(&token_file)?;
    let tls = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let secs = |v: f64| std::time::Duration::from_secs_f64(v.clamp(0.1, 86_400.0));
    let config = match &args.config {
        Some(p) => kmortem_server::Config::load(p)?,
        None => Default::default(),
    };
    let mut opts = kmortem_server::Options::new(db.clone());
    opts.listen = args.listen;
    opts.netconsole = args.netconsole;
    opts.tokens = tokens;
    opts.token_file = Some(token_file.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    opts.tls = tls;
    opts.connections = kmortem_server::listen::Limits {
        max_connections: args.max_connections.max(1),
        max_per_ip: args.max_connections_per_ip.max(1),
        header_timeout: secs(args.header_timeout),
        idle_timeout: secs(args.idle_timeout),
    };
    opts.rate_limit = args.rate_limit.max(0.0);
    opts.rate_burst = (args.rate_limit * 4.0).max(1.0);
    opts.netconsole_allow = args.netconsole_allow.clone();
    opts.netconsole_memory = args.netconsole_memory;
    opts.netconsole_sender_memory = args.netconsole_sender_memory;
    opts.retention = kmortem_server::Retention {
        max_age_ms: args.retention,
        keep_per_group: args.retention_keep,
    };
    opts.auth_reads = args.auth_reads;
    opts.config = config;
    opts.max_body = args.max_body;
    opts.idle_flush = std::time::Duration::from_secs_f64(args.idle_flush.clamp(0.1, 86_400.0));
    opts.public_url = args.public_url;
    opts.netconsole_workers = args.netconsole_workers;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = kmortem_server::Server::start(opts).await?;
        let mut ingested = 0;
        for f in &args.ingest {
            let host = match &args.ingest_host {
                Some(h) => h.clone(),
                None => f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "localhost".into()),
            };
            let n = server.ingest_file(f, &host).await?;
            ingested += n;
            if !args.json {
                eprintln!("kmortem serve: {}: {n} report(s)", f.display());
            }
        }
        let url = format!("{scheme}://{}/", server.http_addr);
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "url": url,
                    "db": db,
                    "token_file": token_file,
                    "netconsole": server.netconsole_addr.map(|a| a.to_string()),
                    "ingested": ingested,
                })
            );
        } else {
            println!("kmortem serve: dashboard at {url}");
            eprintln!("kmortem serve: database {db}");
            eprintln!("kmortem serve: ingest token in {}", token_file.display());
            if let Some(a) = server.netconsole_addr {
                eprintln!("kmortem serve: netconsole on udp://{a}");
            }
            eprintln!("kmortem serve: Ctrl-C to stop");
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        server.run_until_signal().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `64MiB`, `512KiB`, `1GiB`, `100MB`, `4096`: a size in bytes.
fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64MiB, 512KiB, 1048576)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `180d`, `12w`, `36h`, `90m`, `600s`: an age in milliseconds.
fn parse_age(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not an age: a number and a unit (s, m, h, d, w), e.g. 180d");
    if !t.ends_with(['s', 'm', 'h', 'd', 'w']) {
        return Err(bad());
    }
    kmortem_store::time::parse_time(t, 0)
        .map(|v| -v)
        .filter(|&v| v > 0)
        .ok_or_else(bad)
}

fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
