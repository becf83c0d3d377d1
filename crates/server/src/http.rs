//! The HTTP API (docs/json/server.md), the dashboard pages and `/metrics`.
//!
//! Bad input always gets a 4xx with a JSON body `{"error": "..."}` that says what was wrong:
//! oversize bodies (413), invalid UTF-8 (400), bad JSON (400), bad host names (400), missing or
//! wrong tokens (401), a per-host token naming another host (403), no crash report in the body
//! (422), too many requests (429, with `Retry-After`), unknown query parameters and malformed
//! values (400).
//!
//! An ingest is refused in the cheapest order: the token from the headers first (an
//! unauthenticated client never makes the server read its body: the answer goes at once and
//! the connection is closed), then the host a per-host token may name, then the rate limit,
//! and only then the body is read (bounded by `--max-body`).

use crate::auth::{Identity, RateKey, RateLimiter, Tokens};
use crate::ingest::{cut_reports, Writer};
use crate::metrics::Metrics;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kmortem_store::{time, Filter, NewReport, Origin, SplitBy, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    /// Replaced whole when the token file is reloaded (SIGHUP).
    pub tokens: Arc<RwLock<Arc<Tokens>>>,
    pub auth_reads: bool,
    /// Largest accepted ingest body (`--max-body`).
    pub max_body: usize,
    pub rate: Arc<RateLimiter>,
}

pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/api/v1/reports", get(list_reports).post(post_reports))
        .route("/api/v1/reports/{id}", get(get_report))
        .route("/api/v1/groups", get(list_groups))
        .route("/api/v1/groups/{id}", get(get_group))
        .route("/api/v1/timeline", get(timeline))
        .route("/api/v1/facets", get(facets))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(dashboard))
        .route("/groups", get(dashboard))
        .route("/groups/{id}", get(dashboard))
        .route("/reports/{id}", get(dashboard))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(60),
        ))
        .with_state(state)
}

/// An error answer: a status and a message for humans, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::NOT_FOUND {
            tracing::debug!(status = %self.0, "request rejected: {}", self.1);
        } else if self.0.is_client_error() {
            tracing::info!(status = %self.0, "request rejected: {}", self.1);
        }
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such page or API endpoint".into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("{e}");
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the database is unavailable: {e}"),
    )
}

fn check_token(state: &AppState, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let unauthorized = |m: &str| {
        state.metrics.reject("unauthorized");
        ApiError(StatusCode::UNAUTHORIZED, m.into())
    };
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing token: send `Authorization: Bearer TOKEN` (the token is in the server's --token-file)",
        ));
    };
    let v = v.as_bytes();
    let Some(tok) = v
        .strip_prefix(b"Bearer ")
        .or_else(|| v.strip_prefix(b"bearer "))
    else {
        return Err(unauthorized(
            "malformed Authorization header: expected `Bearer TOKEN`",
        ));
    };
    let tok = tok.trim_ascii();
    let tokens = state
        .tokens
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    tokens
        .check(tok)
        .ok_or_else(|| unauthorized("invalid token"))
}

fn check_read(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.auth_reads {
        check_token(state, headers).map(|_| ())
    } else {
        Ok(())
    }
}

/// Kernel releases: what `uname -r` prints is the build's `UTS_RELEASE`, any printable
/// characters up to 64 (`__NEW_UTS_LEN`). Folklore: distributions use more than letters,
/// digits, `.` and `-`: Debian backports `6.11.5+bpo-cloud-amd64`, Ubuntu's
/// `5.15.0-1051-azure`, `~` in pre-release packaging (`6.8.0~rc3`), `_` in custom
/// LOCALVERSIONs. A release with `+` was refused with a 400 here, and the agent dropped the
/// crash. Pinned by tests/http_api.rs `every_real_kernel_release_is_accepted`.
pub fn valid_release(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "invalid kernel_release {:?}: 1-64 printable ASCII characters without spaces",
            k.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

/// Host names: what DNS names, IPv4 and IPv6 addresses are made of, at most 253 characters.
pub fn valid_host(h: &str) -> Result<(), String> {
    if h.is_empty() {
        return Err("empty host name".into());
    }
    if h.len() > 253 {
        return Err(format!(
            "host name is {} characters long; at most 253",
            h.len()
        ));
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!(
            "invalid host name {:?}: character {c:?} is not allowed (use letters, digits, '.', '-', '_', ':')",
            h.chars().take(64).collect::<String>()
        ));
    }
    Ok(())
}

/// Idempotency keys: printable ASCII, at most 200 characters.
fn valid_key(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > 200 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("invalid key: 1-200 printable ASCII characters without spaces".into());
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonIngest {
    host: Option<String>,
    log: String,
    /// Idempotency key: a report already stored under this key is not stored again.
    key: Option<String>,
    /// Kernel release to use when a report does not name one.
    kernel_release: Option<String>,
    /// Free-form source tag (`agent:pstore`, `agent:kmsg`, ...).
    source: Option<String>,
}

#[derive(Serialize)]
struct IngestAnswer {
    reports: Vec<IngestedReport>,
}

#[derive(Serialize)]
struct IngestedReport {
    id: i64,
    group: i64,
    title: String,
    new_group: bool,
    duplicate: bool,
}

fn params(
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad(format!("malformed query string: {e}")))
}

fn only(p: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    for k in p.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad(format!(
                "unknown query parameter {:?}; allowed: {}",
                k.chars().take(64).collect::<String>(),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Bytes read and thrown away after a body went over `--max-body` (see [`read_body`]).
const DRAIN_CAP: usize = 64 << 20;

enum BodyError {
    TooLarge,
    Read(String),
}

/// Read a request body of at most `max` bytes. A longer one is read on and discarded, up to
/// `drain_cap` more bytes ([`DRAIN_CAP`] for authenticated ingest), before the answer: a client that sends its whole body before reading
/// the answer (ureq, and so `kmortem agent`) then gets our 413 and its message instead of a
/// connection reset (hyper closes a connection whose body was left unread, and the client's
/// next write fails with EPIPE). nginx calls this a lingering close. Pinned by
/// tests/http_api.rs `bad_input_gets_a_clear_4xx` (a 200 KiB body against a 64 KiB limit).
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    max: usize,
    drain_cap: usize,
) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(drain_cap)) {
        // Too big to be worth draining: answer now.
        return Err(BodyError::TooLarge);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(max));
    let mut over = false;
    let mut drained = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if over {
            drained += data.len();
            if drained > drain_cap {
                break;
            }
        } else if buf.len() + data.len() > max {
            over = true;
            drained = data.len();
            buf = Vec::new();
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if over {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(buf))
}

/// A refusal answered without reading the request body: the connection is closed after it
/// (hyper cannot reuse a connection whose body was left unread).
fn refuse_unread(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

async fn post_reports(
    State(state): State<AppState>,
    peer: Option<axum::Extension<crate::listen::Peer>>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Response {
    // 1. Who is it, from the headers alone: no body byte is read for an unknown client.
    let ident = match check_token(&state, &headers) {
        Ok(i) => i,
        Err(e) => return refuse_unread(e),
    };
    let reject = |reason: &str, e: ApiError| {
        state.metrics.reject(reason);
        e
    };
    let p = match params(q).and_then(|p| {
        only(&p, &["host", "key", "kernel_release", "source"])?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(e) => return refuse_unread(reject("bad_query", e)),
    };
    // 2. A per-host token reports as its host only.
    if let (Identity::Host(h), Some(q)) = (&ident, p.get("host")) {
        if q != h {
            return refuse_unread(reject("wrong_host", wrong_host(h, q)));
        }
    }
    // 3. The rate limit, per host (the token's; the client's address for the shared token).
    // The body is read and dropped first (bounded), so that the client gets the 429 and its
    // Retry-After instead of a reset connection (see read_body).
    let key = match (&ident, peer) {
        (Identity::Host(h), _) => RateKey::Host(h.clone()),
        (Identity::Shared, Some(axum::Extension(crate::listen::Peer(a)))) => RateKey::Addr(a.ip()),
        (Identity::Shared, None) => RateKey::Host(String::new()),
    };
    if let Err(wait) = state.rate.check(key, std::time::Instant::now()) {
        let _ = read_body(&headers, body, state.max_body, 0).await;
        state.metrics.reject("rate_limited");
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many requests from this host; retry in {secs} s"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return r;
    }
    match ingest(&state, &ident, &headers, p, body).await {
        Ok(a) => Json(a).into_response(),
        Err(e) => e.into_response(),
    }
}

fn wrong_host(token_host: &str, asked: &str) -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        format!(
            "this token belongs to host {token_host:?} and cannot report as {:?}",
            asked.chars().take(64).collect::<String>()
        ),
    )
}

async fn ingest(
    state: &AppState,
    ident: &Identity,
    headers: &HeaderMap,
    p: HashMap<String, String>,
    body: Body,
) -> Result<IngestAnswer, ApiError> {
    let reject = |reason: &str, e: ApiError| {
        state.metrics.reject(reason);
        e
    };
    let body = read_body(headers, body, state.max_body, DRAIN_CAP)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => reject(
                "too_large",
                ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body is larger than the server's --max-body; send one crash log per request"
                        .into(),
                ),
            ),
            BodyError::Read(e) => reject(
                "bad_body",
                ApiError::bad(format!("cannot read the request body: {e}")),
            ),
        })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let text = std::str::from_utf8(&body).map_err(|e| {
        reject(
            "invalid_utf8",
            ApiError::bad(format!(
                "request body is not valid UTF-8 (first bad byte at offset {}); send text, e.g. \
                 with invalid bytes replaced",
                e.valid_up_to()
            )),
        )
    })?;
    let (host, log, key, kernel, source) = if is_json {
        let j: JsonIngest = serde_json::from_str(text).map_err(|e| {
            reject(
                "bad_json",
                ApiError::bad(format!(
                    "invalid JSON body: {e}; expected {{\"host\": \"NAME\", \"log\": \"TEXT\"}}"
                )),
            )
        })?;
        (
            j.host.or_else(|| p.get("host").cloned()),
            j.log,
            j.key.or_else(|| p.get("key").cloned()),
            j.kernel_release
                .or_else(|| p.get("kernel_release").cloned()),
            j.source.or_else(|| p.get("source").cloned()),
        )
    } else {
        (
            p.get("host").cloned(),
            text.to_string(),
            p.get("key").cloned(),
            p.get("kernel_release").cloned(),
            p.get("source").cloned(),
        )
    };
    let (host, origin) = match (ident, host) {
        (Identity::Host(h), Some(asked)) if asked != *h => {
            return Err(reject("wrong_host", wrong_host(h, &asked)))
        }
        // A per-host token names its host; `host` may be left out.
        (Identity::Host(h), _) => (h.clone(), Origin::HostToken),
        (Identity::Shared, Some(h)) => (h, Origin::SharedToken),
        (Identity::Shared, None) => {
            return Err(reject(
                "bad_host",
                ApiError::bad("missing host: use ?host=NAME or a JSON body with \"host\""),
            ))
        }
    };
    valid_host(&host).map_err(|m| reject("bad_host", ApiError::bad(m)))?;
    if let Some(k) = &key {
        valid_key(k).map_err(|m| reject("bad_key", ApiError::bad(m)))?;
    }
    if let Some(k) = &kernel {
        valid_release(k).map_err(|m| reject("bad_kernel", ApiError::bad(m)))?;
    }
    let source = match source {
        Some(s) => {
            valid_host(&s).map_err(|_| {
                reject(
                    "bad_source",
                    ApiError::bad("invalid source: letters, digits, '.', '-', '_', ':' only"),
                )
            })?;
            s
        }
        None => "http".into(),
    };
    let now = time::now_ms();
    let cut = cut_reports(log.as_bytes());
    let n = cut.len();
    if n == 0 {
        // Folklore: this was a 200 with an empty list, and a client could not tell "stored"
        // from "ignored" (the agent deleted the item). Pinned by tests/http_api.rs
        // `ingest_and_read_back`.
        return Err(reject(
            "no_report",
            ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "no crash report found in the {} bytes of log sent: nothing was stored \
                     (kmortem stores oopses, BUGs, WARNINGs, panics, lockups, hung tasks, \
                     KASAN/UBSAN reports; send the console or dmesg text around one)",
                    log.len()
                ),
            ),
        ));
    }
    let reports: Vec<NewReport> = cut
        .into_iter()
        .enumerate()
        .map(|(i, (mut report, raw))| {
            if report.kernel_release.is_none() {
                report.kernel_release = kernel.clone();
            }
            NewReport {
                host: host.clone(),
                source: source.clone(),
                received_at: now,
                raw,
                report,
                // Several reports in one request share the key: number them.
                key: key.as_ref().map(|k| {
                    if i == 0 {
                        k.clone()
                    } else {
                        format!("{k}#{i}")
                    }
                }),
                origin,
            }
        })
        .collect();
    let titles: Vec<String> = reports.iter().map(|r| r.report.title.clone()).collect();
    let ins = state.writer.store(reports).await.map_err(internal)?;
    state
        .metrics
        .source(&state.metrics.ingest_requests, "http", 1);
    state
        .metrics
        .source(&state.metrics.ingest_reports, "http", n as u64);
    Ok(IngestAnswer {
        reports: ins
            .into_iter()
            .zip(titles)
            .map(|(i, title)| IngestedReport {
                id: i.report,
                group: i.group,
                title,
                new_group: i.new_group,
                duplicate: i.duplicate,
            })
            .collect(),
    })
}

fn int_param(p: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad(format!(
                "{name} must be an integer, not {:?}",
                v.chars().take(64).collect::<String>()
            ))
        }),
    }
}

fn filter(p: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let now = time::now_ms();
    let t = |name: &str| -> Result<Option<i64>, ApiError> {
        match p.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => time::parse_time(v, now).map(Some).ok_or_else(|| {
                ApiError::bad(format!(
                    "{name}={:?} is not a time: use RFC 3339 (2026-11-21T18:00:00Z), a date, Unix seconds, or an age like 24h or 7d",
                    v.chars().take(64).collect::<String>()
                ))
            }),
        }
    };
    let s = |name: &str| p.get(name).filter(|v| !v.is_empty()).cloned();
    Ok(Filter {
        group: int_param(p, "group")?,
        host: s("host"),
        kernel: s("kernel"),
        kind: s("kind"),
        since: t("since")?,
        until: t("until")?,
    })
}

fn limit(p: &HashMap<String, String>, default: i64) -> Result<i64, ApiError> {
    let l = int_param(p, "limit")?.unwrap_or(default);
    if !(1..=1000).contains(&l) {
        return Err(ApiError::bad("limit must be between 1 and 1000"));
    }
    Ok(l)
}

const FILTERS: &[&str] = &["group", "host", "kernel", "kind", "since", "until"];

#[derive(Serialize)]
struct GroupsPage {
    groups: Vec<kmortem_store::Group>,
    /// Pass as `offset=` for the next page; `null` on the last page.
    next_offset: Option<i64>,
}

async fn list_groups(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GroupsPage>, ApiError> {
    check_read(&state, &headers)?;
    let p = params(q)?;
    let allowed: Vec<&str> = FILTERS.iter().copied().chain(["limit", "offset"]).collect();
    only(&p, &allowed)?;
    let f = filter(&p)?;
    let limit = limit(&p, 100)?;
    let offset = int_param(&p, "offset")?.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad("offset must not be negative"));
    }
    let groups = state
        .store
        .groups(&f, limit + 1, offset)
        .await
        .map_err(internal)?;
    let more = groups.len() as i64 > limit;
    let groups: Vec<_> = groups.into_iter().take(limit as usize).collect();
    Ok(Json(GroupsPage {
        next_offset: more.then_some(offset + limit),
        groups,
    }))
}

async fn get_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<kmortem_store::Group>, ApiError> {
    check_read(&state, &headers)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad("group id must be an integer"))?;
    match state.store.group(id).await.map_err(internal)? {
        Some(g) => Ok(Json(g)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no group {id}"))),
    }
}

#[derive(Serialize)]
struct ReportsPage {
    reports: Vec<kmortem_store::ReportRow>,
    /// Pass as `before=` for the next page; `null` on the last page.
    next_before: Option<i64>,
}

async fn list_reports(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReportsPage>, ApiError> {
    check_read(&state, &headers)?;
    let p = params(q)?;
    let allowed: Vec<&str> = FILTERS.iter().copied().chain(["limit", "before"]).collect();
    only(&p, &allowed)?;
    let f = filter(&p)?;
    let limit = limit(&p, 50)?;
    let before = int_param(&p, "before")?;
    let mut reports = state
        .store
        .reports(&f, before, limit + 1)
        .await
        .map_err(internal)?;
    let more = reports.len() as i64 > limit;
    reports.truncate(limit as usize);
    Ok(Json(ReportsPage {
        next_before: if more {
            reports.last().map(|r| r.id)
        } else {
            None
        },
        reports,
    }))
}

async fn get_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<kmortem_store::ReportFull>, ApiError> {
    check_read(&state, &headers)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad("report id must be an integer"))?;
    match state.store.report(id).await.map_err(internal)? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no report {id}"))),
    }
}

#[derive(Serialize)]
struct Timeline {
    bucket: String,
    by: String,
    buckets: Vec<kmortem_store::Bucket>,
    /// For `by=group`: group id -> title.
    #[serde(skip_serializing_if = "Option::is_none")]
    titles: Option<HashMap<String, String>>,
}

async fn timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Timeline>, ApiError> {
    check_read(&state, &headers)?;
    let p = params(q)?;
    let allowed: Vec<&str> = FILTERS.iter().copied().chain(["bucket", "by"]).collect();
    only(&p, &allowed)?;
    let f = filter(&p)?;
    let bucket = p.get("bucket").map(String::as_str).unwrap_or("day");
    let ms = match bucket {
        "day" => 86_400_000,
        "hour" => 3_600_000,
        _ => return Err(ApiError::bad("bucket must be day or hour")),
    };
    let by = p.get("by").map(String::as_str).unwrap_or("group");
    let split = SplitBy::parse(by)
        .ok_or_else(|| ApiError::bad("by must be group, host, kernel or kind"))?;
    let buckets = state
        .store
        .timeline(&f, ms, split)
        .await
        .map_err(internal)?;
    let titles = if split == SplitBy::Group {
        let groups = state.store.groups(&f, 1000, 0).await.map_err(internal)?;
        Some(
            groups
                .into_iter()
                .map(|g| (g.id.to_string(), g.title))
                .collect(),
        )
    } else {
        None
    };
    Ok(Json(Timeline {
        bucket: bucket.into(),
        by: by.into(),
        buckets,
        titles,
    }))
}

async fn facets(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<kmortem_store::Facets>, ApiError> {
    check_read(&state, &headers)?;
    Ok(Json(state.store.facets().await.map_err(internal)?))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_read(&state, &headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response())
}

const DASHBOARD: &str = include_str!("../assets/dashboard.html");

async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // With --auth-reads the page itself is public (it holds no data); its API calls carry the
    // token the user typed, kept in the browser's localStorage.
    let _ = (&state, &headers);
    ([(header::CACHE_CONTROL, "no-cache")], Html(DASHBOARD)).into_response()
}
