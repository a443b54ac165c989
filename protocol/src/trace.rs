//! Distributed tracing shared by the server and the agent: the W3C Trace Context
//! `traceparent` header and the OTLP/HTTP JSON encoding of finished spans.
//!
//! Not part of the server–agent wire contract: it lives here because both binaries need
//! the same pure parsing and encoding, and this crate is the one they share. Sending the
//! encoded batches (an HTTP POST to `/v1/traces`) is each binary's own business.
//!
//! The encoding follows the OTLP JSON mapping: ids are lowercase hex (not base64), enums are
//! numbers, 64-bit integers are strings, field names are lowerCamelCase.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";
/// The path an OTLP/HTTP receiver takes traces on, below its base endpoint.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

/// The `sampled` bit of the trace flags.
pub const SAMPLED: u8 = 0x01;

/// A valid W3C `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value; `None` for anything the specification calls invalid (upper
    /// case hex, version `ff`, extra fields on version 00, all-zero ids).
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let mut parts = value.split(|&b| b == b'-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        let mut version_byte = [0u8; 1];
        if !unhex(version, &mut version_byte) || version_byte[0] == 0xff {
            return None;
        }
        // Later versions may append fields; version 00 may not.
        if version_byte[0] == 0 && parts.next().is_some() {
            return None;
        }
        let mut parsed = TraceParent { trace_id: [0; 16], parent_id: [0; 8], flags: 0 };
        let mut flag_byte = [0u8; 1];
        if !unhex(trace, &mut parsed.trace_id) || !unhex(parent, &mut parsed.parent_id) || !unhex(flags, &mut flag_byte)
        {
            return None;
        }
        parsed.flags = flag_byte[0];
        if parsed.trace_id == [0; 16] || parsed.parent_id == [0; 8] {
            return None;
        }
        Some(parsed)
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The version-00 header value (55 ASCII bytes).
    pub fn to_bytes(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        hex_into(&self.trace_id, &mut out[3..35]);
        hex_into(&self.parent_id, &mut out[36..52]);
        hex_into(&[self.flags], &mut out[53..55]);
        out
    }
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Lowercase hex, exactly `out.len() * 2` digits, into `out`.
fn unhex(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != out.len() * 2 {
        return false;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    for (pair, byte) in text.chunks_exact(2).zip(out.iter_mut()) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return false,
        }
    }
    true
}

/// A trace id as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HexTraceId([u8; 32]);

impl HexTraceId {
    pub fn new(trace_id: &[u8; 16]) -> HexTraceId {
        let mut out = [0; 32];
        hex_into(trace_id, &mut out);
        HexTraceId(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl Serialize for HexTraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Cow<'static, str>),
    /// A shared string (an API slug), cloned without copying.
    Shared(Arc<str>),
    Int(i64),
    Bool(bool),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Value::Str(s) => map.serialize_entry("stringValue", s)?,
            Value::Shared(s) => map.serialize_entry("stringValue", &**s)?,
            // OTLP JSON writes 64-bit integers as strings.
            Value::Int(n) => map.serialize_entry("intValue", &n.to_string())?,
            Value::Bool(b) => map.serialize_entry("boolValue", b)?,
        }
        map.end()
    }
}

/// A span attribute: a well-known name and its value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribute {
    pub key: &'static str,
    pub value: Value,
}

impl Attribute {
    pub fn new(key: &'static str, value: Value) -> Attribute {
        Attribute { key, value }
    }
}

/// The span kinds this project records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server = 2,
    Client = 3,
}

/// A finished span, as handed to an exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<Attribute>,
    /// Status `ERROR` (a 5xx answer); unset otherwise, as the HTTP conventions say.
    pub error: bool,
}

/// Who sends the spans: `service.name` and the instrumentation scope.
#[derive(Clone, Debug)]
pub struct Resource {
    pub service_name: String,
    /// Scope name and version, e.g. `tollgate-agent` and its crate version.
    pub scope: &'static str,
    pub version: &'static str,
}

/// One OTLP `ExportTraceServiceRequest` in the JSON encoding, for `spans`.
pub fn encode_json(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let request = ExportRequest {
        resource_spans: [ResourceSpans {
            resource: ResourceJson {
                attributes: [
                    Attribute::new("service.name", Value::Str(Cow::Owned(resource.service_name.clone()))),
                    Attribute::new("service.version", Value::Str(Cow::Borrowed(resource.version))),
                ],
            },
            scope_spans: [ScopeSpans {
                scope: Scope { name: resource.scope, version: resource.version },
                spans: spans.iter().map(SpanJson).collect(),
            }],
        }],
    };
    serde_json::to_vec(&request).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: ResourceJson,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct ResourceJson {
    attributes: [Attribute; 2],
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<SpanJson<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

struct SpanJson<'a>(&'a Span);

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("traceId", HexTraceId::new(&span.trace_id).as_str())?;
        let mut id = [0u8; 16];
        hex_into(&span.span_id, &mut id);
        map.serialize_entry("spanId", std::str::from_utf8(&id).unwrap_or(""))?;
        if let Some(parent) = &span.parent_span_id {
            hex_into(parent, &mut id);
            map.serialize_entry("parentSpanId", std::str::from_utf8(&id).unwrap_or(""))?;
        }
        map.serialize_entry("name", &span.name)?;
        map.serialize_entry("kind", &(span.kind as u8))?;
        map.serialize_entry("startTimeUnixNano", &span.start_unix_nanos.to_string())?;
        map.serialize_entry("endTimeUnixNano", &span.end_unix_nanos.to_string())?;
        map.serialize_entry("attributes", &span.attributes)?;
        if span.error {
            map.serialize_entry("status", &Status { code: 2 })?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Status {
    code: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Option<TraceParent> {
        TraceParent::parse(value.as_bytes())
    }

    #[test]
    fn reads_valid_traceparents_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parsed = parse(&format!("00-{id}-00f067aa0ba902b7-01")).expect("valid");
        assert_eq!(HexTraceId::new(&parsed.trace_id).as_str(), id);
        assert!(parsed.sampled());
        assert_eq!(std::str::from_utf8(&parsed.to_bytes()).expect("ascii"), format!("00-{id}-00f067aa0ba902b7-01"));
        assert!(parse(&format!("01-{id}-00f067aa0ba902b7-00-more")).is_some_and(|p| !p.sampled()));
        for bad in [
            format!("00-{id}-00f067aa0ba902b7-01-more"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".to_owned(),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
            format!("00-{id}-0000000000000000-01"),
            format!("00-{id}-00f067aa0ba902b7"),
            format!("00-{id}-00f067aa0ba902b-01"),
            format!("0-{id}-00f067aa0ba902b7-01"),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn encodes_the_otlp_json_mapping() {
        let span = Span {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent_span_id: Some([2; 8]),
            name: Cow::Borrowed("GET pets"),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![
                Attribute::new("http.response.status_code", Value::Int(503)),
                Attribute::new("tollgate.api", Value::Shared(Arc::from("pets"))),
            ],
            error: true,
        };
        let resource = Resource { service_name: "agent-a".to_owned(), scope: "tollgate-agent", version: "1.0" };
        let json: serde_json::Value = serde_json::from_slice(&encode_json(&resource, &[span])).expect("json");
        let rs = &json["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], "agent-a");
        let span = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "ab".repeat(16));
        assert_eq!(span["spanId"], "01".repeat(8));
        assert_eq!(span["parentSpanId"], "02".repeat(8));
        assert_eq!(span["kind"], 2);
        assert_eq!(span["endTimeUnixNano"], "2");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "503");
        assert_eq!(span["attributes"][1]["value"]["stringValue"], "pets");
        assert_eq!(span["status"]["code"], 2);
    }
}
