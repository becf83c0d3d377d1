//! `/metrics` in the Prometheus text format (prometheus-client), so users keep their Grafana.
//!
//! Label values are bounded, so that `/metrics` stays small whatever clients send: groups by
//! their numeric id, kinds from the parser's fixed list, and kernel releases and host names as
//! the first [`TOP_KERNELS`] / [`TOP_HOSTS`] distinct values seen, then `other`.

use kmortem_store::NewReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrashLabels {
    pub group: String,
    pub kind: String,
    pub kernel: String,
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

/// Distinct kernel releases that get a label value of their own; later ones are `other`.
pub const TOP_KERNELS: usize = 64;
/// Distinct host names that get a label value of their own; later ones are `other`.
pub const TOP_HOSTS: usize = 256;

/// The first `cap` distinct values keep their name; the rest are `other`.
struct Bounded {
    cap: usize,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Bounded {
    fn new(cap: usize) -> Self {
        Bounded {
            cap,
            seen: Default::default(),
        }
    }

    fn label(&self, v: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(v) {
            return v.to_string();
        }
        if seen.len() < self.cap {
            seen.insert(v.to_string());
            return v.to_string();
        }
        "other".into()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub rule: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub crashes: Family<CrashLabels, Counter>,
    pub ingest_requests: Family<SourceLabel, Counter>,
    pub ingest_reports: Family<SourceLabel, Counter>,
    pub rejected: Family<ReasonLabel, Counter>,
    pub netconsole_datagrams: Counter,
    pub netconsole_lines: Counter,
    pub netconsole_dropped: Family<ReasonLabel, Counter>,
    pub netconsole_senders: Gauge,
    pub duplicates: Counter,
    pub store_errors: Counter,
    pub alerts: Family<AlertLabels, Counter>,
    /// Alerts dropped because a queue was full, by queue (`events`, `webhook`).
    pub alerts_dropped: Family<QueueLabel, Counter>,
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// Bytes held by netconsole senders' buffers now (all workers).
    pub netconsole_bytes: Gauge,
    pub retention_runs: Counter,
    pub retention_reports: Counter,
    pub retention_bytes: Counter,
    kernels: Bounded,
    hosts: Bounded,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            crashes: Default::default(),
            ingest_requests: Default::default(),
            ingest_reports: Default::default(),
            rejected: Default::default(),
            netconsole_datagrams: Default::default(),
            netconsole_lines: Default::default(),
            netconsole_dropped: Default::default(),
            netconsole_senders: Default::default(),
            duplicates: Default::default(),
            store_errors: Default::default(),
            alerts: Default::default(),
            alerts_dropped: Default::default(),
            connections_refused: Default::default(),
            netconsole_bytes: Default::default(),
            retention_runs: Default::default(),
            retention_reports: Default::default(),
            retention_bytes: Default::default(),
            kernels: Bounded::new(TOP_KERNELS),
            hosts: Bounded::new(TOP_HOSTS),
            registry: Registry::default(),
        };
        registry.register(
            "kmortem_crashes",
            "Crash reports stored, by group id, kind, kernel release and host (the first 64 \
             kernels and 256 hosts seen by name, later ones as `other`)",
            m.crashes.clone(),
        );
        registry.register(
            "kmortem_ingest_requests",
            "Accepted ingest requests or log files, by source (http, ingest)",
            m.ingest_requests.clone(),
        );
        registry.register(
            "kmortem_ingest_reports",
            "Reports found in ingested input, by source (http, netconsole, ingest)",
            m.ingest_reports.clone(),
        );
        registry.register(
            "kmortem_rejected_requests",
            "HTTP requests refused with a 4xx, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "kmortem_netconsole_datagrams",
            "Netconsole datagrams received",
            m.netconsole_datagrams.clone(),
        );
        registry.register(
            "kmortem_netconsole_lines",
            "Log lines reassembled from netconsole and fed to the parser",
            m.netconsole_lines.clone(),
        );
        registry.register(
            "kmortem_netconsole_dropped",
            "Netconsole input dropped, by reason (malformed, duplicate, late, fragment_expired, \
             fragment_overflow, too_many_senders, not_allowed, sender_memory, memory)",
            m.netconsole_dropped.clone(),
        );
        registry.register(
            "kmortem_netconsole_senders",
            "Netconsole senders currently tracked",
            m.netconsole_senders.clone(),
        );
        registry.register(
            "kmortem_duplicate_reports",
            "Reports not stored again because their idempotency key was already known",
            m.duplicates.clone(),
        );
        registry.register(
            "kmortem_store_errors",
            "Database transactions that failed",
            m.store_errors.clone(),
        );
        registry.register(
            "kmortem_alerts",
            "Alert webhook deliveries, by rule and outcome (sent, failed)",
            m.alerts.clone(),
        );
        registry.register(
            "kmortem_alerts_dropped",
            "Alerts dropped because their queue was full, by queue (events, webhook)",
            m.alerts_dropped.clone(),
        );
        registry.register(
            "kmortem_connections_refused",
            "HTTP connections closed at accept, by reason (max_connections, max_per_ip)",
            m.connections_refused.clone(),
        );
        registry.register(
            "kmortem_netconsole_buffer_bytes",
            "Bytes held in netconsole senders' buffers (fragments, reorder window, open reports)",
            m.netconsole_bytes.clone(),
        );
        registry.register(
            "kmortem_retention_runs",
            "Retention passes run",
            m.retention_runs.clone(),
        );
        registry.register(
            "kmortem_retention_deleted_reports",
            "Reports deleted by retention",
            m.retention_reports.clone(),
        );
        registry.register(
            "kmortem_retention_freed_bytes",
            "Bytes of raw text and parsed JSON deleted by retention",
            m.retention_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn crash(&self, group: i64, r: &NewReport) {
        self.crashes
            .get_or_create(&CrashLabels {
                group: group.to_string(),
                kind: r.report.kind.as_str().to_string(),
                kernel: self
                    .kernels
                    .label(r.report.kernel_release.as_deref().unwrap_or("unknown")),
                host: self.hosts.label(&r.host),
            })
            .inc();
    }

    pub fn refuse_connection(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn drop_alert(&self, queue: &str) {
        self.alerts_dropped
            .get_or_create(&QueueLabel {
                queue: queue.into(),
            })
            .inc();
    }

    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn drop_nc(&self, reason: &str) {
        tracing::debug!("netconsole input dropped: {reason}");
        self.netconsole_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn source(&self, family: &Family<SourceLabel, Counter>, source: &str, n: u64) {
        family
            .get_or_create(&SourceLabel {
                source: source.into(),
            })
            .inc_by(n);
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_kernel_labels_are_bounded() {
        let m = Metrics::new();
        let log = include_str!("../../../examples/warning.log");
        let report = kmortem_oops::parse(log.as_bytes()).remove(0);
        for i in 0..1000 {
            m.crash(
                1,
                &NewReport {
                    host: format!("host-{i}"),
                    source: "t".into(),
                    received_at: 0,
                    raw: String::new(),
                    report: kmortem_oops::Report {
                        kernel_release: Some(format!("5.15.0-{i}-generic")),
                        ..report.clone()
                    },
                    key: None,
                    origin: Default::default(),
                },
            );
        }
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("kmortem_crashes_total{"))
            .count();
        assert!(series <= TOP_HOSTS + 1, "{series} series");
        assert!(text.contains("host=\"other\""), "{text}");
        assert!(text.contains("kernel=\"other\""));
        assert!(text.contains("host=\"host-0\""));
    }
}
