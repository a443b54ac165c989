//! Binary snapshot builds, shared between the agents that ask at once.
//!
//! Ten agents reconnecting after a restart must not start ten builds of a
//! million-key snapshot. A build runs on the main Tokio runtime (never on an
//! actix worker), streams from Postgres and keeps its output as a list of
//! chunks; every agent asking for the same head revision while it runs, or
//! within [`KEEP_FINISHED`] after, reads the same chunks from the start. The
//! chunks are the encoded snapshot (a fifth of the JSON), so memory stays near
//! the snapshot's size however many agents read it. When the last agent of an
//! unfinished build hangs up, a watcher stops the build at once, wherever it
//! is (between rows, or waiting on Postgres), and ends its Postgres backend.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tollgate_core::db::PgPool;
use tollgate_core::sync::{Streamed, stream_binary_snapshot};

/// How long a finished build is served to agents that come later.
const KEEP_FINISHED: Duration = Duration::from_secs(30);

/// Where a build is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Chunks ready in [`Build::chunks`].
    pub chunks: usize,
    /// The snapshot's revision, once the build read it.
    pub revision: Option<u64>,
    /// `Some(Ok)` when complete; `Some(Err)` when it failed or was cancelled.
    pub done: Option<Result<(), String>>,
}

impl Progress {
    fn servable(&self) -> bool {
        !matches!(self.done, Some(Err(_)))
    }
}

pub struct Build {
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

impl Build {
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Chunks `from..` that are ready.
    pub fn chunks_from(&self, from: usize) -> Vec<Bytes> {
        let chunks = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
        chunks.get(from..).map(<[Bytes]>::to_vec).unwrap_or_default()
    }
}

/// A reader's hold on a build: the build runs while one exists.
pub struct Subscription {
    pub build: Arc<Build>,
    /// None for a finished build, which needs nobody's interest.
    _interest: Option<Arc<Interest>>,
}

/// Shared by the readers of a running build. Dropping the last one drops the
/// sender, which is what the build's watcher waits for.
struct Interest {
    _watched: oneshot::Sender<()>,
}

struct Entry {
    key: u64,
    build: Arc<Build>,
    interest: Weak<Interest>,
}

pub struct SnapshotBuilds {
    pool: PgPool,
    runtime: Handle,
    current: Mutex<Option<Entry>>,
}

impl SnapshotBuilds {
    /// Call from the main runtime: builds are spawned onto it.
    pub fn new(pool: PgPool) -> Arc<SnapshotBuilds> {
        Arc::new(SnapshotBuilds { pool, runtime: Handle::current(), current: Mutex::new(None) })
    }

    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Joins the build for head revision `key`, starting one if none runs or a
    /// finished one is too old or failed.
    pub fn subscribe(self: &Arc<Self>, key: u64) -> Subscription {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = current.as_ref()
            && entry.key == key
            && entry.build.progress.borrow().servable()
        {
            if entry.build.progress.borrow().done.is_some() {
                return Subscription { build: entry.build.clone(), _interest: None };
            }
            // A running build whose last reader has left is being stopped: never rejoined.
            if let Some(interest) = entry.interest.upgrade() {
                return Subscription { build: entry.build.clone(), _interest: Some(interest) };
            }
        }
        let build =
            Arc::new(Build { chunks: Mutex::new(Vec::new()), progress: watch::Sender::new(Progress::default()) });
        let (interest, last_reader_left) = oneshot::channel();
        let interest = Arc::new(Interest { _watched: interest });
        *current = Some(Entry { key, build: build.clone(), interest: Arc::downgrade(&interest) });
        metrics::counter!("tollgate_snapshot_builds_total").increment(1);
        self.runtime.spawn(run(Arc::downgrade(self), self.pool.clone(), build.clone(), last_reader_left));
        Subscription { build, _interest: Some(interest) }
    }
}

async fn run(builds: Weak<SnapshotBuilds>, pool: PgPool, build: Arc<Build>, last_reader_left: oneshot::Receiver<()>) {
    let started = Instant::now();
    // The watcher: resolves when the last reader's `Interest` is dropped. Counted
    // here, before the backend is ended, so anyone who sees the build's
    // transaction gone from Postgres also sees it counted.
    let abandoned = async {
        let _ = last_reader_left.await;
        metrics::counter!("tollgate_snapshot_builds_cancelled_total").increment(1);
    };
    let outcome = stream_binary_snapshot(
        &pool,
        |revision| build.progress.send_modify(|p| p.revision = Some(revision)),
        |chunk| {
            let count = {
                let mut chunks = build.chunks.lock().unwrap_or_else(|p| p.into_inner());
                chunks.push(Bytes::from(chunk));
                chunks.len()
            };
            build.progress.send_modify(|p| p.chunks = count);
        },
        abandoned,
    )
    .await;
    let done = match outcome {
        Ok(Streamed::Complete { revision }) => {
            tracing::info!(revision, took_ms = started.elapsed().as_millis() as u64, "built a binary snapshot");
            Ok(())
        }
        Ok(Streamed::Cancelled) => {
            tracing::info!("snapshot build cancelled: every agent waiting for it hung up");
            Err("cancelled".to_owned())
        }
        Err(err) => {
            tracing::warn!(error = %err, "snapshot build failed");
            Err(err.to_string())
        }
    };
    if done.is_err() {
        // Nobody may start reading a build that will never finish.
        build.chunks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    let complete = done.is_ok();
    build.progress.send_modify(|p| p.done = Some(done));
    if complete {
        // Served to late comers for a while, then let go (readers still holding it finish).
        tokio::time::sleep(KEEP_FINISHED).await;
    }
    if let Some(builds) = builds.upgrade() {
        let mut current = builds.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|entry| Arc::ptr_eq(&entry.build, &build)) {
            *current = None;
        }
    }
}
