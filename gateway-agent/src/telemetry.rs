//! Logging setup and the agent's Prometheus metrics.
//!
//! Each agent owns its recorder instead of installing a process-global one: handles are
//! registered once and cached (the request path never looks a metric up by name), and
//! several agents in one test process keep separate numbers.

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global tracing subscriber (first call wins, so tests may call it freely).
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: escape codes in a file, a pipe or a journal are noise.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub(crate) const REQUESTS_TOTAL: &str = "tollgate_agent_requests_total";
pub(crate) const REQUEST_DURATION: &str = "tollgate_agent_request_duration_seconds";
pub(crate) const CONFIG_REVISION: &str = "tollgate_agent_config_revision";
pub(crate) const CP_CONNECTED: &str = "tollgate_agent_cp_connected";
pub(crate) const SPOOL_BYTES: &str = "tollgate_agent_spool_bytes";
pub(crate) const USAGE_DROPPED: &str = "tollgate_agent_usage_dropped_total";
pub(crate) const SPOOL_WRITE_ERRORS: &str = "tollgate_agent_spool_write_errors_total";
pub(crate) const CONFIG_REJECTED: &str = "tollgate_agent_config_rejected_total";
pub(crate) const REDIS_UP: &str = "tollgate_agent_redis_up";
pub(crate) const OPEN_CONNECTIONS: &str = "tollgate_agent_open_connections";
pub(crate) const CONNECTIONS_REFUSED: &str = "tollgate_agent_connections_refused_total";
pub(crate) const SPANS_DROPPED: &str = "tollgate_agent_spans_dropped_total";
pub(crate) const TLS_RELOADS: &str = "tollgate_agent_tls_reloads_total";
pub(crate) const UPSTREAM_TLS_RELOADS: &str = "tollgate_agent_upstream_tls_reloads_total";
pub(crate) const DECISION_REPORTS: &str = "tollgate_agent_decision_reports_total";

const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const METADATA: Metadata<'static> = Metadata::new("tollgate_agent", metrics::Level::INFO, Some(module_path!()));

/// The agent's metric handles and the recorder that renders them.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub config_revision: Gauge,
    pub cp_connected: Gauge,
    pub spool_bytes: Gauge,
    pub usage_dropped: Counter,
    pub spool_write_errors: Counter,
    pub config_rejected: Counter,
    pub request_duration: Histogram,
    /// Open client connections of the proxy listener.
    pub open_connections: Gauge,
    /// Client connections refused at `TOLLGATE_AGENT_MAX_CONNECTIONS`.
    pub connections_refused: Counter,
    /// Trace spans lost: the export queue was full or the collector did not take them.
    pub spans_dropped: Counter,
    /// Request counters of requests that matched no API.
    unrouted: RequestCounters,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(REQUEST_DURATION.to_owned()),
                &DURATION_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        describe(REQUESTS_TOTAL, "Requests answered, by API slug, decision and status code.");
        describe(REQUEST_DURATION, "Time from request received to response head sent.");
        describe(CONFIG_REVISION, "Config revision being enforced.");
        describe(CP_CONNECTED, "1 while the config stream to the management server is open.");
        describe(
            SPOOL_BYTES,
            "Bytes of usage batches waiting for acknowledgement, on disk or, when it cannot be written, in memory.",
        );
        describe(
            USAGE_DROPPED,
            "Usage batches dropped because the spool was full, the server refused them, or a stop came before the server took batches held in memory.",
        );
        describe(
            SPOOL_WRITE_ERRORS,
            "Usage batches that could not be written to the spool directory and are held in memory until delivered.",
        );
        describe(CONFIG_REJECTED, "Config updates rejected (invalid or not compilable).");
        describe(REDIS_UP, "1 while shared Redis counters are in use, 0 while falling back to local counters.");
        describe(OPEN_CONNECTIONS, "Open client connections of the proxy listener.");
        describe(CONNECTIONS_REFUSED, "Client connections refused (503) at the connection limit.");
        describe(SPANS_DROPPED, "Trace spans dropped: export queue full or export failed.");
        describe(
            TLS_RELOADS,
            "Changed TLS certificate files, by outcome: applied, or refused (the previous ones kept).",
        );
        describe(
            UPSTREAM_TLS_RELOADS,
            "Changed upstream TLS files (TOLLGATE_AGENT_UPSTREAM_TLS and the CA and client certificate files it names), by outcome: applied, or refused (the previous ones kept).",
        );
        let key = |name: &'static str| Key::from_static_name(name);
        let metrics = Metrics {
            config_revision: recorder.register_gauge(&key(CONFIG_REVISION), &METADATA),
            cp_connected: recorder.register_gauge(&key(CP_CONNECTED), &METADATA),
            spool_bytes: recorder.register_gauge(&key(SPOOL_BYTES), &METADATA),
            usage_dropped: recorder.register_counter(&key(USAGE_DROPPED), &METADATA),
            spool_write_errors: recorder.register_counter(&key(SPOOL_WRITE_ERRORS), &METADATA),
            config_rejected: recorder.register_counter(&key(CONFIG_REJECTED), &METADATA),
            request_duration: recorder.register_histogram(&key(REQUEST_DURATION), &METADATA),
            open_connections: recorder.register_gauge(&key(OPEN_CONNECTIONS), &METADATA),
            connections_refused: recorder.register_counter(&key(CONNECTIONS_REFUSED), &METADATA),
            spans_dropped: recorder.register_counter(&key(SPANS_DROPPED), &METADATA),
            unrouted: RequestCounters::new(SharedString::const_str("")),
            recorder,
            handle,
        };
        metrics.cp_connected.set(0.0);
        metrics.usage_dropped.absolute(0);
        metrics.spool_write_errors.absolute(0);
        metrics.config_rejected.absolute(0);
        metrics.open_connections.set(0.0);
        metrics.connections_refused.absolute(0);
        metrics.spans_dropped.absolute(0);
        Arc::new(metrics)
    }

    /// `tollgate_agent_redis_up`, registered only by agents that use Redis.
    pub fn redis_up(&self) -> Gauge {
        self.recorder.register_gauge(&Key::from_static_name(REDIS_UP), &METADATA)
    }

    /// `tollgate_agent_tls_reloads_total{outcome}`, registered only by agents that serve TLS.
    pub fn tls_reloads(&self, outcome: &'static str) -> Counter {
        let key = Key::from_parts(TLS_RELOADS, vec![Label::from_static_parts("outcome", outcome)]);
        let counter = self.recorder.register_counter(&key, &METADATA);
        counter.absolute(0);
        counter
    }

    /// `tollgate_agent_upstream_tls_reloads_total{outcome}`, registered only by agents with
    /// an upstream TLS file.
    pub fn upstream_tls_reloads(&self, outcome: &'static str) -> Counter {
        let key = Key::from_parts(UPSTREAM_TLS_RELOADS, vec![Label::from_static_parts("outcome", outcome)]);
        let counter = self.recorder.register_counter(&key, &METADATA);
        counter.absolute(0);
        counter
    }

    /// `tollgate_agent_decision_reports_total{outcome}`, registered only by agents with
    /// reports on (`counted`, `unknown`, `expired`, `not_held`), each from 0.
    pub fn decision_reports(&self, outcome: &'static str) -> Counter {
        self.recorder.describe_counter(
            KeyName::from_const_str(DECISION_REPORTS),
            None,
            SharedString::const_str(
                "Allowed decisions by how their usage was counted: from a report, expired or not held \
                 (2xx), and reports naming no waiting decision.",
            ),
        );
        let key = Key::from_parts(DECISION_REPORTS, vec![Label::from_static_parts("outcome", outcome)]);
        let counter = self.recorder.register_counter(&key, &METADATA);
        counter.absolute(0);
        counter
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; called on the flush tick.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn unrouted(&self) -> &RequestCounters {
        &self.unrouted
    }

    fn register_request_counter(&self, api: &SharedString, decision: &'static str, status: u16) -> Counter {
        let labels = vec![
            Label::new("api", api.clone()),
            Label::from_static_parts("decision", decision),
            Label::new("status", status.to_string()),
        ];
        self.recorder.register_counter(&Key::from_parts(REQUESTS_TOTAL, labels), &METADATA)
    }
}

/// Lazily registered `tollgate_agent_requests_total` handles of one API, so the request
/// path pays a registry lookup once per (decision, status) rather than per request.
pub(crate) struct RequestCounters {
    api: SharedString,
    /// Proxied requests by upstream status 100..=599, allocated on first use.
    proxied: OnceLock<Box<[OnceLock<Counter>]>>,
    /// Requests the agent answered itself, by decision (each has a fixed status).
    answered: [OnceLock<Counter>; ANSWERED_DECISIONS],
}

const STATUSES: usize = 500;

/// Upper bound on the number of decisions the agent answers itself.
pub(crate) const ANSWERED_DECISIONS: usize = 26;

impl RequestCounters {
    pub fn new(api: SharedString) -> RequestCounters {
        RequestCounters { api, proxied: OnceLock::new(), answered: Default::default() }
    }

    pub fn proxied(&self, metrics: &Metrics, status: u16) {
        let slots = self.proxied.get_or_init(|| (0..STATUSES).map(|_| OnceLock::new()).collect());
        let index = usize::from(status.clamp(100, 599) - 100);
        match slots.get(index) {
            Some(slot) => {
                slot.get_or_init(|| metrics.register_request_counter(&self.api, "proxied", status)).increment(1)
            }
            None => metrics.register_request_counter(&self.api, "proxied", status).increment(1),
        }
    }

    /// `index` identifies the decision (below [`ANSWERED_DECISIONS`]), `code` names it.
    pub fn answered(&self, metrics: &Metrics, index: usize, code: &'static str, status: u16) {
        match self.answered.get(index) {
            Some(slot) => slot.get_or_init(|| metrics.register_request_counter(&self.api, code, status)).increment(1),
            None => metrics.register_request_counter(&self.api, code, status).increment(1),
        }
    }
}
