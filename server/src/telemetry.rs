//! Logging and metrics setup.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global tracing subscriber: human-readable by default, one
/// JSON object per line with `log_format = json`.
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

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use so that
/// several servers in one test process share it.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

/// The `# HELP` line of each metric the server records (docs/OBSERVABILITY.md lists them).
fn describe() {
    for (name, help) in [
        ("tollgate_http_requests_total", "HTTP requests answered, by method, route pattern and status code."),
        ("tollgate_usage_batches_total", "Usage batches from agents, by whether the batch was a duplicate."),
        ("tollgate_usage_failed_calls_invalid_total", "Failed-call records from agents left out as invalid."),
        ("tollgate_usage_failed_calls_dropped_total", "Failed-call records agents sampled away under load."),
        ("tollgate_usage_retention_deleted_rows_total", "Usage rows deleted by the retention job."),
        ("tollgate_snapshot_builds_total", "Binary config snapshots built for agents."),
        (
            "tollgate_snapshot_builds_cancelled_total",
            "Snapshot builds stopped because every agent waiting for them left.",
        ),
        ("tollgate_config_delta_reads_total", "Reads of the config change feed for agents catching up."),
        ("tollgate_spans_dropped_total", "Trace spans dropped: export queue full or export failed."),
    ] {
        metrics::describe_counter!(name, help);
    }
    // Counters without labels are shown from the start, at 0: an alert on one gets data (and
    // `increase()` sees the first event) before anything has happened.
    for name in [
        "tollgate_usage_failed_calls_invalid_total",
        "tollgate_usage_failed_calls_dropped_total",
        "tollgate_usage_retention_deleted_rows_total",
        "tollgate_snapshot_builds_total",
        "tollgate_snapshot_builds_cancelled_total",
        "tollgate_config_delta_reads_total",
        "tollgate_spans_dropped_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    metrics::describe_histogram!(
        "tollgate_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from request received to response, by method, route pattern and status code."
    );
    metrics::describe_gauge!("tollgate_agent_streams", "Agents' config streams open on this server.");
}
