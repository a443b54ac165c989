//! Sealing usage into batches and delivering them.
//!
//! Two loops: the sealer drains the in-memory counts, refused counts, failed calls and
//! credential uses every flush interval into [`UsageBatch`]es (UUIDv7 ids) and spools them;
//! the sender posts spooled batches oldest first, deleting each only after a [`UsageAck`] for
//! its id, and backs off while the server is unreachable. A batch the server itself refuses as
//! invalid (400, 413, 422 with its JSON error) would be refused again however often it is
//! resent and block the queue, so it is dropped, logged and counted. The same statuses from
//! something else on the way (a proxy's 413 for its own body limit, a 400 for plain HTTP to
//! an HTTPS port) say nothing about the batch: it is kept and sent again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tollgate_protocol::usage::MAX_REFUSED_PER_BATCH;
use tollgate_protocol::{USAGE_PATH, UsageAck, UsageBatch};
use uuid::Uuid;

use super::aggregate::Aggregator;
use super::spool::{MAX_CREDENTIALS_PER_BATCH, MAX_ENTRIES_PER_BATCH, Spool, Spooled};
use crate::sync::Backoff;
use crate::sync::client::ControlPlane;
use crate::telemetry::Metrics;

/// How often the credential-use queues are merged when seals are further apart.
const COMPACT_EVERY: Duration = Duration::from_secs(30);

pub(crate) struct Reporter {
    pub aggregator: Arc<Aggregator>,
    pub spool: Arc<Spool>,
    pub control_plane: Arc<ControlPlane>,
    pub metrics: Arc<Metrics>,
    pub agent_id: Uuid,
    /// Wakes the sender when a batch was spooled.
    pub spooled: Notify,
}

impl Reporter {
    /// Seals and spools everything counted so far, the failed calls sampled and the
    /// credentials whose latest use advanced since the last seal.
    pub async fn seal(self: &Arc<Self>) {
        let (entries, refused) = self.aggregator.drain();
        let (failed_calls, failed_calls_dropped) = self.aggregator.failed_calls.drain();
        let used = self.aggregator.last_used.drain();
        if entries.is_empty()
            && refused.is_empty()
            && used.is_empty()
            && failed_calls.is_empty()
            && failed_calls_dropped == 0
        {
            return;
        }
        let agent_id = self.agent_id;
        let spool = self.spool.clone();
        let metrics = self.metrics.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut written = 0;
            // Failed calls are a sample for display; usage is what bills. Past half the spool,
            // they are only counted, so a long outage under a flood of errors leaves the rest
            // of the spool to usage.
            let (failed_calls, failed_calls_dropped) = if spool.is_half_full() {
                (Vec::new(), failed_calls_dropped.saturating_add(failed_calls.len() as u64))
            } else {
                (failed_calls, failed_calls_dropped)
            };
            // As many batches as the longest list needs; each item is in one of them, and the
            // failed calls (at most one batch's worth) in the first.
            let batches = entries
                .len()
                .div_ceil(MAX_ENTRIES_PER_BATCH)
                .max(used.len().div_ceil(MAX_CREDENTIALS_PER_BATCH))
                .max(refused.len().div_ceil(MAX_REFUSED_PER_BATCH))
                .max(1);
            let mut entries = entries.chunks(MAX_ENTRIES_PER_BATCH);
            let mut used = used.chunks(MAX_CREDENTIALS_PER_BATCH);
            let mut refused = refused.chunks(MAX_REFUSED_PER_BATCH);
            let mut failed = Some((failed_calls, failed_calls_dropped));
            for _ in 0..batches {
                let (failed_calls, failed_calls_dropped) = failed.take().unwrap_or_default();
                let batch = UsageBatch {
                    id: Uuid::now_v7(),
                    agent_id,
                    entries: entries.next().unwrap_or_default().to_vec(),
                    credentials_used: used.next().unwrap_or_default().to_vec(),
                    refused: refused.next().unwrap_or_default().to_vec(),
                    failed_calls,
                    failed_calls_dropped,
                };
                match spool.append(&batch) {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(err) => {
                        tracing::error!(error = %err, batch = %batch.id, "cannot encode a usage batch; dropped");
                        metrics.usage_dropped.increment(1);
                    }
                }
            }
            written
        })
        .await
        .unwrap_or(0);
        if written > 0 {
            self.spooled.notify_one();
        }
    }

    /// Seals every `interval` until `stop` changes. When seals are further apart than
    /// [`COMPACT_EVERY`], merges the credential-use queues that often in between, so a long
    /// interval holds about one entry per used credential, not one per credential and minute.
    pub async fn run_sealer(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut compact = tokio::time::interval(COMPACT_EVERY);
        compact.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        compact.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = compact.tick(), if interval > COMPACT_EVERY => {
                    let this = self.clone();
                    let _ = tokio::task::spawn_blocking(move || this.aggregator.last_used.compact()).await;
                    continue;
                }
                _ = stop.changed() => return,
            }
            self.seal().await;
            self.metrics.upkeep();
        }
    }

    /// Delivers spooled batches until `stop` changes.
    pub async fn run_sender(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new();
        loop {
            let sent = tokio::select! {
                sent = self.send_all(None) => sent,
                _ = stop.changed() => return,
            };
            let wait = match sent {
                Ok(()) => {
                    backoff.reset();
                    None
                }
                Err(reason) => {
                    tracing::warn!(%reason, "usage report failed; will retry");
                    Some(backoff.next_delay())
                }
            };
            tokio::select! {
                _ = self.spooled.notified() => {}
                _ = sleep_or_forever(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Sends spooled batches oldest first, stopping at the first failure or at `deadline`.
    pub async fn send_all(&self, deadline: Option<Instant>) -> Result<(), String> {
        while let Some(spooled) = self.spool.oldest() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err("shutdown deadline reached".to_owned());
            }
            self.send(&spooled).await?;
        }
        Ok(())
    }

    async fn send(&self, spooled: &Spooled) -> Result<(), String> {
        let path = spooled.path.clone();
        let from_disk = match &spooled.in_memory {
            Some(body) => Ok(Ok(body.clone())),
            None => tokio::task::spawn_blocking(move || std::fs::read(path).map(Bytes::from)).await,
        };
        let body = match from_disk {
            Ok(Ok(body)) => body,
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::error!(error = %err, batch = %spooled.batch_id, "spooled usage batch is gone; dropped");
                self.metrics.usage_dropped.increment(1);
                self.forget(spooled).await;
                return Ok(());
            }
            // Out of file descriptors, a disk error, a permission: the batch is still there, and
            // is sent once it can be read.
            Ok(Err(err)) => return Err(format!("cannot read spooled usage batch {}: {err}", spooled.batch_id)),
            Err(join) => return Err(join.to_string()),
        };
        let (status, answer) = self.control_plane.post_json(USAGE_PATH, body).await.map_err(|e| e.to_string())?;
        if status.is_success() {
            match serde_json::from_slice::<UsageAck>(&answer) {
                Ok(ack) if ack.batch_id == spooled.batch_id => {
                    tracing::debug!(batch = %ack.batch_id, duplicate = ack.duplicate, "usage batch acknowledged");
                    self.forget(spooled).await;
                    Ok(())
                }
                Ok(ack) => {
                    Err(format!("acknowledgement for batch {} while sending {}", ack.batch_id, spooled.batch_id))
                }
                Err(err) => Err(format!("unreadable acknowledgement: {err}")),
            }
        } else if matches!(status.as_u16(), 400 | 413 | 422) && is_server_error_body(&answer) {
            tracing::error!(
                batch = %spooled.batch_id,
                %status,
                answer = %String::from_utf8_lossy(&answer),
                "the management server refused a usage batch as invalid; dropped"
            );
            self.metrics.usage_dropped.increment(1);
            self.forget(spooled).await;
            Ok(())
        } else if status.as_u16() == 401 {
            Err("the management server refused the agent token (401); check TOLLGATE_AGENT_TOKEN".to_owned())
        } else {
            Err(format!("the management server answered {status}"))
        }
    }

    async fn forget(&self, spooled: &Spooled) {
        let spool = self.spool.clone();
        let spooled = spooled.clone();
        let removed = tokio::task::spawn_blocking(move || spool.remove(&spooled)).await;
        if let Ok(Err(err)) = removed {
            tracing::error!(error = %err, "cannot delete an acknowledged usage batch from the spool");
        }
    }
}

/// Whether an answer is the management server's own error (`{"error": "…", …}`), not a page
/// from a proxy on the way.
fn is_server_error_body(answer: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(answer).is_ok_and(|v| v.get("error").is_some_and(|e| e.is_string()))
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
