//! What every open agent stream on this replica waits on: the change feed's
//! head revision (followed by `tollgate_core::sync::follow_head`) and the
//! process being asked to stop.

use std::sync::Arc;

use tokio::sync::watch;
use tollgate_core::db::PgPool;
use tollgate_core::sync::follow_head;

use super::builds::SnapshotBuilds;
use super::deltas::SharedDeltas;

#[derive(Clone)]
pub struct ConfigNotifier {
    head: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    builds: Arc<SnapshotBuilds>,
    deltas: Arc<SharedDeltas>,
}

impl ConfigNotifier {
    /// Starts listening in the background; call from within a Tokio runtime.
    pub fn start(pool: PgPool) -> ConfigNotifier {
        let (stop_tx, stopping) = watch::channel(false);
        tokio::spawn(async move {
            // Agent streams never end by themselves; on SIGTERM or Ctrl-C they
            // close at once so graceful shutdown does not wait them out.
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        let builds = SnapshotBuilds::new(pool.clone());
        ConfigNotifier { head: follow_head(pool), stopping, builds, deltas: Arc::default() }
    }

    /// Becomes true when the process is asked to stop.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.clone()
    }

    /// The binary snapshot builds shared by this replica's streams.
    pub fn builds(&self) -> Arc<SnapshotBuilds> {
        self.builds.clone()
    }

    /// The deltas shared by this replica's streams.
    pub fn deltas(&self) -> Arc<SharedDeltas> {
        self.deltas.clone()
    }

    /// A receiver that wakes whenever the head revision advances.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
