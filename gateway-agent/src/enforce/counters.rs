//! Local counters: one per (application, metric, period, window), admitted atomically.
//!
//! Counters are sharded by application and each shard is a small mutex-protected map. All
//! checks of one request belong to one application, so a request locks exactly one shard,
//! checks every limit and, only if all have room, adds to every counter before unlocking:
//! concurrent requests can neither over-admit nor see a half-counted request. Different
//! applications almost never share a shard, so there is no global lock.
//!
//! Counters are keyed by window, so a clock that steps back lands on the earlier window's
//! own counter. Windows are swept [`RETENTION_SECS`] after they end.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use tollgate_protocol::{CurrentUsage, Period, WindowId};
use uuid::Uuid;

use super::touched::InlineVec;
use crate::hashing::{FxBuildHasher, spread_u128};

/// How long a window's counter outlives the window: a clock stepping back by up to this
/// much still finds the counts of the window it lands in.
pub const RETENTION_SECS: i64 = 300;

/// Identifies one counter. Ids, not config indices, so counters survive config changes and
/// mean the same on every agent (Redis keys are built from them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub app: Uuid,
    pub metric: Uuid,
    pub period: Period,
    pub window: WindowId,
}

/// "Add `amount` to `key` if that keeps it at most `max`."
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub key: CounterKey,
    pub amount: u64,
    pub max: u64,
    /// End of the window (`None`: eternity), for `Retry-After`, Redis TTLs and sweeping.
    pub window_end: Option<Timestamp>,
    /// Index of the limit among its plan's, for what the plan precomputed about it.
    pub limit: u32,
}

impl Check {
    /// Fills unused slots of inline lists.
    pub const PLACEHOLDER: Check = Check {
        key: CounterKey { app: Uuid::nil(), metric: Uuid::nil(), period: Period::Eternity, window: WindowId(0) },
        amount: 0,
        max: 0,
        window_end: None,
        limit: 0,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every check had room and every counter was incremented; `tightest` is the most
    /// constrained of them afterwards (`None` without checks), see [`tightest`].
    Admitted { tightest: Option<Standing> },
    /// `checks[index]` had no room (its counter stood at `used`); nothing was counted.
    Rejected { index: usize, used: u64 },
}

impl Outcome {
    pub fn is_admitted(&self) -> bool {
        matches!(self, Outcome::Admitted { .. })
    }
}

/// Where one check's counter stands: `checks[index]` at `used`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub index: usize,
    pub used: u64,
}

/// The most constrained of `checks`, whose counters stand at `used(i)`: the least remaining
/// (`max - used`, at least 0); among equals, the one whose window ends last (eternity last
/// of all), since that is how long a client with nothing left must wait; then the first.
/// This is the limit the `RateLimit-*` headers describe.
pub fn tightest(checks: &[Check], used: impl Fn(usize) -> u64) -> Option<Standing> {
    let mut best: Option<(Standing, u64)> = None;
    for (index, check) in checks.iter().enumerate() {
        let standing = Standing { index, used: used(index) };
        let remaining = check.max.saturating_sub(standing.used);
        let tighter = best.is_none_or(|(kept, kept_remaining)| {
            remaining < kept_remaining
                || (remaining == kept_remaining && ends_later(check.window_end, checks[kept.index].window_end))
        });
        if tighter {
            best = Some((standing, remaining));
        }
    }
    best.map(|(standing, _)| standing)
}

/// Whether a window ending at `a` ends strictly after one ending at `b` (`None`: never).
fn ends_later(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, None) | (Some(_), None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
    }
}

#[derive(Clone, Copy)]
struct Slot {
    used: u64,
    /// Window end in Unix seconds (`i64::MAX` for eternity), for sweeping.
    end: i64,
}

type Shard = HashMap<CounterKey, Slot, FxBuildHasher>;

pub struct LocalCounters {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCounters {
    pub fn new() -> LocalCounters {
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        let shards = (cores * 16).next_power_of_two().max(64);
        LocalCounters { shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect() }
    }

    fn shard_of(&self, app: Uuid) -> usize {
        spread_u128(app.as_u128()) as usize & (self.shards.len() - 1)
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard cannot leave a counter half-updated (updates are
        // single writes), so a poisoned shard is still consistent.
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits all checks or none. Each key must appear at most once.
    pub fn check_and_add(&self, checks: &[Check]) -> Outcome {
        let Some(first) = checks.first() else {
            return Outcome::Admitted { tightest: None };
        };
        let shard = self.shard_of(first.key.app);
        if checks.iter().all(|c| self.shard_of(c.key.app) == shard) {
            let mut map = self.lock(shard);
            return check_then_add(&mut [&mut *map], checks, |_| 0);
        }
        // Checks of several applications (not produced by the proxy): lock their shards in
        // ascending order so two such calls cannot deadlock.
        let mut indices: Vec<usize> = checks.iter().map(|c| self.shard_of(c.key.app)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> = indices.iter().map(|&i| self.lock(i)).collect();
        let mut maps: Vec<&mut Shard> = guards.iter_mut().map(|g| &mut **g).collect();
        check_then_add(&mut maps, checks, |check| {
            let shard = self.shard_of(check.key.app);
            indices.binary_search(&shard).unwrap_or(0)
        })
    }

    /// Counts without checking: mirrors usage admitted by the shared Redis counters, so a
    /// fallback to local counters starts from this agent's share rather than zero.
    pub fn add(&self, checks: &[Check]) {
        for check in checks {
            let mut map = self.lock(self.shard_of(check.key.app));
            let slot = map.entry(check.key).or_insert(Slot { used: 0, end: end_secs(check.window_end) });
            slot.used = slot.used.saturating_add(check.amount);
        }
    }

    /// Raises a counter to `used` (usage the server has seen from all agents), never lowers
    /// it: this agent's own recent, not yet reported usage stays counted.
    pub fn seed(&self, key: CounterKey, used: u64, window_end: Option<Timestamp>) {
        let mut map = self.lock(self.shard_of(key.app));
        let slot = map.entry(key).or_insert(Slot { used: 0, end: end_secs(window_end) });
        slot.used = slot.used.max(used);
    }

    pub fn used(&self, key: &CounterKey) -> u64 {
        self.lock(self.shard_of(key.app)).get(key).map_or(0, |slot| slot.used)
    }

    /// Drops counters of windows that ended more than [`RETENTION_SECS`] before `now`.
    pub fn sweep(&self, now: Timestamp) {
        let horizon = now.as_second().saturating_sub(RETENTION_SECS);
        for index in 0..self.shards.len() {
            self.lock(index).retain(|_, slot| slot.end > horizon);
        }
    }

    /// Counters of periods the server seeds (an hour or longer) in their current window, in
    /// the snapshot's `usage` shape (one window per application, metric and period), for the
    /// persisted config.
    pub fn seeded_usage(&self, now: Timestamp) -> Vec<CurrentUsage> {
        let now = now.as_second();
        let mut current: HashMap<(Uuid, Uuid, Period), CurrentUsage> = HashMap::new();
        for index in 0..self.shards.len() {
            for (key, slot) in self.lock(index).iter() {
                if !key.period.is_seeded() || slot.end <= now || slot.used == 0 {
                    continue;
                }
                let usage = CurrentUsage {
                    application_id: key.app,
                    metric: key.metric,
                    period: key.period,
                    window_start: key.window,
                    value: slot.used,
                };
                current
                    .entry((key.app, key.metric, key.period))
                    .and_modify(|kept| {
                        if kept.window_start < usage.window_start {
                            *kept = usage.clone();
                        }
                    })
                    .or_insert(usage);
            }
        }
        current.into_values().collect()
    }
}

fn end_secs(end: Option<Timestamp>) -> i64 {
    end.map_or(i64::MAX, |t| t.as_second())
}

/// Checks every counter, then adds to every counter; `map_of` says which map holds a check.
fn check_then_add(maps: &mut [&mut Shard], checks: &[Check], map_of: impl Fn(&Check) -> usize) -> Outcome {
    let mut refused: Option<(usize, u64)> = None;
    for (index, check) in checks.iter().enumerate() {
        let used = maps[map_of(check)].get(&check.key).map_or(0, |slot| slot.used);
        if used.saturating_add(check.amount) > check.max {
            // The reached limit whose window ends last is the one to wait for: a retry after
            // a shorter one would meet this one.
            let later = refused.is_none_or(|(i, _)| end_secs(check.window_end) > end_secs(checks[i].window_end));
            if later {
                refused = Some((index, used));
            }
        }
    }
    if let Some((index, used)) = refused {
        return Outcome::Rejected { index, used };
    }
    let mut after: InlineVec<u64, 8> = InlineVec::new(0);
    for check in checks {
        let slot = maps[map_of(check)].entry(check.key).or_insert(Slot { used: 0, end: end_secs(check.window_end) });
        slot.used += check.amount;
        after.push(slot.used);
    }
    Outcome::Admitted { tightest: tightest(checks, |i| after.as_slice()[i]) }
}
