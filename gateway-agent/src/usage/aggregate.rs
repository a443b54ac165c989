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
use super::groups::GroupTag;
use super::last_used::LastUsed;
use super::shard::shard_index;
use crate::hashing::FxBuildHasher;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    app: Uuid,
    metric: Uuid,
    minute: i64,
    class: StatusClass,
    group: GroupTag,
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
    group: GroupTag,
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
    /// included; `latency` runs from request received to upstream response head; `group` is
    /// the upstream group that served it.
    pub fn record(
        &self,
        app: Uuid,
        group: GroupTag,
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
            let counts = shard.usage.entry(Key { app, metric, minute, class, group }).or_default();
            counts.count = counts.count.saturating_add(amount);
            counts.latency[bucket] += 1;
        }
    }

    /// Records one request the agent answered itself with `status` (400..=599) that is
    /// attributable to `app`, received at `at`; `latency` runs to the agent's answer; `group`
    /// the upstream group it was sent to, if it got that far. Not usage.
    pub fn record_refused(&self, app: Uuid, group: GroupTag, at: Timestamp, status: u16, latency: Duration) {
        let key = RefusedKey { app, minute: at.as_second().div_euclid(60) * 60, status, group };
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
                group: key.group.name().map(|name| name.to_string()),
            })
            .collect();
        refused.sort_by(|a, b| {
            (a.minute, a.application_id, a.status, &a.group).cmp(&(b.minute, b.application_id, b.status, &b.group))
        });
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
                group: key.group.name().map(|name| name.to_string()),
            })
            .collect();
        entries.sort_by(|a, b| {
            (a.minute, a.application_id, a.metric, a.status_class, &a.group).cmp(&(
                b.minute,
                b.application_id,
                b.metric,
                b.status_class,
                &b.group,
            ))
        });
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
        aggregator.record(app, GroupTag::NONE, [(get, 1), (hits, 1)].into_iter(), at, 200, Duration::from_millis(3));
        aggregator.record(app, GroupTag::NONE, [(hits, 5)].into_iter(), at, 201, Duration::from_millis(30));
        aggregator.record(app, GroupTag::NONE, [(hits, 1)].into_iter(), at, 503, Duration::from_millis(3));
        aggregator.record_refused(app, GroupTag::NONE, at, 429, Duration::from_millis(3));
        aggregator.record_refused(app, GroupTag::NONE, at, 429, Duration::from_millis(30));
        aggregator.record_refused(
            app,
            GroupTag::NONE,
            Timestamp::from_second(185).expect("valid"),
            429,
            Duration::ZERO,
        );
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

    #[test]
    fn groups_are_counted_apart_and_named() {
        let aggregator = Aggregator::new();
        let (app, hits) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let at = Timestamp::from_second(125).expect("valid");
        let canary = GroupTag::intern("canary");
        aggregator.record(app, canary, [(hits, 1)].into_iter(), at, 200, Duration::ZERO);
        aggregator.record(app, GroupTag::intern("stable"), [(hits, 1)].into_iter(), at, 200, Duration::ZERO);
        aggregator.record_refused(app, canary, at, 502, Duration::ZERO);
        let (entries, refused) = aggregator.drain();
        let groups: Vec<_> = entries.iter().map(|e| e.group.as_deref()).collect();
        assert_eq!(groups, [Some("canary"), Some("stable")]);
        assert_eq!(refused[0].group.as_deref(), Some("canary"));
    }
}
