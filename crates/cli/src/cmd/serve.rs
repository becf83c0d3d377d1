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
    #[arg(long, value_name = "ADDR")]
    pub netconsole: Option<SocketAddr>,
    /// File with the ingest token(s), one per line; clients send `Authorization: Bearer TOKEN`.
    /// [default: $KMORTEM_HOME/token, created with a random token if missing]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
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
    let config = match &args.config {
        Some(p) => kmortem_server::Config::load(p)?,
        None => Default::default(),
    };
    let mut opts = kmortem_server::Options::new(db.clone());
    opts.listen = args.listen;
    opts.netconsole = args.netconsole;
    opts.tokens = tokens;
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
        let url = format!("http://{}/", server.http_addr);
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
