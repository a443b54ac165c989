//! Follows the change feed's head revision with Postgres `LISTEN`, so every
//! open agent stream on this replica hears of a change the moment it
//! commits. NOTIFY carries the revision; after a lost connection the head is
//! read again, so nothing missed while disconnected is lost.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::feed::head_revision;

/// The channel the `config_changes` trigger notifies.
const CHANNEL: &str = "tollgate_config";

/// Starts following the head revision in the background (call from within
/// a Tokio runtime). The receiver wakes whenever the head advances; the
/// task ends when every receiver is gone.
pub fn follow_head(pool: PgPool) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0);
    tokio::spawn(listen(pool, tx));
    rx
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
