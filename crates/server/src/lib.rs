//! `kmortem-server`: the fleet server behind `kmortem serve`, and the agent behind
//! `kmortem agent`.
//!
//! - [`http`]: the HTTP API (ingest, read-back), the dashboard and `/metrics`;
//! - [`netconsole`]: the UDP receiver (plain and extended netconsole, fragments, reordering);
//! - [`ingest`]: cutting logs into reports and the single, batching database writer;
//! - [`alerts`]: webhook alert rules; [`metrics`]: Prometheus counters;
//! - [`agent`]: the per-host shipper (pstore, kdump dmesg, /dev/kmsg, disk spool);
//! - [`doctor`]: every reason a crash on this host would go unseen (`kmortem doctor`).
//!
//! The HTTP API and its JSON shapes are documented in docs/json/server.md.

pub mod agent;
pub mod alerts;
pub mod config;
pub mod doctor;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod netconsole;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use kmortem_store::Store;

/// The log filter used when neither `KMORTEM_LOG` nor `RUST_LOG` is set: kmortem's own events
/// at `info` (rejected requests, database errors, alert deliveries), other crates' warnings.
pub const DEFAULT_LOG_FILTER: &str = "warn,kmortem_server=info,kmortem_store=info,kmortem_cli=info";

/// Send `tracing` events (ingest errors, database errors, alert deliveries) to stderr, filtered
/// by `KMORTEM_LOG`, else `RUST_LOG` (the usual `target=level,...` syntax, e.g.
/// `KMORTEM_LOG=kmortem_server=debug` to see every dropped netconsole datagram), else
/// [`DEFAULT_LOG_FILTER`]. Returns the filter in use, or an error for a filter that does not
/// parse. Calling it twice is harmless (the first subscriber stays).
pub fn init_logging() -> Result<String, String> {
    let (var, spec) = ["KMORTEM_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| {
            std::env::var(v)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(|s| (*v, s))
        })
        .unwrap_or(("default", DEFAULT_LOG_FILTER.to_string()));
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .map_err(|e| format!("{var}={spec:?} is not a log filter: {e}"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    Ok(spec)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] kmortem_store::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("token file {0}: {1}")]
    Token(String, String),
}

/// Everything `kmortem serve` can be told.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// A file path (SQLite) or `postgres://...`.
    pub db: String,
    pub netconsole: Option<SocketAddr>,
    /// Accepted ingest tokens (`Authorization: Bearer TOKEN`).
    pub tokens: Vec<String>,
    /// Require the token for reads (API and dashboard) too.
    pub auth_reads: bool,
    pub config: Config,
    /// Largest accepted HTTP body, in bytes.
    pub max_body: usize,
    /// Netconsole: a sender silent for this long has its open report closed (a log that ends
    /// mid-report, e.g. at a panic that stopped the machine).
    pub idle_flush: Duration,
    /// URL that alerts link to; defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Netconsole worker threads (each parses the streams of its share of the senders);
    /// 0 = one per core, at most 8.
    pub netconsole_workers: usize,
}

impl Options {
    pub fn new(db: impl Into<String>) -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8750)),
            db: db.into(),
            netconsole: None,
            tokens: Vec::new(),
            auth_reads: false,
            config: Config::default(),
            max_body: 1 << 20,
            idle_flush: Duration::from_secs(10),
            public_url: None,
            netconsole_workers: 0,
        }
    }
}

/// Read tokens from a file: one per line, blank lines and `#` comments ignored.
pub fn read_tokens(path: &std::path::Path) -> Result<Vec<String>, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read(name.clone(), e))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if tokens.is_empty() {
        return Err(Error::Token(name, "no token in the file".into()));
    }
    if let Some(t) = tokens.iter().find(|t| t.len() < 16) {
        return Err(Error::Token(
            name,
            format!(
                "token {:?}... is shorter than 16 characters",
                &t[..t.len().min(4)]
            ),
        ));
    }
    Ok(tokens)
}

/// A fresh random token (32 hex digits from the OS's random source).
pub fn new_token() -> Result<String, std::io::Error> {
    use std::io::Read as _;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A running server.
pub struct Server {
    pub http_addr: SocketAddr,
    pub netconsole_addr: Option<SocketAddr>,
    pub store: Store,
    pub metrics: Arc<metrics::Metrics>,
    pub writer: ingest::Writer,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Open the store, bind the sockets and start serving. Returns once everything listens.
    pub async fn start(opts: Options) -> Result<Server, Error> {
        let store = Store::open(&opts.db).await?;
        let metrics = Arc::new(metrics::Metrics::new());
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| Error::Listen(opts.listen.to_string(), e))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| Error::Listen(opts.listen.to_string(), e))?;
        let base_url = opts
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{http_addr}"));
        let mut tasks = Vec::new();
        let alerts_tx = if opts.config.alerts.is_empty() {
            None
        } else {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tasks.push(tokio::spawn(alerts::run(
                opts.config.alerts.clone(),
                store.clone(),
                metrics.clone(),
                base_url.clone(),
                rx,
            )));
            Some(tx)
        };
        let (writer, writer_task) =
            ingest::Writer::spawn(store.clone(), metrics.clone(), alerts_tx);
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let mut netconsole_addr = None;
        if let Some(addr) = opts.netconsole {
            let sock = netconsole::bind(addr).map_err(|e| Error::Listen(addr.to_string(), e))?;
            netconsole_addr = Some(
                sock.local_addr()
                    .map_err(|e| Error::Listen(addr.to_string(), e))?,
            );
            let workers = match opts.netconsole_workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
                n => n,
            };
            let limits = netconsole::Limits {
                idle_flush: opts.idle_flush,
                ..Default::default()
            };
            let receivers = (0..workers)
                .map(|_| {
                    netconsole::Receiver::new(
                        writer.clone(),
                        metrics.clone(),
                        opts.config.hosts.clone(),
                        netconsole::Limits {
                            // The bound on senders holds for all workers together.
                            max_senders: (limits.max_senders / workers).max(1),
                            ..limits
                        },
                    )
                })
                .collect();
            let threads = netconsole::start(sock, receivers, shutdown_rx.clone())
                .map_err(|e| Error::Listen(addr.to_string(), e))?;
            // A task waits for the threads' end, so that shutdown waits for their flush.
            tasks.push(tokio::task::spawn_blocking(move || {
                for t in threads {
                    let _ = t.join();
                }
            }));
        }
        let state = http::AppState {
            store: store.clone(),
            writer: writer.clone(),
            metrics: metrics.clone(),
            tokens: Arc::new(opts.tokens.clone()),
            auth_reads: opts.auth_reads,
            max_body: opts.max_body,
        };
        let app = http::router(state, opts.max_body);
        let mut srx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = srx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!("http server: {e}");
            }
        }));
        tasks.push(writer_task);
        Ok(Server {
            http_addr,
            netconsole_addr,
            store,
            metrics,
            writer,
            shutdown,
            tasks,
        })
    }

    /// Ingest log files now (`kmortem serve --ingest`). Each report gets an idempotency key from
    /// the file's content, so ingesting the same file twice stores nothing new.
    pub async fn ingest_file(&self, path: &std::path::Path, host: &str) -> Result<usize, Error> {
        let data = std::fs::read(path).map_err(|e| Error::Read(path.display().to_string(), e))?;
        let digest = agent::fnv1a(&data);
        let now = kmortem_store::time::now_ms();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reports: Vec<kmortem_store::NewReport> = ingest::cut_reports(&data)
            .into_iter()
            .enumerate()
            .map(|(i, (report, raw))| kmortem_store::NewReport {
                host: host.to_string(),
                source: format!("file:{name}"),
                received_at: now,
                raw,
                report,
                key: Some(format!("file:{digest:016x}:{i}")),
            })
            .collect();
        let n = reports.len();
        self.metrics
            .source(&self.metrics.ingest_requests, "ingest", 1);
        self.metrics
            .source(&self.metrics.ingest_reports, "ingest", n as u64);
        self.writer
            .store(reports)
            .await
            .map_err(|e| Error::Token(path.display().to_string(), e))?;
        Ok(n)
    }

    /// Stop listening, flush netconsole state, and wait for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        drop(self.writer);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.store.close().await;
    }

    /// Wait until the server is told to stop (Ctrl-C or SIGTERM), then shut down.
    pub async fn run_until_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = ctrl_c => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        self.shutdown().await;
    }
}

/// Where the default ingest token lives when `--token-file` is not given.
pub fn default_token_path() -> PathBuf {
    kmortem_store::kmortem_home().join("token")
}
