//! In-memory usage counts per (application, metric, minute, status class), counts of refused
//! requests per (application, minute, status), and the latest use of each credential
//! (last_used.rs).
//!
//! Each worker thread records into its own shard (a mutex that only the flush tick ever
//! contends for), so the request path neither waits on I/O nor shares a lock with other
//! requests.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tollgate_protocol::usage::{LATENCY_BUCKETS, latency_bucket};
use tollgate_protocol::{RefusedEntry, StatusClass, UsageEntry};
use uuid::Uuid;

use super::failed_calls::FailedCalls;
use super::last_used::LastUsed;
use super::shard::shard_index;
use crate::hashing::FxBuildHasher;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    app: Uuid,
    metric: Uuid,
    minute: i64,
    class: StatusClass,
}

#[derive(Clone, Copy, Default)]
struct Counts {
    count: u64,
    latency: [u64; LATENCY_BUCKETS],
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RefusedKey {
    app: Uuid,
    minute: i64,
    status: u16,
}

#[derive(Default)]
struct Shard {
    usage: HashMap<Key, Counts, FxBuildHasher>,
    refused: HashMap<RefusedKey, Counts, FxBuildHasher>,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.count = self.count.saturating_add(other.count);
        for (sum, n) in self.latency.iter_mut().zip(other.latency) {
            *sum = sum.saturating_add(n);
        }
    }
}

pub(crate) struct Aggregator {
    shards: Box<[Mutex<Shard>]>,
    /// The latest use of each credential, reported alongside the counts.
    pub last_used: LastUsed,
    /// A sample of recent failed calls, reported alongside the counts.
    pub failed_calls: FailedCalls,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        Aggregator {
            shards: (0..cores * 2).map(|_| Mutex::new(Shard::default())).collect(),
            last_used: LastUsed::new(cores * 2),
            failed_calls: FailedCalls::new(cores * 2),
        }
    }

    /// Records one forwarded request: `metrics` are (metric id, amount) with parents
    /// included; `latency` runs from request received to upstream response head.
    pub fn record(
        &self,
        app: Uuid,
        metrics: impl Iterator<Item = (Uuid, u64)>,
        at: Timestamp,
        status: u16,
        latency: Duration,
    ) {
        let Some(class) = StatusClass::from_status(status) else {
            return;
        };
        let minute = at.as_second().div_euclid(60) * 60;
        let bucket = latency_bucket(latency);
        let index = shard_index(self.shards.len());
        let mut shard = self.shards[index].lock().unwrap_or_else(PoisonError::into_inner);
        for (metric, amount) in metrics {
            let counts = shard.usage.entry(Key { app, metric, minute, class }).or_default();
            counts.count = counts.count.saturating_add(amount);
            counts.latency[bucket] += 1;
        }
    }

    /// Records one request the agent answered itself with `status` (400..=599) that is
    /// attributable to `app`, received at `at`; `latency` runs to the agent's answer. Not usage.
    pub fn record_refused(&self, app: Uuid, at: Timestamp, status: u16, latency: Duration) {
        let key = RefusedKey { app, minute: at.as_second().div_euclid(60) * 60, status };
        let bucket = latency_bucket(latency);
        let index = shard_index(self.shards.len());
        let mut shard = self.shards[index].lock().unwrap_or_else(PoisonError::into_inner);
        let counts = shard.refused.entry(key).or_default();
        counts.count = counts.count.saturating_add(1);
        counts.latency[bucket] = counts.latency[bucket].saturating_add(1);
    }

    /// Takes everything counted so far, merged across shards, in a stable order: usage
    /// entries and refused counts.
    pub fn drain(&self) -> (Vec<UsageEntry>, Vec<RefusedEntry>) {
        let mut merged = Shard::default();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            for (key, counts) in taken.usage {
                merged.usage.entry(key).or_default().add(&counts);
            }
            for (key, counts) in taken.refused {
                merged.refused.entry(key).or_default().add(&counts);
            }
        }
        let mut refused: Vec<RefusedEntry> = merged
            .refused
            .into_iter()
            .map(|(key, counts)| RefusedEntry {
                application_id: key.app,
                minute: key.minute,
                status: key.status,
                count: counts.count,
                latency_buckets: counts.latency,
            })
            .collect();
        refused.sort_by_key(|e| (e.minute, e.application_id, e.status));
        let mut entries: Vec<UsageEntry> = merged
            .usage
            .into_iter()
            .map(|(key, counts)| UsageEntry {
                application_id: key.app,
                metric: key.metric,
                minute: key.minute,
                status_class: key.class,
                count: counts.count,
                latency_buckets: counts.latency,
            })
            .collect();
        entries.sort_by_key(|e| (e.minute, e.application_id, e.metric, e.status_class));
        (entries, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_per_minute_and_class() {
        let aggregator = Aggregator::new();
        let app = Uuid::from_u128(1);
        let (hits, get) = (Uuid::from_u128(2), Uuid::from_u128(3));
        let at = Timestamp::from_second(125).expect("valid");
        aggregator.record(app, [(get, 1), (hits, 1)].into_iter(), at, 200, Duration::from_millis(3));
        aggregator.record(app, [(hits, 5)].into_iter(), at, 201, Duration::from_millis(30));
        aggregator.record(app, [(hits, 1)].into_iter(), at, 503, Duration::from_millis(3));
        aggregator.record_refused(app, at, 429, Duration::from_millis(3));
        aggregator.record_refused(app, at, 429, Duration::from_millis(30));
        aggregator.record_refused(app, Timestamp::from_second(185).expect("valid"), 429, Duration::ZERO);
        let (entries, refused) = aggregator.drain();
        assert_eq!(entries.len(), 3);
        assert_eq!(refused.len(), 2);
        assert_eq!((refused[0].minute, refused[0].status, refused[0].count), (120, 429, 2));
        assert_eq!(refused[0].latency_buckets.iter().sum::<u64>(), 2);
        assert_eq!((refused[1].minute, refused[1].count), (180, 1));
        let hits_2xx =
            entries.iter().find(|e| e.metric == hits && e.status_class == StatusClass::Success).expect("entry");
        assert_eq!((hits_2xx.minute, hits_2xx.count), (120, 6));
        assert_eq!(hits_2xx.latency_buckets[0] + hits_2xx.latency_buckets[3], 2);
        assert_eq!(aggregator.drain(), (Vec::new(), Vec::new()));
    }
}
