//! From text to stored reports: cut a log into reports with `kmortem-oops`, and the single writer
//! task that commits them in batches (group commit) and tells metrics and alerts.

use crate::alerts::AlertEvent;
use crate::metrics::Metrics;
use kmortem_oops::Report;
use kmortem_store::{Inserted, NewReport, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Cut every report out of a log, each with its raw excerpt (the input lines from its first to
/// its last line, prefixes intact).
pub fn cut_reports(log: &[u8]) -> Vec<(Report, String)> {
    let reports = kmortem_oops::parse(log);
    if reports.is_empty() {
        return Vec::new();
    }
    let lines: Vec<&[u8]> = log.split(|&b| b == b'\n').collect();
    reports
        .into_iter()
        .map(|r| {
            let raw = excerpt(&lines, r.start_line, r.end_line).unwrap_or_else(|| r.text.clone());
            (r, raw)
        })
        .collect()
}

fn excerpt(lines: &[&[u8]], start: usize, end: usize) -> Option<String> {
    if start == 0 || end < start || end > lines.len() {
        return None;
    }
    let mut out = Vec::new();
    for l in &lines[start - 1..end] {
        out.extend_from_slice(l.strip_suffix(b"\r").unwrap_or(l));
        out.push(b'\n');
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Count stored reports in the metrics and hand them to the alert engine.
fn notify(
    metrics: &Metrics,
    alerts: Option<&mpsc::Sender<AlertEvent>>,
    reports: &[NewReport],
    ins: &[Inserted],
) {
    for (r, i) in reports.iter().zip(ins) {
        if i.duplicate {
            metrics.duplicates.inc();
            continue;
        }
        metrics.crash(i.group, r);
        if let Some(a) = alerts {
            let sent = a.try_send(AlertEvent {
                inserted: *i,
                title: r.report.title.clone(),
                signature: r.report.signature.clone(),
                kind: r.report.kind.as_str().to_string(),
                host: r.host.clone(),
                kernel_release: r.report.kernel_release.clone(),
                received_at: r.received_at,
            });
            if let Err(mpsc::error::TrySendError::Full(_)) = sent {
                metrics.drop_alert("events");
            }
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Inserted>, String>>;

struct Job {
    reports: Vec<NewReport>,
    reply: Option<Reply>,
}

/// Handle to the writer task. Cloning is cheap.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Most reports committed in one transaction.
const MAX_BATCH: usize = 2000;

impl Writer {
    /// Start the writer task. `alerts` receives one event per stored (non-duplicate) report.
    pub fn spawn(
        store: Store,
        metrics: Arc<Metrics>,
        alerts: Option<mpsc::Sender<AlertEvent>>,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        // Jobs waiting for the database: bounded (a netconsole flood that finds reports waits
        // here instead of piling them up in memory); group commit needs no more.
        let (tx, mut rx) = mpsc::channel::<Job>(256);
        let handle = tokio::spawn(async move {
            let mut jobs: Vec<Job> = Vec::new();
            while let Some(first) = rx.recv().await {
                jobs.push(first);
                let mut n = jobs[0].reports.len();
                // Group commit: take whatever else is already waiting.
                while n < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => {
                            n += j.reports.len();
                            jobs.push(j);
                        }
                        Err(_) => break,
                    }
                }
                // The reports move into one batch; each job keeps only its count and reply.
                let mut all: Vec<NewReport> = Vec::with_capacity(n);
                let mut shares: Vec<(usize, Option<Reply>)> = Vec::with_capacity(jobs.len());
                for j in jobs.drain(..) {
                    shares.push((j.reports.len(), j.reply));
                    all.extend(j.reports);
                }
                let result = store.insert_batch(&all).await;
                match result {
                    Ok(ins) => {
                        notify(&metrics, alerts.as_ref(), &all, &ins);
                        let mut it = ins.into_iter();
                        for (len, reply) in shares {
                            let mine: Vec<Inserted> = it.by_ref().take(len).collect();
                            if let Some(reply) = reply {
                                let _ = reply.send(Ok(mine));
                            }
                        }
                    }
                    Err(e) if shares.len() > 1 => {
                        // One bad request must not fail its neighbours: retry job by job.
                        tracing::warn!(
                            "batch of {} reports failed ({e}); retrying one by one",
                            all.len()
                        );
                        let mut rest = all.as_slice();
                        for (len, reply) in shares {
                            let (mine, tail) = rest.split_at(len.min(rest.len()));
                            rest = tail;
                            let r = store.insert_batch(mine).await;
                            match &r {
                                Ok(ins) => notify(&metrics, alerts.as_ref(), mine, ins),
                                Err(_) => {
                                    metrics.store_errors.inc();
                                }
                            }
                            if let Some(reply) = reply {
                                let _ = reply.send(r.map_err(|e| e.to_string()));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!("cannot store {} reports: {e}", all.len());
                        metrics.store_errors.inc();
                        for (_, reply) in shares {
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            }
        });
        (Writer { tx }, handle)
    }

    /// Store reports and wait until they are committed.
    pub async fn store(&self, reports: Vec<NewReport>) -> Result<Vec<Inserted>, String> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                reports,
                reply: Some(reply),
            })
            .await
            .map_err(|_| "the database writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the database writer has stopped".to_string())?
    }

    /// Queue reports without waiting for the commit (netconsole: there is nobody to answer),
    /// from a thread outside the runtime; blocks only while the writer's queue is full.
    pub fn submit_blocking(&self, reports: Vec<NewReport>) {
        if !reports.is_empty() {
            let _ = self.tx.blocking_send(Job {
                reports,
                reply: None,
            });
        }
    }
}
