//! Usage batches on disk until the server acknowledges them (`STATE_DIR/spool/`).
//!
//! One file per sealed batch, named `<sequence>-<batch id>.json` so directory order is send
//! order. A batch is written (atomically) before it is first posted and deleted only after
//! its ack, so a crash or an unreachable server loses nothing; a resent batch keeps its id,
//! and the server counts it once. When the spool holds `max_bytes`, new batches are dropped
//! (counted in `tollgate_agent_usage_dropped_total`) instead of growing the disk without
//! bound; spooled batches keep their place in line. A batch that cannot be written (a read-only
//! or vanished directory) is kept in memory in its place in line instead, within the same bound,
//! and delivered from there: usage still reaches the server, and only a stop before it does
//! loses it.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tollgate_protocol::UsageBatch;
use uuid::Uuid;

use crate::state;
use crate::telemetry::Metrics;

/// Sealed batches split above this many entries, bounding file and request sizes.
pub(crate) const MAX_ENTRIES_PER_BATCH: usize = 5000;
/// Likewise for `credentials_used` (about 100 bytes of JSON each).
pub(crate) const MAX_CREDENTIALS_PER_BATCH: usize = 10_000;

#[derive(Clone, Debug)]
pub(crate) struct Spooled {
    pub sequence: u64,
    pub batch_id: Uuid,
    pub path: PathBuf,
    /// The batch itself when it could not be written to `path`.
    pub in_memory: Option<Bytes>,
    size: u64,
}

struct Inner {
    files: VecDeque<Spooled>,
    bytes: u64,
    next_sequence: u64,
    /// Logged once per episode of a full spool.
    full: bool,
    /// Logged once per episode of failed writes.
    unwritable: bool,
}

pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

impl Spool {
    /// Opens (creating) the spool directory and indexes the batches left in it.
    pub fn open(dir: PathBuf, max_bytes: u64, metrics: Arc<Metrics>) -> io::Result<Spool> {
        fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write that never finished: the batch was never posted either.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(spooled) = parse_name(&dir, name, entry.metadata()?.len()) {
                files.push(spooled);
            }
        }
        files.sort_by_key(|s| s.sequence);
        let bytes = files.iter().map(|s| s.size).sum();
        let next_sequence = files.last().map_or(0, |s| s.sequence + 1);
        metrics.spool_bytes.set(bytes as f64);
        if !files.is_empty() {
            tracing::info!(batches = files.len(), bytes, "usage batches waiting in the spool");
        }
        Ok(Spool {
            dir,
            max_bytes,
            inner: Mutex::new(Inner { files: files.into(), bytes, next_sequence, full: false, unwritable: false }),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `batch`, or keeps it in memory when it cannot be written; `Ok(false)` if the spool
    /// is full and the batch was dropped. Blocking.
    pub fn append(&self, batch: &UsageBatch) -> io::Result<bool> {
        let body = serde_json::to_vec(batch).map_err(io::Error::other)?;
        let size = body.len() as u64;
        let sequence = {
            let mut inner = self.lock();
            if inner.bytes + size > self.max_bytes {
                if !inner.full {
                    tracing::error!(
                        spool_bytes = inner.bytes,
                        max_bytes = self.max_bytes,
                        "usage spool full: dropping new usage batches until the management server takes the spooled ones"
                    );
                    inner.full = true;
                }
                self.metrics.usage_dropped.increment(1);
                return Ok(false);
            }
            inner.full = false;
            inner.next_sequence += 1;
            inner.next_sequence - 1
        };
        let path = self.dir.join(format!("{sequence:020}-{}.json", batch.id));
        let written = state::write_atomically(&path, |file| file.write_all(&body));
        let mut inner = self.lock();
        let in_memory = match written {
            Ok(()) => {
                if std::mem::take(&mut inner.unwritable) {
                    tracing::info!(dir = %self.dir.display(), "the usage spool is writable again");
                }
                None
            }
            Err(err) => {
                self.metrics.spool_write_errors.increment(1);
                if !std::mem::replace(&mut inner.unwritable, true) {
                    tracing::error!(
                        dir = %self.dir.display(),
                        error = %err,
                        "cannot write usage batches to the spool: keeping them in memory until the management server \
                         takes them, where a stop or crash loses them; make the state directory writable"
                    );
                }
                Some(Bytes::from(body))
            }
        };
        inner.bytes += size;
        self.metrics.spool_bytes.set(inner.bytes as f64);
        // Appends are serialised by the flush task, so this keeps sequence order.
        inner.files.push_back(Spooled { sequence, batch_id: batch.id, path, in_memory, size });
        Ok(true)
    }

    /// The batch to send next.
    pub fn oldest(&self) -> Option<Spooled> {
        self.lock().files.front().cloned()
    }

    /// Forgets an acknowledged (or refused) batch and deletes its file. Blocking. The batch
    /// leaves the queue even if the file cannot be deleted (a restart would resend it, and
    /// the server would recognise its id).
    pub fn remove(&self, spooled: &Spooled) -> io::Result<()> {
        {
            let mut inner = self.lock();
            if let Some(at) = inner.files.iter().position(|s| s.sequence == spooled.sequence) {
                inner.files.remove(at);
                inner.bytes -= spooled.size;
            }
            self.metrics.spool_bytes.set(inner.bytes as f64);
        }
        if spooled.in_memory.is_some() {
            return Ok(());
        }
        match fs::remove_file(&spooled.path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().files.is_empty()
    }

    /// How many batches only memory holds: lost if the agent stops now.
    pub fn in_memory(&self) -> usize {
        self.lock().files.iter().filter(|s| s.in_memory.is_some()).count()
    }

    /// Whether the spool holds more than half its bound: the server has been unreachable for
    /// long, and what room is left is kept for usage.
    pub fn is_half_full(&self) -> bool {
        self.lock().bytes > self.max_bytes / 2
    }
}

fn parse_name(dir: &Path, name: &str, size: u64) -> Option<Spooled> {
    let stem = name.strip_suffix(".json")?;
    let (sequence, id) = stem.split_once('-')?;
    Some(Spooled {
        sequence: sequence.parse().ok()?,
        batch_id: id.parse().ok()?,
        path: dir.join(name),
        in_memory: None,
        size,
    })
}
