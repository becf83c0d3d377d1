//! `/metrics` in the Prometheus text format (prometheus-client), so users keep their Grafana.

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
            registry: Registry::default(),
        };
        registry.register(
            "kmortem_crashes",
            "Crash reports stored, by group id, kind, kernel release and host",
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
             fragment_overflow, too_many_senders, memory)",
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
        Metrics { registry, ..m }
    }

    pub fn crash(&self, group: i64, r: &NewReport) {
        self.crashes
            .get_or_create(&CrashLabels {
                group: group.to_string(),
                kind: r.report.kind.as_str().to_string(),
                kernel: r
                    .report
                    .kernel_release
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
                host: r.host.clone(),
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
