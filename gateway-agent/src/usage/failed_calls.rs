//! Recent failed calls per application: a bounded sample, sealed into each usage batch.
//!
//! Each worker thread records into its own shard (a mutex only the flush contends for). A
//! shard keeps, per application, a ring of its latest [`FAILED_CALLS_PER_APPLICATION`] calls
//! and holds at most [`APPLICATIONS_PER_SHARD`] applications; a call beyond either bound
//! overwrites the application's oldest or is left out, and is counted as dropped. Recording
//! allocates only for a call that is kept (its method, path and prefix strings, and a ring
//! for an application's first failure since the flush), so a flood of refusals costs a
//! counter increment per request once the bounds are reached. The flush keeps each
//! application's latest calls across shards and at most [`MAX_FAILED_CALLS_PER_BATCH`] in all,
//! taken round-robin across applications so one noisy application cannot crowd out the rest.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::Method;
use jiff::Timestamp;
use tollgate_protocol::FailedCall;
use tollgate_protocol::usage::{
    FAILED_CALLS_PER_APPLICATION, MAX_FAILED_CALL_METHOD_BYTES, MAX_FAILED_CALL_PATH_BYTES, MAX_FAILED_CALLS_PER_BATCH,
};
use uuid::Uuid;

use super::shard::shard_index;
use crate::enforce::credentials::KeyPrefix;
use crate::hashing::FxBuildHasher;

/// Applications a shard keeps failed calls of between two flushes.
pub(crate) const APPLICATIONS_PER_SHARD: usize = 64;

/// One failed call as the request path knows it (borrowed; copied only if kept).
pub(crate) struct Failure<'a> {
    pub app: Uuid,
    pub api: Uuid,
    pub at: Timestamp,
    pub method: &'a Method,
    pub operation: Option<Uuid>,
    /// The raw request path, without query.
    pub path: &'a str,
    pub status: u16,
    /// The agent's error code; `None` for an upstream's status.
    pub error: Option<&'static str>,
    pub prefix: Option<KeyPrefix>,
    pub latency: Duration,
    /// The id the answer carries in `X-Tollgate-Request-Id`.
    pub request_id: Uuid,
}

impl Failure<'_> {
    fn to_record(&self) -> FailedCall {
        FailedCall {
            application_id: self.app,
            api_id: self.api,
            at: self.at,
            method: cut(self.method.as_str(), MAX_FAILED_CALL_METHOD_BYTES).to_owned(),
            metric: self.operation,
            path: cut(self.path, MAX_FAILED_CALL_PATH_BYTES).to_owned(),
            status: self.status,
            error: self.error.map(str::to_owned),
            key_prefix: self.prefix.map(|prefix| prefix.as_str().to_owned()),
            latency_us: u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
            request_id: Some(self.request_id),
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..end]
}

/// The latest calls of one application, oldest overwritten first.
struct Ring {
    calls: Vec<FailedCall>,
    /// Where the next call goes once the ring is full.
    next: usize,
}

#[derive(Default)]
struct Shard {
    apps: HashMap<Uuid, Ring, FxBuildHasher>,
    dropped: u64,
}

pub(crate) struct FailedCalls {
    shards: Box<[Mutex<Shard>]>,
}

impl FailedCalls {
    pub fn new(shards: usize) -> FailedCalls {
        FailedCalls { shards: (0..shards.max(1)).map(|_| Mutex::new(Shard::default())).collect() }
    }

    pub fn record(&self, failure: &Failure<'_>) {
        let mut shard = self.shards[shard_index(self.shards.len())].lock().unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *shard;
        if !shard.apps.contains_key(&failure.app) && shard.apps.len() >= APPLICATIONS_PER_SHARD {
            shard.dropped = shard.dropped.saturating_add(1);
            return;
        }
        let ring = shard
            .apps
            .entry(failure.app)
            .or_insert_with(|| Ring { calls: Vec::with_capacity(FAILED_CALLS_PER_APPLICATION), next: 0 });
        if ring.calls.len() < FAILED_CALLS_PER_APPLICATION {
            ring.calls.push(failure.to_record());
        } else {
            ring.calls[ring.next] = failure.to_record();
            ring.next = (ring.next + 1) % FAILED_CALLS_PER_APPLICATION;
            shard.dropped = shard.dropped.saturating_add(1);
        }
    }

    /// Takes the calls recorded so far: each application's latest
    /// [`FAILED_CALLS_PER_APPLICATION`] across shards, at most [`MAX_FAILED_CALLS_PER_BATCH`] in
    /// all (round-robin over applications, latest calls first), oldest first; and how many
    /// were left out.
    pub fn drain(&self) -> (Vec<FailedCall>, u64) {
        let mut dropped = 0u64;
        let mut per_app: HashMap<Uuid, Vec<FailedCall>, FxBuildHasher> = HashMap::default();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            dropped = dropped.saturating_add(taken.dropped);
            for (app, ring) in taken.apps {
                per_app.entry(app).or_default().extend(ring.calls);
            }
        }
        // Latest first within each application; applications in a stable order.
        let mut apps: Vec<Vec<FailedCall>> = per_app
            .into_values()
            .map(|mut calls| {
                calls.sort_by_key(|call| std::cmp::Reverse(call.at));
                let over = calls.len().saturating_sub(FAILED_CALLS_PER_APPLICATION);
                dropped = dropped.saturating_add(over as u64);
                calls.truncate(FAILED_CALLS_PER_APPLICATION);
                calls
            })
            .collect();
        apps.sort_by_key(|calls| calls.first().map(|c| c.application_id));
        let total: usize = apps.iter().map(Vec::len).sum();
        let mut queues: Vec<std::vec::IntoIter<FailedCall>> = apps.into_iter().map(Vec::into_iter).collect();
        let mut kept = Vec::with_capacity(total.min(MAX_FAILED_CALLS_PER_BATCH));
        // One call of each application per round, latest first, until the cap.
        while kept.len() < total.min(MAX_FAILED_CALLS_PER_BATCH) {
            for queue in &mut queues {
                if kept.len() == MAX_FAILED_CALLS_PER_BATCH {
                    break;
                }
                kept.extend(queue.next());
            }
        }
        dropped = dropped.saturating_add((total - kept.len()) as u64);
        kept.sort_by_key(|call| call.at);
        (kept, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(app: u128, second: i64, path: &str) -> Failure<'_> {
        Failure {
            app: Uuid::from_u128(app),
            api: Uuid::from_u128(99),
            at: Timestamp::from_second(second).expect("valid"),
            method: &Method::GET,
            operation: None,
            path,
            status: 429,
            error: Some("limit_exceeded"),
            prefix: KeyPrefix::of("tg_uk_000A7dl5PEW67zZCpFU9uKaHnGgOvQKAR13yvxX"),
            latency: Duration::from_micros(1500),
            request_id: Uuid::from_u128((app << 64) | u128::try_from(second).unwrap_or(0)),
        }
    }

    #[test]
    fn each_application_keeps_its_latest_calls() {
        let calls = FailedCalls::new(1);
        for second in 0..50 {
            calls.record(&failure(1, second, "/pets/items"));
        }
        calls.record(&failure(2, 7, "/pets/other"));
        let (kept, dropped) = calls.drain();
        assert_eq!(kept.len(), FAILED_CALLS_PER_APPLICATION + 1);
        assert_eq!(dropped, 50 - FAILED_CALLS_PER_APPLICATION as u64);
        let of_1: Vec<i64> =
            kept.iter().filter(|c| c.application_id == Uuid::from_u128(1)).map(|c| c.at.as_second()).collect();
        assert_eq!(of_1, (30..50).collect::<Vec<_>>(), "the latest, oldest first");
        assert!(kept.windows(2).all(|w| w[0].at <= w[1].at));
        let call = &kept[0];
        assert_eq!(call.key_prefix.as_deref(), Some("tg_uk_000A"));
        assert_eq!(
            (call.latency_us, call.error.as_deref(), call.method.as_str()),
            (1500, Some("limit_exceeded"), "GET")
        );
        assert_eq!(calls.drain(), (Vec::new(), 0), "drained");
    }

    #[test]
    fn a_flood_of_applications_is_bounded_and_shared_fairly() {
        let calls = FailedCalls::new(4);
        let apps = 4 * APPLICATIONS_PER_SHARD as u128 + 10;
        // From several threads, so several shards fill.
        std::thread::scope(|scope| {
            for thread in 0..4u128 {
                let calls = &calls;
                scope.spawn(move || {
                    for app in (0..apps).filter(|app| app % 4 == thread) {
                        for second in 0..30 {
                            calls.record(&failure(app, second, "/pets"));
                        }
                    }
                });
            }
        });
        let (kept, dropped) = calls.drain();
        assert_eq!(kept.len(), MAX_FAILED_CALLS_PER_BATCH);
        assert_eq!(kept.len() as u64 + dropped, apps as u64 * 30, "every call is kept or counted");
        let mut per_app: HashMap<Uuid, usize> = HashMap::new();
        for call in &kept {
            *per_app.entry(call.application_id).or_default() += 1;
        }
        let (fewest, most) = (per_app.values().min().copied(), per_app.values().max().copied());
        assert!(most.unwrap_or(0) - fewest.unwrap_or(0) <= 1, "round-robin: {fewest:?}..{most:?}");
    }

    #[test]
    fn long_paths_and_methods_are_cut_at_a_character_boundary() {
        assert_eq!(cut("/abc", 3), "/ab");
        assert_eq!(cut("/é", 2), "/");
        assert_eq!(cut("/é", 3), "/é");
        let long = format!("/{}", "é".repeat(200));
        let calls = FailedCalls::new(1);
        let method = Method::from_bytes(&[b'X'; 40]).expect("method");
        calls.record(&Failure { method: &method, ..failure(1, 0, &long) });
        let (kept, _) = calls.drain();
        assert!(kept[0].path.len() <= MAX_FAILED_CALL_PATH_BYTES && long.starts_with(&kept[0].path));
        assert_eq!(kept[0].method.len(), MAX_FAILED_CALL_METHOD_BYTES);
    }
}
