//! The JSON access log (`TOLLGATE_AGENT_ACCESS_LOG=json`): one object per request, for log
//! shippers. Requests hand their line to a bounded channel and never wait: a thread of its
//! own formats nothing, it only writes and flushes, and a full channel drops the line (and
//! counts it) rather than slow the request path.
//!
//! A line names the path without its query (which may carry keys) and the application by
//! id: never a credential.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use hyper::HeaderMap;
use hyper::header::HeaderName;
use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Lines waiting for the writer at most; beyond, lines are dropped.
const QUEUE: usize = 16 * 1024;

/// The sending end, shared by every worker.
#[derive(Clone)]
pub(crate) struct AccessLog {
    lines: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts the writer thread, appending to `path` or writing to stdout.
    pub fn open(path: Option<&Path>) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match path {
            Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
            None => Box::new(io::stdout()),
        };
        let (lines, rx) = sync_channel(QUEUE);
        std::thread::Builder::new().name("tollgate-access-log".to_owned()).spawn(move || write_lines(rx, out))?;
        Ok(AccessLog { lines, dropped: Arc::new(AtomicU64::new(0)) })
    }

    /// Queues `entry`'s line; never blocks.
    pub fn write(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else { return };
        line.push('\n');
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!("the access log cannot keep up: lines are being dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Writes lines as they come, flushing whenever the queue is empty.
fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let mut ok = out.write_all(line.as_bytes()).is_ok();
        while let Ok(line) = rx.try_recv() {
            ok &= out.write_all(line.as_bytes()).is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::warn!("cannot write the access log");
        }
    }
}

/// Whether the request went on or was answered with a refusal.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    Admitted,
    Refused,
}

/// One request's line.
#[derive(Serialize)]
pub(crate) struct Entry<'a> {
    /// When it was answered, RFC 3339 in UTC.
    pub timestamp: Timestamp,
    pub method: Option<&'a str>,
    /// Without the query string.
    pub path: Option<&'a str>,
    pub status: u16,
    pub duration_us: u64,
    pub api_id: Option<Uuid>,
    pub application_id: Option<Uuid>,
    pub decision: Verdict,
    /// The refusal's code, or what the agent answered itself (`allowed`, `limits`, …).
    pub code: Option<&'static str>,
    pub upstream_status: Option<u16>,
    /// The response body's size, when known from its head.
    pub bytes: Option<u64>,
    pub trace_id: Option<TraceId>,
}

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TraceId([u8; 32]);

impl TraceId {
    pub fn of(headers: &HeaderMap) -> Option<TraceId> {
        let value = headers.get(&TRACEPARENT)?.as_bytes();
        let mut parts = value.split(|&b| b == b'-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        let lower_hex =
            |part: &[u8], len: usize| part.len() == len && part.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        // Version ff is invalid; later versions may append fields, version 00 may not.
        if !lower_hex(version, 2) || version == b"ff" || (version == b"00" && parts.next().is_some()) {
            return None;
        }
        if !lower_hex(trace, 32) || !lower_hex(parent, 16) || !lower_hex(flags, 2) {
            return None;
        }
        // All-zero ids are invalid.
        if trace.iter().all(|&b| b == b'0') || parent.iter().all(|&b| b == b'0') {
            return None;
        }
        let mut id = [0; 32];
        id.copy_from_slice(trace);
        Some(TraceId(id))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn trace(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_str(value).expect("header"));
        TraceId::of(&headers).map(|id| id.as_str().to_owned())
    }

    #[test]
    fn reads_valid_traceparents_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        assert_eq!(trace(&format!("01-{id}-00f067aa0ba902b7-01-more")).as_deref(), Some(id));
        assert_eq!(trace(&format!("00-{id}-00f067aa0ba902b7-01-more")), None);
        assert_eq!(trace(&format!("ff-{id}-00f067aa0ba902b7-01")), None);
        assert_eq!(trace("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
        assert_eq!(trace("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace(&format!("00-{id}-0000000000000000-01")), None);
        assert_eq!(trace(&format!("00-{id}-00f067aa0ba902b7")), None);
    }
}
