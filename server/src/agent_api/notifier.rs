//! Fans config-change notifications out to every open agent stream on this
//! replica. Postgres NOTIFY carries the revision; after a lost connection
//! the head is read again, so nothing missed while disconnected is lost.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tollgate_core::db::PgPool;
use tollgate_core::sync::feed::head_revision;

const CHANNEL: &str = "tollgate_config";

#[derive(Clone)]
pub struct ConfigNotifier {
    head: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
}

impl ConfigNotifier {
    /// Starts listening in the background; call from within a Tokio runtime.
    pub fn start(pool: PgPool) -> ConfigNotifier {
        let (tx, rx) = watch::channel(0);
        tokio::spawn(listen(pool, tx));
        let (stop_tx, stopping) = watch::channel(false);
        tokio::spawn(async move {
            // Agent streams never end by themselves; on SIGTERM or Ctrl-C they
            // close at once so graceful shutdown does not wait them out.
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        ConfigNotifier { head: rx, stopping }
    }

    /// Becomes true when the process is asked to stop.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.clone()
    }

    /// A receiver that wakes whenever the head revision advances.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

fn advance(tx: &watch::Sender<u64>, revision: u64) {
    tx.send_if_modified(|head| {
        if revision > *head {
            *head = revision;
            true
        } else {
            false
        }
    });
}

async fn listen(pool: PgPool, tx: watch::Sender<u64>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if tx.is_closed() {
            return;
        }
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "cannot LISTEN for config changes; retrying");
                } else {
                    backoff = Duration::from_millis(100);
                    // Anything committed before LISTEN took effect is picked up here.
                    if let Ok(head) = head_revision(&pool).await {
                        advance(&tx, u64::try_from(head).unwrap_or(0));
                    }
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                if let Ok(revision) = notification.payload().parse::<u64>() {
                                    advance(&tx, revision);
                                }
                            }
                            // The connection dropped: reconnect and re-read the head.
                            Ok(None) | Err(_) => break,
                        }
                        if tx.is_closed() {
                            return;
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "config listener cannot connect; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
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
