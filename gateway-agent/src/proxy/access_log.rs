//! The JSON access log (`TOLLGATE_AGENT_ACCESS_LOG=json`): one object per request, for log
//! shippers. A request formats its line and hands it to a bounded channel without waiting;
//! a thread of its own writes the lines, and a full channel drops the line rather than slow
//! the request path.
//!
//! A line names the path without its query (which may carry keys) and the application by
//! id: never a credential.

use std::fs::OpenOptions;
use std::io::{self, Write};
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

/// Bytes written at once at most (whole lines, so a batch may go beyond by one line).
const BATCH: usize = 64 * 1024;

/// Writes the lines waiting, in one `write_all` per batch of whole lines: on stdout, the
/// agent's own log lines (written the same way) cannot land inside an access line.
fn write_lines(rx: Receiver<String>, mut out: Box<dyn Write + Send>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut warned = false;
    while let Ok(line) = rx.recv() {
        batch.extend_from_slice(line.as_bytes());
        while batch.len() < BATCH
            && let Ok(line) = rx.try_recv()
        {
            batch.extend_from_slice(line.as_bytes());
        }
        let written = out.write_all(&batch).and_then(|()| out.flush());
        // Said once: a full disk would otherwise repeat it for every batch.
        if let Err(err) = written
            && !warned
        {
            warned = true;
            tracing::warn!(error = %err, "cannot write the access log: lines are being lost");
        }
        batch.clear();
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
