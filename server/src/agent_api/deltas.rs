//! Deltas shared by the config streams of one replica. When the change feed's head moves,
//! every agent that was at the same revision needs the same delta: one read of the feed
//! serves them all, where each stream used to read it for itself (a transaction of four
//! statements per agent and change).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use tollgate_core::db::PgPool;
use tollgate_core::sync::build_delta;
use tollgate_core::sync::feed::head_revision;
use tollgate_protocol::{ConfigMessage, Heartbeat};

use super::error::AgentApiError;

/// Deltas kept: one per starting revision that agents were at when the head last moved.
const KEPT: usize = 32;
/// How long a read serves: streams woken by one change ask within milliseconds, and the
/// heartbeat of an agent already up to date should say when it was true.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// A delta from a revision, with the revision it reaches; `None` when the agent needs a
/// snapshot instead.
pub type Caught = Option<(Arc<ConfigMessage>, u64)>;

/// One read of the feed from `from`, made for the head `head`.
struct Slot {
    from: u64,
    head: u64,
    made: Instant,
    delta: Arc<OnceCell<Caught>>,
}

#[derive(Default)]
pub struct SharedDeltas {
    slots: Mutex<VecDeque<Slot>>,
}

impl SharedDeltas {
    /// The delta (or a heartbeat when nothing changed) from `from`, read once for all the
    /// streams asking while the head is `head` (within [`FRESH_FOR`]). A stream woken by the
    /// change feed passes the head it was woken for; a stream just opened passes `None`, and
    /// the head is read from the feed, because the notification of a change may not have
    /// reached this replica yet. A read made for an older head may stop short of the new one,
    /// so it is not reused; a failed read is not kept.
    pub async fn from(&self, pool: &PgPool, from: u64, head: Option<u64>) -> Result<Caught, AgentApiError> {
        let head = match head {
            Some(head) => head,
            None => u64::try_from(head_revision(pool).await?).unwrap_or(0),
        };
        let delta = {
            let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            slots.retain(|slot| now.duration_since(slot.made) < FRESH_FOR);
            match slots.iter().find(|slot| slot.from == from && slot.head == head) {
                Some(slot) => slot.delta.clone(),
                None => {
                    let delta = Arc::new(OnceCell::new());
                    slots.push_back(Slot { from, head, made: now, delta: delta.clone() });
                    if slots.len() > KEPT {
                        slots.pop_front();
                    }
                    delta
                }
            }
        };
        let read = delta
            .get_or_try_init(|| async {
                metrics::counter!("tollgate_config_delta_reads_total").increment(1);
                read(pool, from).await
            })
            .await?;
        Ok(read.clone())
    }
}

/// Reads the delta from `from` to the head.
async fn read(pool: &PgPool, from: u64) -> Result<Caught, AgentApiError> {
    let Some(delta) = build_delta(pool, from).await? else { return Ok(None) };
    let revision = delta.revision;
    if delta.changes.is_empty() && revision == from {
        let beat = ConfigMessage::Heartbeat(Heartbeat { revision, at: jiff::Timestamp::now() });
        return Ok(Some((Arc::new(beat), revision)));
    }
    Ok(Some((Arc::new(ConfigMessage::Delta(delta)), revision)))
}
