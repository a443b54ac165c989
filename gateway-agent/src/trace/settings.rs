//! Trace export settings, from the standard `OTEL_*` variables (what collectors, operators
//! and their tooling already use), with `TOLLGATE_AGENT_OTLP_ENDPOINT` ahead of them for
//! those who keep every agent setting under one prefix. See docs/CONFIG.md.

use std::fmt;
use std::time::Duration;

use hyper::Uri;
use tollgate_protocol::trace::OTLP_TRACES_PATH;

use crate::settings::SettingsError;

/// Where spans are posted: an `http://` OTLP/HTTP traces URL such as
/// `http://127.0.0.1:4318/v1/traces`.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(Uri);

impl OtlpEndpoint {
    /// The full traces URL, used as given.
    pub fn parse(raw: &str) -> Result<OtlpEndpoint, String> {
        let uri: Uri =
            raw.parse().map_err(|_| format!("`{raw}` is not a URL such as http://127.0.0.1:4318/v1/traces"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https:// is not supported by this build; use http:// (e.g. a local collector)".to_owned());
            }
            _ => return Err(format!("`{raw}` is not an http:// URL")),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(format!("`{raw}` has no host"));
        }
        Ok(OtlpEndpoint(uri))
    }

    /// A base URL such as `http://collector:4318`, with `/v1/traces` appended.
    pub fn from_base(raw: &str) -> Result<OtlpEndpoint, String> {
        OtlpEndpoint::parse(&format!("{}{OTLP_TRACES_PATH}", raw.trim_end_matches('/')))
    }

    pub fn uri(&self) -> &Uri {
        &self.0
    }
}

impl fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtlpEndpoint({})", self.0)
    }
}

/// Trace export, on when an endpoint is configured.
#[derive(Clone, Debug)]
pub struct TraceExport {
    pub endpoint: OtlpEndpoint,
    /// `service.name` of the spans (`OTEL_SERVICE_NAME`, default `tollgate-agent`).
    pub service_name: String,
    /// Longest a finished span waits before it is sent (`OTEL_BSP_SCHEDULE_DELAY`, ms).
    pub schedule_delay: Duration,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, ms).
    pub timeout: Duration,
}

impl TraceExport {
    pub const DEFAULT_SERVICE_NAME: &str = "tollgate-agent";
    pub const DEFAULT_SCHEDULE_DELAY: Duration = Duration::from_millis(5000);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);

    /// Export to `endpoint` with the defaults.
    pub fn new(endpoint: OtlpEndpoint) -> TraceExport {
        TraceExport {
            endpoint,
            service_name: Self::DEFAULT_SERVICE_NAME.to_owned(),
            schedule_delay: Self::DEFAULT_SCHEDULE_DELAY,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Reads the variables through `get` (empty values already count as unset); `None`:
    /// tracing off.
    pub(crate) fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<TraceExport>, SettingsError> {
        let invalid = |setting: &'static str, message: String| SettingsError { setting, message };
        // OpenTelemetry reads anything but `true` as false; a `yes` or `1` meant to turn
        // tracing off is refused rather than read as "on".
        match get("OTEL_SDK_DISABLED").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("false") => {}
            Some("true") => return Ok(None),
            Some(other) => {
                return Err(invalid("OTEL_SDK_DISABLED", format!("`{other}` is not true or false")));
            }
        }
        match get("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(invalid("OTEL_TRACES_EXPORTER", format!("`{other}` is not supported; use otlp or none")));
            }
        }
        for setting in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(protocol) = get(setting) {
                if protocol.trim() == "grpc" {
                    return Err(invalid(
                        setting,
                        "grpc is not supported; the agent exports OTLP over HTTP (point it at the collector's \
                         HTTP port, 4318)"
                            .to_owned(),
                    ));
                }
                if !matches!(protocol.trim(), "http/json" | "http/protobuf") {
                    return Err(invalid(
                        setting,
                        format!("`{}` is not supported; use http/json (or http/protobuf)", protocol.trim()),
                    ));
                }
                break;
            }
        }
        let endpoint = if let Some(v) = get("TOLLGATE_AGENT_OTLP_ENDPOINT") {
            OtlpEndpoint::parse(&v).map_err(|m| invalid("TOLLGATE_AGENT_OTLP_ENDPOINT", m))?
        } else if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            OtlpEndpoint::parse(&v).map_err(|m| invalid("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", m))?
        } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            OtlpEndpoint::from_base(&v).map_err(|m| invalid("OTEL_EXPORTER_OTLP_ENDPOINT", m))?
        } else {
            return Ok(None);
        };
        let mut export = TraceExport::new(endpoint);
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            export.service_name = name.trim().to_owned();
        }
        let millis = |setting: &'static str, max: u64| -> Result<Option<Duration>, SettingsError> {
            let Some(v) = get(setting) else { return Ok(None) };
            match v.trim().parse::<u64>() {
                Ok(ms) if (1..=max).contains(&ms) => Ok(Some(Duration::from_millis(ms))),
                _ => Err(invalid(setting, format!("`{v}` is not a number of milliseconds from 1 to {max}"))),
            }
        };
        if let Some(delay) = millis("OTEL_BSP_SCHEDULE_DELAY", 600_000)? {
            export.schedule_delay = delay;
        }
        if let Some(timeout) = millis("OTEL_EXPORTER_OTLP_TIMEOUT", 600_000)? {
            export.timeout = timeout;
        }
        Ok(Some(export))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<TraceExport>, SettingsError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        TraceExport::from_vars(|name| map.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn off_without_an_endpoint() {
        assert!(parse(&[]).expect("valid").is_none());
        assert!(parse(&[("OTEL_SERVICE_NAME", "a")]).expect("valid").is_none());
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert!(parse(&[base, ("OTEL_SDK_DISABLED", "true")]).expect("valid").is_none());
        assert!(parse(&[base, ("OTEL_TRACES_EXPORTER", "none")]).expect("valid").is_none());
    }

    #[test]
    fn endpoints_in_their_order_of_precedence() {
        let endpoint = |vars: &[(&str, &str)]| parse(vars).expect("valid").expect("on").endpoint.to_string();
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]), "http://c:4318/v1/traces");
        let traces = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom");
        assert_eq!(endpoint(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), traces]), "http://t:4318/custom");
        assert_eq!(endpoint(&[traces, ("TOLLGATE_AGENT_OTLP_ENDPOINT", "http://a/v1/traces")]), "http://a/v1/traces");
        let export = parse(&[traces, ("OTEL_SERVICE_NAME", "edge-1"), ("OTEL_BSP_SCHEDULE_DELAY", "200")])
            .expect("valid")
            .expect("on");
        assert_eq!((export.service_name.as_str(), export.schedule_delay), ("edge-1", Duration::from_millis(200)));
    }

    #[test]
    fn errors_name_the_variable() {
        let err = |vars: &[(&str, &str)]| parse(vars).expect_err("invalid").setting;
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert_eq!(err(&[base, ("OTEL_SDK_DISABLED", "1")]), "OTEL_SDK_DISABLED");
        assert_eq!(err(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")]), "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert_eq!(err(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]), "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert_eq!(err(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "c:4318")]), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        assert_eq!(err(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert_eq!(err(&[base, ("OTEL_TRACES_EXPORTER", "zipkin")]), "OTEL_TRACES_EXPORTER");
        assert_eq!(err(&[base, ("OTEL_BSP_SCHEDULE_DELAY", "0")]), "OTEL_BSP_SCHEDULE_DELAY");
    }
}
