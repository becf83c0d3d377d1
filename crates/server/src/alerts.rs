//! Alert rules: "a new group is seen" and "a group's rate goes over N per hour", delivered to a
//! webhook as a JSON POST. See [`crate::config`] for the rule syntax and docs/json/server.md for
//! the payload.
//!
//! Queues are bounded: [`EVENT_QUEUE`] stored reports waiting for the rules, and
//! [`WEBHOOK_QUEUE`] alerts per webhook waiting for delivery; what does not fit is dropped and
//! counted (`kmortem_alerts_dropped_total{queue}`), so a dead webhook cannot grow the server.
//!
//! Several servers on one database (replicas on PostgreSQL) fire each alert once: before
//! firing, a server claims the alert in the database ([`Store::claim_alert`], one atomic
//! upsert), and only the claim's winner sends it. Rates count the reports every server stored
//! (the database's count, refreshed at most once a second per group).

use crate::config::{AlertRule, When};
use crate::metrics::{AlertLabels, Metrics};
use kmortem_store::{time, Inserted, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One stored report, as the alert engine sees it.
#[derive(Debug, Clone)]
pub struct AlertEvent {
    pub inserted: Inserted,
    pub title: String,
    pub signature: String,
    pub kind: String,
    pub host: String,
    pub kernel_release: Option<String>,
    pub received_at: i64,
}

#[derive(Debug, Serialize)]
struct Payload<'a> {
    rule: &'a str,
    event: &'static str,
    text: String,
    group: PayloadGroup<'a>,
    report: PayloadReport<'a>,
    /// For `rate`: reports of the group in the last hour, and the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<Rate>,
    url: String,
}

#[derive(Debug, Serialize)]
struct PayloadGroup<'a> {
    id: i64,
    title: &'a str,
    signature: &'a str,
    kind: &'a str,
}

#[derive(Debug, Serialize)]
struct PayloadReport<'a> {
    id: i64,
    host: &'a str,
    kernel_release: Option<&'a str>,
    received_at: String,
}

#[derive(Debug, Serialize)]
struct Rate {
    last_hour: u64,
    per_hour: u64,
}

const HOUR: i64 = 3_600_000;

/// Stored reports waiting for the alert rules.
pub const EVENT_QUEUE: usize = 4096;
/// Alerts waiting for delivery, per webhook.
pub const WEBHOOK_QUEUE: usize = 256;

/// A group's reports in the last hour: the database's count at `at`, plus the reports this
/// server saw since.
struct Window {
    at: i64,
    base: u64,
    added: u64,
}

/// Groups whose rate window is kept; past this the windows are refetched.
const MAX_WINDOWS: usize = 10_000;

/// Run the alert engine until the event channel closes.
pub async fn run(
    rules: Vec<AlertRule>,
    store: Store,
    metrics: Arc<Metrics>,
    base_url: String,
    mut rx: mpsc::Receiver<AlertEvent>,
) {
    let any_rate = rules.iter().any(|r| r.when == When::Rate);
    let mut windows: HashMap<i64, Window> = HashMap::new();
    // When this server last fired a rate rule for a group (saves a claim per report).
    let mut fired: HashMap<(usize, i64), i64> = HashMap::new();
    // One delivery queue per webhook URL: alerts reach a receiver in the order they happened
    // (a new group before the rate alert it leads to), each after the previous one's tries.
    let mut queues: HashMap<String, mpsc::Sender<(String, Vec<u8>)>> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let g = ev.inserted.group;
        let last_hour = if any_rate {
            match windows.get_mut(&g) {
                Some(w) if ev.received_at - w.at < 1000 => {
                    w.added += 1;
                    w.base + w.added
                }
                _ => {
                    // The database counts every server's reports (and survives restarts); the
                    // event itself is already stored, so it is in the count. Reports stored
                    // after it (the evaluator runs behind ingest) are not: with them the 4th
                    // warning's alert named the 3rd report (alert_rules_post_to_a_webhook).
                    let n = store
                        .count_since(g, ev.received_at - HOUR, ev.inserted.report)
                        .await
                        .unwrap_or(1)
                        .max(1) as u64;
                    if windows.len() >= MAX_WINDOWS {
                        windows.clear();
                        fired.clear();
                    }
                    windows.insert(
                        g,
                        Window {
                            at: ev.received_at,
                            base: n,
                            added: 0,
                        },
                    );
                    n
                }
            }
        } else {
            0
        };
        for (i, rule) in rules.iter().enumerate() {
            if rule.kind.as_ref().is_some_and(|k| *k != ev.kind)
                || rule.host.as_ref().is_some_and(|h| *h != ev.host)
            {
                continue;
            }
            let (event, rate) = match rule.when {
                When::NewGroup if ev.inserted.new_group => {
                    // Only the server whose insert created the group sees `new_group`; the
                    // claim makes it once even so (a group is new once, ever).
                    if !claim(&store, &rule.name, g, ev.received_at, i64::MAX / 4).await {
                        continue;
                    }
                    ("new_group", None)
                }
                When::Rate => {
                    let per_hour = rule.per_hour.unwrap_or(u64::MAX);
                    if last_hour <= per_hour {
                        continue;
                    }
                    // Fire once per group per hour while the rate stays high.
                    if fired
                        .get(&(i, g))
                        .is_some_and(|&t| ev.received_at - t < HOUR)
                    {
                        continue;
                    }
                    fired.insert((i, g), ev.received_at);
                    if !claim(&store, &rule.name, g, ev.received_at, HOUR).await {
                        continue;
                    }
                    (
                        "rate",
                        Some(Rate {
                            last_hour,
                            per_hour,
                        }),
                    )
                }
                _ => continue,
            };
            let text = match &rate {
                None => format!("kmortem: new crash group on {}: {}", ev.host, ev.title),
                Some(r) => format!(
                    "kmortem: {} reports in the last hour (> {}): {}",
                    r.last_hour, r.per_hour, ev.title
                ),
            };
            let payload = Payload {
                rule: &rule.name,
                event,
                text,
                group: PayloadGroup {
                    id: g,
                    title: &ev.title,
                    signature: &ev.signature,
                    kind: &ev.kind,
                },
                report: PayloadReport {
                    id: ev.inserted.report,
                    host: &ev.host,
                    kernel_release: ev.kernel_release.as_deref(),
                    received_at: time::format_rfc3339(ev.received_at),
                },
                rate,
                url: format!("{base_url}/groups/{g}"),
            };
            let body = match serde_json::to_vec(&payload) {
                Ok(b) => b,
                Err(_) => continue,
            };
            let queue = queues.entry(rule.webhook.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
                tokio::spawn(deliver_in_order(rule.webhook.clone(), rx, metrics.clone()));
                tx
            });
            if queue.try_send((rule.name.clone(), body)).is_err() {
                tracing::warn!(
                    "alert {}: the queue of {} is full; alert dropped",
                    rule.name,
                    rule.webhook
                );
                metrics.drop_alert("webhook");
            }
        }
    }
}

/// Claim an alert in the database (see the module doc). A database error fires anyway: an
/// alert twice is better than none.
async fn claim(store: &Store, rule: &str, group: i64, at: i64, every: i64) -> bool {
    match store.claim_alert(rule, group, at, every).await {
        Ok(won) => won,
        Err(e) => {
            tracing::warn!("alert {rule}: cannot claim it in the database ({e}); firing");
            true
        }
    }
}

/// Deliver one webhook's alerts one after the other, counting each outcome.
async fn deliver_in_order(
    url: String,
    mut rx: mpsc::Receiver<(String, Vec<u8>)>,
    metrics: Arc<Metrics>,
) {
    while let Some((name, body)) = rx.recv().await {
        let ok = deliver(url.clone(), body).await;
        match &ok {
            Ok(()) => tracing::info!("alert {name}: delivered to {url}"),
            Err(e) => tracing::warn!("alert {name}: webhook {url} failed: {e}"),
        }
        metrics
            .alerts
            .get_or_create(&AlertLabels {
                rule: name,
                outcome: if ok.is_ok() { "sent" } else { "failed" }.into(),
            })
            .inc();
    }
}

/// POST with 3 tries (1 s, 4 s back-off).
async fn deliver(url: String, body: Vec<u8>) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(4u64.pow(attempt - 1))).await;
        }
        let (u, b) = (url.clone(), body.clone());
        let r = tokio::task::spawn_blocking(move || {
            ureq::post(&u)
                .timeout(Duration::from_secs(10))
                .set("Content-Type", "application/json")
                .set("User-Agent", "kmortem-alerts")
                .send_bytes(&b)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
