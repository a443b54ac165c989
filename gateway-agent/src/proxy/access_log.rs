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

use jiff::Timestamp;
use serde::Serialize;
use tollgate_protocol::trace::HexTraceId;
use uuid::Uuid;

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
    /// The request's trace: the client's, or with tracing on the one the agent started.
    pub trace_id: Option<HexTraceId>,
}
