//! `kmortem-server`: the fleet server behind `kmortem serve`, and the agent behind
//! `kmortem agent`.
//!
//! - [`http`]: the HTTP API (ingest, read-back), the dashboard and `/metrics`;
//! - [`listen`]: the HTTP(S) listener (TLS, connection caps, header and idle timeouts);
//! - [`auth`]: ingest tokens (shared and per host) and the per-host rate limit;
//! - [`netconsole`]: the UDP receiver (plain and extended netconsole, fragments, reordering);
//! - [`ingest`]: cutting logs into reports and the single, batching database writer;
//! - [`alerts`]: webhook alert rules; [`metrics`]: Prometheus counters;
//! - [`agent`]: the per-host shipper (pstore, kdump dmesg, /dev/kmsg, disk spool);
//! - [`doctor`]: every reason a crash on this host would go unseen (`kmortem doctor`).
//!
//! The HTTP API and its JSON shapes are documented in docs/json/server.md.

pub mod agent;
pub mod alerts;
pub mod auth;
pub mod config;
pub mod doctor;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod metrics;
pub mod netconsole;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::Tokens;
pub use config::Config;
pub use kmortem_store::{Retention, Store};

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
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot store {0}: {1}")]
    Ingest(String, String),
}

/// Everything `kmortem serve` can be told.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// A file path (SQLite) or `postgres://...`.
    pub db: String,
    pub netconsole: Option<SocketAddr>,
    /// Accepted ingest tokens (`Authorization: Bearer TOKEN`).
    pub tokens: Tokens,
    /// Where the tokens came from: re-read on SIGHUP.
    pub token_file: Option<PathBuf>,
    /// `--tls-cert`, `--tls-key` (PEM): serve HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Connection caps and timeouts.
    pub connections: listen::Limits,
    /// Ingest requests per second per host (token bucket of `rate_burst`); 0 = no limit.
    pub rate_limit: f64,
    pub rate_burst: f64,
    /// Netconsole senders accepted (`--netconsole-allow`); empty = any.
    pub netconsole_allow: Vec<netconsole::Net>,
    /// Bytes all netconsole senders' buffers may hold together, and one sender's.
    pub netconsole_memory: usize,
    pub netconsole_sender_memory: usize,
    /// What the periodic retention job deletes; it runs every `retention_every`.
    pub retention: Retention,
    pub retention_every: Duration,
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
            tokens: Tokens::default(),
            token_file: None,
            tls: None,
            connections: listen::Limits::default(),
            rate_limit: 50.0,
            rate_burst: 200.0,
            netconsole_allow: Vec::new(),
            netconsole_memory: 64 << 20,
            netconsole_sender_memory: 1 << 20,
            retention: Retention::default(),
            retention_every: Duration::from_secs(3600),
            auth_reads: false,
            config: Config::default(),
            max_body: 1 << 20,
            idle_flush: Duration::from_secs(10),
            public_url: None,
            netconsole_workers: 0,
        }
    }
}

/// Read a token file ([`auth`]: `TOKEN` or `HOST TOKEN` lines, blank lines and `#` comments
/// ignored).
pub fn read_tokens(path: &std::path::Path) -> Result<Tokens, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read(name.clone(), e))?;
    Tokens::parse(&text).map_err(|e| Error::Token(name, e))
}

/// Raise the soft limit on open files to the hard limit: every connection is a descriptor,
/// and the usual soft limit (1024) is below the connection cap.
fn raise_fd_limit() {
    #[cfg(unix)]
    {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
                l.rlim_cur = l.rlim_max;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            }
        }
    }
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
        raise_fd_limit();
        let tls = match &opts.tls {
            Some((cert, key)) => Some(listen::tls_config(cert, key).map_err(Error::Tls)?),
            None => None,
        };
        let store = Store::open(&opts.db).await?;
        let metrics = Arc::new(metrics::Metrics::new());
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| Error::Listen(opts.listen.to_string(), e))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| Error::Listen(opts.listen.to_string(), e))?;
        let base_url = opts.public_url.clone().unwrap_or_else(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{http_addr}")
        });
        let mut tasks = Vec::new();
        let alerts_tx = if opts.config.alerts.is_empty() {
            None
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(alerts::EVENT_QUEUE);
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
                // The budget holds for all workers together, and the senders' buffers get a
                // quarter of it: the rest is for what a flood costs besides them (receive
                // batches, worker queues, the reports it makes on their way to the database,
                // allocator slack), so that the process's RSS stays under --netconsole-memory
                // (measured by crates/cli/tests/serve_attacks.rs: buffers at half the budget
                // peaked at 79 MiB RSS for a 64 MiB budget).
                memory: (opts.netconsole_memory / 4 / workers).max(1 << 16),
                sender_memory: opts.netconsole_sender_memory.max(1 << 14),
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
                    .with_allow(opts.netconsole_allow.clone())
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
        let tokens = Arc::new(std::sync::RwLock::new(Arc::new(opts.tokens.clone())));
        let state = http::AppState {
            store: store.clone(),
            writer: writer.clone(),
            metrics: metrics.clone(),
            tokens: tokens.clone(),
            auth_reads: opts.auth_reads,
            max_body: opts.max_body,
            rate: Arc::new(auth::RateLimiter::new(opts.rate_limit, opts.rate_burst)),
        };
        let app = http::router(state, opts.max_body);
        tasks.push(tokio::spawn(listen::serve(
            listener,
            app,
            tls,
            opts.connections,
            metrics.clone(),
            shutdown_rx.clone(),
        )));
        #[cfg(unix)]
        if let Some(path) = opts.token_file.clone() {
            tasks.push(tokio::spawn(reload_tokens_on_sighup(
                path,
                tokens,
                shutdown_rx.clone(),
            )));
        }
        if opts.retention != Retention::default() {
            tasks.push(tokio::spawn(retention_job(
                store.clone(),
                metrics.clone(),
                opts.retention,
                opts.retention_every,
                shutdown_rx.clone(),
            )));
        }
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
                origin: kmortem_store::Origin::Local,
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
            .map_err(|e| Error::Ingest(path.display().to_string(), e))?;
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

/// SIGHUP: read the token file again. A file that does not parse keeps the tokens in use.
#[cfg(unix)]
async fn reload_tokens_on_sighup(
    path: PathBuf,
    tokens: Arc<std::sync::RwLock<Arc<Tokens>>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the token file will not be reloaded");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match read_tokens(&path) {
            Ok(t) => {
                let (shared, hosts) = t.counts();
                *tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
                tracing::info!(
                    "SIGHUP: reloaded {}: {shared} shared and {hosts} per-host token(s)",
                    path.display()
                );
            }
            Err(e) => tracing::error!("SIGHUP: {e}; keeping the tokens in use"),
        }
    }
}

/// Run the retention policy now and then every `every`, counting what it freed.
async fn retention_job(
    store: Store,
    metrics: Arc<metrics::Metrics>,
    policy: Retention,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match store.purge(&policy, kmortem_store::time::now_ms()).await {
            Ok(p) => {
                metrics.retention_runs.inc();
                metrics.retention_reports.inc_by(p.reports);
                metrics.retention_bytes.inc_by(p.bytes);
                if p.reports > 0 {
                    tracing::info!(
                        "retention: deleted {} report(s), {} bytes",
                        p.reports,
                        p.bytes
                    );
                }
            }
            Err(e) => tracing::error!("retention: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Where the default ingest token lives when `--token-file` is not given.
pub fn default_token_path() -> PathBuf {
    kmortem_store::kmortem_home().join("token")
}
