//! `kmortem-store`: the crash database behind `kmortem serve`.
//!
//! One schema and one set of queries for both back ends, through sqlx's `Any` driver:
//! - an embedded SQLite file (the default: `kmortem.db`, nothing to set up);
//! - PostgreSQL (`postgres://...`) for fleets that outgrow one machine.
//!
//! Queries are checked at run time (no `DATABASE_URL` at build time). They use only SQL that
//! both engines speak: `$N` placeholders (SQLite accepts `$N` as a numbered parameter),
//! `INSERT ... ON CONFLICT ... DO UPDATE ... RETURNING` (SQLite >= 3.35, bundled), `BIGINT`
//! times in Unix milliseconds and integer division for time buckets.
//!
//! Migrations live in `migrations/<backend>/NNNN_name.sql` and are embedded in the binary.
//!
//! Every report is stored with its raw log excerpt, host, kernel release, received time, source,
//! the parsed [`kmortem_oops::Report`] as JSON, and its group (by `Report.signature`).

pub mod time;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection as _, Executor as _, Row as _};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot create the database directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported database {0:?}: use a file path (SQLite) or postgres://...")]
    Url(String),
    #[error("stored report {0} has an invalid parsed record: {1}")]
    Corrupt(i64, serde_json::Error),
    #[error("the database returned {1} ids for {0} rows")]
    Returning(usize, usize),
    #[error("cannot encode report: {0}")]
    Encode(serde_json::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "origin_retention_alerts",
        sqlite: include_str!("../migrations/sqlite/0002_origin_retention_alerts.sql"),
        postgres: include_str!("../migrations/postgres/0002_origin_retention_alerts.sql"),
    },
];

/// How the server knows who sent a report (stored with it, shown as `origin` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// HTTP with a per-host token: the host name is the token's.
    HostToken,
    /// HTTP with the shared token: any holder may name any host.
    #[default]
    SharedToken,
    /// netconsole: UDP source addresses can be spoofed; the host is the sender's address (or
    /// its configured name), not a proven identity.
    Unauthenticated,
    /// `kmortem serve --ingest FILE` on the server itself.
    Local,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::HostToken => "host_token",
            Origin::SharedToken => "shared_token",
            Origin::Unauthenticated => "unauthenticated",
            Origin::Local => "local",
        }
    }
}

/// A report to store.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub host: String,
    /// Where it came from: `http`, `netconsole`, `agent:pstore`, `ingest:FILE`, ...
    pub source: String,
    /// Unix milliseconds.
    pub received_at: i64,
    /// The log excerpt as received (timestamps and prefixes intact).
    pub raw: String,
    pub report: kmortem_oops::Report,
    /// Optional idempotency key: a second report with the same key is not stored again.
    pub key: Option<String>,
    pub origin: Origin,
}

/// What happened to one [`NewReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Inserted {
    pub report: i64,
    pub group: i64,
    /// The report opened a new group.
    pub new_group: bool,
    /// The key was seen before: nothing was stored, the ids are the earlier ones.
    pub duplicate: bool,
}

/// Filters shared by every read query. All optional; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub group: Option<i64>,
    pub host: Option<String>,
    pub kernel: Option<String>,
    pub kind: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub title: String,
    pub signature: String,
    pub kind: String,
    /// Reports in the group that match the filter.
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub hosts: Vec<String>,
    pub kernels: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportRow {
    pub id: i64,
    pub group: i64,
    pub host: String,
    pub kernel_release: Option<String>,
    pub title: String,
    pub kind: String,
    pub source: String,
    /// [`Origin::as_str`]: `host_token`, `shared_token`, `unauthenticated` (netconsole), `local`.
    pub origin: String,
    pub received_at: String,
    pub raw: String,
}

/// One report with its parsed record.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFull {
    #[serde(flatten)]
    pub row: ReportRow,
    pub parsed: kmortem_oops::Report,
}

/// One bar segment of the timeline: `count` reports of `key` in the bucket starting at `start`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub start: String,
    pub start_ms: i64,
    pub key: String,
    pub count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    Group,
    Host,
    Kernel,
    Kind,
}

impl SplitBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "group" => Self::Group,
            "host" => Self::Host,
            "kernel" => Self::Kernel,
            "kind" => Self::Kind,
            _ => return None,
        })
    }
    fn column(self) -> &'static str {
        match self {
            // Group ids are numbers; the key is always text.
            Self::Group => "CAST(group_id AS TEXT)",
            Self::Host => "host",
            Self::Kernel => "COALESCE(kernel_release, 'unknown')",
            Self::Kind => "kind",
        }
    }
}

/// The crash database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// One writer at a time. SQLite allows one anyway, and a single writer never meets
    /// `SQLITE_BUSY_SNAPSHOT` (a read transaction that cannot upgrade to a write).
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Where the default database lives: `$KMORTEM_HOME/kmortem.db`, with `KMORTEM_HOME` defaulting
/// to `~/.local/share/kmortem`.
pub fn default_db_path() -> std::path::PathBuf {
    kmortem_home().join("kmortem.db")
}

/// `$KMORTEM_HOME`, or `~/.local/share/kmortem`.
pub fn kmortem_home() -> std::path::PathBuf {
    if let Some(h) = std::env::var_os("KMORTEM_HOME").filter(|h| !h.is_empty()) {
        return h.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    Path::new(&home).join(".local/share/kmortem")
}

fn sqlite_url(path: &str) -> String {
    // SqliteConnectOptions percent-decodes the path; encode what would be misread.
    let mut p = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => p.push_str("%25"),
            '?' => p.push_str("%3F"),
            '#' => p.push_str("%23"),
            c => p.push(c),
        }
    }
    format!("sqlite://{p}?mode=rwc")
}

impl Store {
    /// Open (and create or migrate) the database named by `db`: `postgres://...` /
    /// `postgresql://...`, `sqlite://...`, or a plain file path for SQLite.
    pub async fn open(db: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            (Backend::Postgres, db.to_string())
        } else if let Some(rest) = db.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            (Backend::Sqlite, sqlite_url(rest))
        } else if db.contains("://") {
            return Err(Error::Url(db.to_string()));
        } else {
            if let Some(dir) = Path::new(db).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::Dir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            (Backend::Sqlite, sqlite_url(db))
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            opts = opts.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Folklore (durability): an HTTP 2xx means "committed". In WAL mode,
                    // synchronous=NORMAL already survives `kill -9` of the server (a commit
                    // is in the WAL file, i.e. in the OS page cache, before COMMIT returns), but
                    // not a power cut or kernel crash, because the WAL is only fsync'd at
                    // checkpoints. A crash server is exactly the thing that runs on machines
                    // that crash, so we use synchronous=FULL: every commit fsyncs the WAL. Its
                    // cost is paid once per transaction, and the server batches concurrent
                    // reports into one transaction (group commit), so it stays cheap.
                    // Pinned by crates/cli/tests/serve.rs (the kill -9 test).
                    // Folklore (speed): a stored report is ~13 KB (raw text and parsed JSON),
                    // i.e. a chain of overflow pages at SQLite's default 4 KiB page; 16 KiB pages
                    // cut the page writes per report. page_size only takes effect on a new
                    // file and must come before WAL mode (a WAL database keeps its page size),
                    // so older databases keep theirs. Measured by `cargo bench -p
                    // kmortem-server --bench ingest` (BENCHMARKS.md, `## kmortem serve`).
                    conn.execute("PRAGMA page_size = 16384").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(8);
        }
        let pool = opts.connect(&url).await?;
        let store = Store {
            pool,
            backend,
            write_lock: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let mut conn = self.pool.acquire().await?;
        // Replicas starting together on one PostgreSQL: one migrates, the others wait for it
        // (without the lock, two `CREATE TABLE`s of one migration race and one fails).
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_lock(7434001)").await?;
        }
        let r = self.migrate_on(&mut conn).await;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_unlock(7434001)").await?;
        }
        r
    }

    async fn migrate_on(&self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        (&mut *conn)
            .execute(
                "CREATE TABLE IF NOT EXISTS kmortem_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await?;
        let current: Option<i64> =
            sqlx::query("SELECT CAST(MAX(version) AS BIGINT) FROM kmortem_migrations")
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
        let current = current.unwrap_or(0);
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let mut tx = conn.begin().await?;
            for stmt in sql.split(";\n") {
                let body: String = stmt
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                if !body.trim().is_empty() {
                    tx.execute(body.as_str()).await?;
                }
            }
            sqlx::query(
                "INSERT INTO kmortem_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(time::now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        Ok(())
    }

    /// Store reports in one transaction: when this returns `Ok`, all of them are durable.
    ///
    /// Folklore (replicas): several servers may write to one PostgreSQL at once. Two of them
    /// storing the same idempotency key meet at the key's unique index: the second waits for
    /// the first to commit, then fails with a unique violation; two batches taking the same
    /// keys in opposite orders deadlock, and PostgreSQL aborts one. Either way the transaction
    /// is run again, and then finds the key already stored (a duplicate, not an error). Groups
    /// need no retry: the upsert on `signature` serializes first-seen inserts of one title
    /// into one row, and batches take their groups in signature order (no deadlock). Pinned by
    /// tests/store.rs `postgres_replicas_store_concurrently`.
    pub async fn insert_batch(&self, reports: &[NewReport]) -> Result<Vec<Inserted>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let mut tries = 0;
        loop {
            match self.insert_batch_once(reports).await {
                Err(Error::Db(sqlx::Error::Database(e)))
                    if tries < 5
                        && (e.is_unique_violation()
                            || matches!(e.code().as_deref(), Some("40P01" | "40001"))) =>
                {
                    tries += 1;
                    tracing::debug!("insert raced another writer ({e}); retrying");
                }
                r => return r,
            }
        }
    }

    async fn insert_batch_once(&self, reports: &[NewReport]) -> Result<Vec<Inserted>> {
        let _w = self.write_lock.lock().await;
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let n = reports.len();
        let mut out: Vec<Option<Inserted>> = vec![None; n];
        // 1. Keys already stored.
        let keys: Vec<String> = reports
            .iter()
            .filter_map(|r| r.key.as_deref().map(|k| nul_free(k).into_owned()))
            .collect();
        let mut known: HashMap<String, (i64, i64)> = HashMap::new();
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT dedup_key, id, group_id FROM reports WHERE dedup_key IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.clone());
            }
            for row in q.fetch_all(&mut *tx).await? {
                known.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
            }
        }
        // 2. What to insert; a key repeated within the batch points at its first report.
        let mut fresh: Vec<usize> = Vec::with_capacity(n);
        let mut first_with_key: HashMap<String, usize> = HashMap::new();
        let mut dup_of: Vec<(usize, usize)> = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            if let Some(k) = &r.key {
                let k = nul_free(k).into_owned();
                if let Some(&(report, group)) = known.get(&k) {
                    out[i] = Some(Inserted {
                        report,
                        group,
                        new_group: false,
                        duplicate: true,
                    });
                    continue;
                }
                if let Some(&j) = first_with_key.get(&k) {
                    dup_of.push((i, j));
                    continue;
                }
                first_with_key.insert(k, i);
            }
            fresh.push(i);
        }
        // 3. One upsert per distinct group in the batch.
        let sig_of = |r: &NewReport| -> String {
            let rep = &r.report;
            let s = if rep.signature.is_empty() {
                rep.title.as_str()
            } else {
                rep.signature.as_str()
            };
            nul_free(s).into_owned()
        };
        // signature -> (first report index, reports, earliest, latest)
        let mut sigs: BTreeMap<String, (usize, i64, i64, i64)> = BTreeMap::new();
        for &i in &fresh {
            let t = reports[i].received_at;
            let e = sigs.entry(sig_of(&reports[i])).or_insert((i, 0, t, t));
            e.1 += 1;
            e.2 = e.2.min(t);
            e.3 = e.3.max(t);
        }
        // signature -> (group id, index of the report that opened it)
        let mut groups: HashMap<String, (i64, Option<usize>)> = HashMap::new();
        for (sig, (first, count, t_min, t_max)) in sigs {
            let rep = &reports[first].report;
            let g = sqlx::query(
                "INSERT INTO crash_groups (signature, title, kind, count, first_seen, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (signature) DO UPDATE SET count = crash_groups.count + excluded.count, \
                 last_seen = CASE WHEN excluded.last_seen > crash_groups.last_seen \
                 THEN excluded.last_seen ELSE crash_groups.last_seen END \
                 RETURNING id, count",
            )
            .bind(sig.clone())
            .bind(nul_free(&rep.title).into_owned())
            .bind(rep.kind.as_str())
            .bind(count)
            .bind(t_min)
            .bind(t_max)
            .fetch_one(&mut *tx)
            .await?;
            let id: i64 = g.try_get(0)?;
            let total: i64 = g.try_get(1)?;
            // The statement created the group when its count is just this batch's reports.
            groups.insert(sig, (id, (total == count).then_some(first)));
        }
        // 4. The reports, many rows per statement. Folklore: both engines assign the ids of one
        // multi-row INSERT in increasing VALUES order (SQLite's AUTOINCREMENT; PostgreSQL's
        // identity sequence, evaluated row by row: another server's rows may take ids in
        // between, never out of order), whatever order RETURNING lists them in; so sorted ids
        // map back to rows. Pinned by tests/store.rs.
        const COLS: usize = 11;
        for chunk in fresh.chunks(200) {
            let mut values = Vec::with_capacity(chunk.len());
            for k in 0..chunk.len() {
                values.push(format!("({})", placeholders(1 + k * COLS, COLS)));
            }
            let sql = format!(
                "INSERT INTO reports (group_id, host, kernel_release, title, kind, source, \
                 received_at, raw, parsed, dedup_key, origin) VALUES {} RETURNING id",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            let mut row_group = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let r = &reports[i];
                let rep = &r.report;
                let (group, opener) = groups.get(&sig_of(r)).copied().unwrap_or((0, None));
                row_group.push((group, opener == Some(i)));
                let parsed = serde_json::to_string(rep).map_err(Error::Encode)?;
                q = q
                    .bind(group)
                    .bind(nul_free(&r.host).into_owned())
                    .bind(
                        rep.kernel_release
                            .as_deref()
                            .map(|k| nul_free(k).into_owned()),
                    )
                    .bind(nul_free(&rep.title).into_owned())
                    .bind(rep.kind.as_str())
                    .bind(nul_free(&r.source).into_owned())
                    .bind(r.received_at)
                    .bind(nul_free(&r.raw).into_owned())
                    .bind(parsed)
                    .bind(r.key.as_deref().map(|k| nul_free(k).into_owned()))
                    .bind(r.origin.as_str());
            }
            let mut ids = Vec::with_capacity(chunk.len());
            for row in q.fetch_all(&mut *tx).await? {
                ids.push(row.try_get::<i64, _>(0)?);
            }
            if ids.len() != chunk.len() {
                return Err(Error::Returning(chunk.len(), ids.len()));
            }
            ids.sort_unstable();
            for ((&i, id), (group, new_group)) in chunk.iter().zip(ids).zip(row_group) {
                out[i] = Some(Inserted {
                    report: id,
                    group,
                    new_group,
                    duplicate: false,
                });
            }
        }
        // 5. Repeated keys within the batch.
        for (i, j) in dup_of {
            out[i] = out[j].map(|o| Inserted {
                new_group: false,
                duplicate: true,
                ..o
            });
        }
        tx.commit().await?;
        let out: Vec<Inserted> = out.into_iter().flatten().collect();
        if out.len() != n {
            return Err(Error::Returning(n, out.len()));
        }
        Ok(out)
    }

    /// Groups with reports matching `f`, most recently seen first. `count`, `first_seen`,
    /// `last_seen`, `hosts` and `kernels` are computed over the matching reports.
    pub async fn groups(&self, f: &Filter, limit: i64, offset: i64) -> Result<Vec<Group>> {
        let (where_sql, binds) = where_clause(f, 3);
        let sql = format!(
            "SELECT g.id, g.title, g.signature, g.kind, s.n, s.first, s.last FROM crash_groups g \
             JOIN (SELECT group_id, COUNT(*) AS n, MIN(received_at) AS first, \
             MAX(received_at) AS last FROM reports {where_sql} GROUP BY group_id) s \
             ON s.group_id = g.id ORDER BY s.last DESC, g.id DESC LIMIT $1 OFFSET $2"
        );
        let mut q = sqlx::query(&sql).bind(limit).bind(offset);
        for b in &binds {
            q = b.bind(q);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut groups = Vec::with_capacity(rows.len());
        for row in rows {
            groups.push(Group {
                id: row.try_get(0)?,
                title: row.try_get(1)?,
                signature: row.try_get(2)?,
                kind: row.try_get(3)?,
                count: row.try_get(4)?,
                first_seen: time::format_rfc3339(row.try_get(5)?),
                last_seen: time::format_rfc3339(row.try_get(6)?),
                hosts: Vec::new(),
                kernels: Vec::new(),
            });
        }
        if groups.is_empty() {
            return Ok(groups);
        }
        // Hosts and kernels of the listed groups, under the same filter.
        let ids: Vec<String> = groups.iter().map(|g| g.id.to_string()).collect();
        let (where_sql, binds) = where_clause(f, 1);
        let glue = if where_sql.is_empty() { "WHERE" } else { "AND" };
        // The ids are integers we just read; no user text reaches this string.
        let sql = format!(
            "SELECT DISTINCT group_id, host, kernel_release FROM reports {where_sql} {glue} \
             group_id IN ({}) ORDER BY group_id, host, kernel_release",
            ids.join(",")
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = b.bind(q);
        }
        let mut hosts: BTreeMap<i64, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for row in q.fetch_all(&self.pool).await? {
            let g: i64 = row.try_get(0)?;
            let h: String = row.try_get(1)?;
            let k: Option<String> = row.try_get(2)?;
            let e = hosts.entry(g).or_default();
            if !e.0.contains(&h) {
                e.0.push(h);
            }
            if let Some(k) = k {
                if !e.1.contains(&k) {
                    e.1.push(k);
                }
            }
        }
        for g in &mut groups {
            if let Some((h, mut k)) = hosts.remove(&g.id) {
                g.hosts = h;
                k.sort();
                g.kernels = k;
            }
        }
        Ok(groups)
    }

    /// One group, whatever its reports' filter.
    pub async fn group(&self, id: i64) -> Result<Option<Group>> {
        let f = Filter {
            group: Some(id),
            ..Default::default()
        };
        Ok(self.groups(&f, 1, 0).await?.into_iter().next())
    }

    /// Reports matching `f`, newest first; `before` is the pagination cursor (an id).
    pub async fn reports(
        &self,
        f: &Filter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ReportRow>> {
        let (mut where_sql, binds) = where_clause(f, 3);
        where_sql = if where_sql.is_empty() {
            "WHERE id < $2".to_string()
        } else {
            format!("{where_sql} AND id < $2")
        };
        let sql = format!(
            "SELECT id, group_id, host, kernel_release, title, kind, source, received_at, raw, \
             origin FROM reports {where_sql} ORDER BY id DESC LIMIT $1"
        );
        let mut q = sqlx::query(&sql)
            .bind(limit)
            .bind(before.unwrap_or(i64::MAX));
        for b in &binds {
            q = b.bind(q);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(report_row)
            .collect()
    }

    pub async fn report(&self, id: i64) -> Result<Option<ReportFull>> {
        let row = sqlx::query(
            "SELECT id, group_id, host, kernel_release, title, kind, source, received_at, raw, \
             origin, parsed FROM reports WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let parsed: String = row.try_get(10)?;
        Ok(Some(ReportFull {
            row: report_row(&row)?,
            parsed: serde_json::from_str(&parsed).map_err(|e| Error::Corrupt(id, e))?,
        }))
    }

    /// Reports per time bucket (`bucket_ms` wide) and per `split` key.
    pub async fn timeline(
        &self,
        f: &Filter,
        bucket_ms: i64,
        split: SplitBy,
    ) -> Result<Vec<Bucket>> {
        let bucket_ms = bucket_ms.max(1000);
        let (where_sql, binds) = where_clause(f, 2);
        let col = split.column();
        let sql = format!(
            "SELECT (received_at / $1) * $1 AS b, {col} AS k, COUNT(*) AS n FROM reports \
             {where_sql} GROUP BY b, k ORDER BY b, k"
        );
        let mut q = sqlx::query(&sql).bind(bucket_ms);
        for b in &binds {
            q = b.bind(q);
        }
        let mut out = Vec::new();
        for row in q.fetch_all(&self.pool).await? {
            let b: i64 = row.try_get(0)?;
            out.push(Bucket {
                start: time::format_rfc3339(b),
                start_ms: b,
                key: row.try_get(1)?,
                count: row.try_get(2)?,
            });
        }
        Ok(out)
    }

    /// Distinct values for the dashboard's filter menus.
    pub async fn facets(&self) -> Result<Facets> {
        let mut out = Facets::default();
        for (col, dst) in [
            ("host", &mut out.hosts),
            ("kernel_release", &mut out.kernels),
            ("kind", &mut out.kinds),
        ] {
            let sql = format!(
                "SELECT DISTINCT {col} FROM reports WHERE {col} IS NOT NULL ORDER BY {col} LIMIT 1000"
            );
            for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                dst.push(row.try_get(0)?);
            }
        }
        Ok(out)
    }

    /// Reports in `group` received at or after `since` and stored no later than report
    /// `upto` (for rate alerts: the count as of one report, not of whatever was stored after it
    /// by the time the alert is evaluated).
    pub async fn count_since(&self, group: i64, since: i64, upto: i64) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM reports WHERE group_id = $1 AND received_at >= $2 AND id <= $3",
        )
        .bind(group)
        .bind(since)
        .bind(upto)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Total number of reports (all groups).
    pub async fn report_count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM reports")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Delete what the retention policy no longer keeps (see [`Retention`]), in batches; returns
    /// what this call deleted. Safe to run from several servers on one database at once: each
    /// counts only the rows its own `DELETE` removed.
    pub async fn purge(&self, policy: &Retention, now_ms: i64) -> Result<Purged> {
        let mut out = Purged::default();
        if policy.max_age_ms.is_none() && policy.keep_per_group.is_none() {
            return Ok(out);
        }
        let cutoff = policy
            .max_age_ms
            .map_or(i64::MAX, |age| now_ms.saturating_sub(age));
        let keep = policy.keep_per_group.unwrap_or(0).max(0);
        let size = match self.backend {
            Backend::Sqlite => "LENGTH(CAST(raw AS BLOB)) + LENGTH(CAST(parsed AS BLOB))",
            Backend::Postgres => "OCTET_LENGTH(raw) + OCTET_LENGTH(parsed)",
        };
        // A report goes when it is older than the cutoff and is neither one of its group's
        // first `keep` nor one of its last `keep` (by id: the order they were stored in).
        let sql = format!(
            "DELETE FROM reports WHERE id IN (SELECT id FROM (SELECT id, received_at, \
             ROW_NUMBER() OVER (PARTITION BY group_id ORDER BY id) AS nth, \
             ROW_NUMBER() OVER (PARTITION BY group_id ORDER BY id DESC) AS nth_last \
             FROM reports) r WHERE r.received_at < $1 AND r.nth > $2 AND r.nth_last > $2 \
             LIMIT $3) RETURNING CAST({size} AS BIGINT)"
        );
        const BATCH: i64 = 2000;
        loop {
            let rows = {
                let _w = self.write_lock.lock().await;
                sqlx::query(&sql)
                    .bind(cutoff)
                    .bind(keep)
                    .bind(BATCH)
                    .fetch_all(&self.pool)
                    .await?
            };
            for row in &rows {
                out.reports += 1;
                out.bytes += u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
            }
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        Ok(out)
    }

    /// Claim the right to fire alert `rule` for `group` at `at` (Unix ms): true when no server
    /// on this database fired it within the last `every_ms` (then the claim is recorded). One
    /// statement, atomic on both engines, so that replicas fire each alert once.
    pub async fn claim_alert(
        &self,
        rule: &str,
        group: i64,
        at: i64,
        every_ms: i64,
    ) -> Result<bool> {
        let _w = self.write_lock.lock().await;
        let row = sqlx::query(
            "INSERT INTO alert_claims (rule, group_id, fired_at) VALUES ($1, $2, $3) \
             ON CONFLICT (rule, group_id) DO UPDATE SET fired_at = excluded.fired_at \
             WHERE alert_claims.fired_at <= excluded.fired_at - $4 RETURNING fired_at",
        )
        .bind(nul_free(rule).into_owned())
        .bind(group)
        .bind(at)
        .bind(every_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// What [`Store::purge`] deletes: reports older than `max_age_ms`, except each group's first
/// and last `keep_per_group` reports. With only `keep_per_group`, every report between a
/// group's first and last N goes (a cap of 2N per group); with only `max_age_ms`, every report
/// older than that; with neither, nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age_ms: Option<i64>,
    pub keep_per_group: Option<i64>,
}

/// What one [`Store::purge`] deleted: reports, and the bytes of their raw text and parsed JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub reports: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Facets {
    pub hosts: Vec<String>,
    pub kernels: Vec<String>,
    pub kinds: Vec<String>,
}

fn report_row(row: &AnyRow) -> Result<ReportRow> {
    Ok(ReportRow {
        id: row.try_get(0)?,
        group: row.try_get(1)?,
        host: row.try_get(2)?,
        kernel_release: row.try_get(3)?,
        title: row.try_get(4)?,
        kind: row.try_get(5)?,
        source: row.try_get(6)?,
        received_at: time::format_rfc3339(row.try_get(7)?),
        raw: row.try_get(8)?,
        origin: row.try_get(9)?,
    })
}

/// PostgreSQL's TEXT cannot hold NUL; logs can. Store U+FFFD instead, on both back ends, so that
/// the two agree.
fn nul_free(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// `$first, $first+1, ...` (`count` of them).
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

enum Bind {
    I(i64),
    S(String),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Bind {
    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Bind::I(i) => q.bind(*i),
            Bind::S(s) => q.bind(s.clone()),
        }
    }
}

/// `WHERE ...` for a filter, with placeholders numbered from `first`. User values are always
/// bound parameters, never spliced into SQL.
fn where_clause(f: &Filter, first: usize) -> (String, Vec<Bind>) {
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    let mut push = |cond: &str, b: Bind| {
        conds.push(format!("{cond} ${}", first + binds.len()));
        binds.push(b);
    };
    if let Some(g) = f.group {
        push("group_id =", Bind::I(g));
    }
    if let Some(h) = &f.host {
        push("host =", Bind::S(h.clone()));
    }
    if let Some(k) = &f.kernel {
        push("kernel_release =", Bind::S(k.clone()));
    }
    if let Some(k) = &f.kind {
        push("kind =", Bind::S(k.clone()));
    }
    if let Some(t) = f.since {
        push("received_at >=", Bind::I(t));
    }
    if let Some(t) = f.until {
        push("received_at <", Bind::I(t));
    }
    if conds.is_empty() {
        (String::new(), binds)
    } else {
        (format!("WHERE {}", conds.join(" AND ")), binds)
    }
}
