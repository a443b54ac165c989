//! Recent usage reports, reused until usage arrives.
//!
//! The admin dashboard and a usage page read a report (a transaction of four statements) and
//! the dashboard its top lists too: about seven of the page's dozen round trips to Postgres.
//! Under fifty admins or developers looking at once that was most of a page's cost, though the
//! answer only changes when an agent's batch is counted. So a report is kept, per scope,
//! period and time zone, until this server counts a batch ([`RecentReports::usage_changed`])
//! or [`FRESH_FOR`] passes (another replica's intake, and buckets that move on with the clock,
//! show within that).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::report::{self, ReportPeriod, Scope, TimeZoneName, Timestamp, Top, UsageReport};
use crate::Result;

/// The longest a report is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// Reports kept at most per kind; beyond, stale ones are dropped, then all. A report of an API
/// with 200 methods by minute is about 100 KB, so this bounds the memory to tens of MB; past
/// 256 different pages in 5 s, reports are read again, as before.
const MAX_ENTRIES: usize = 256;

/// One server's recent reports. Shared by its workers.
#[derive(Default)]
pub struct RecentReports {
    /// Bumped by every counted batch: a report read before it is not reused.
    generation: AtomicU64,
    reports: Recent<(Scope, ReportPeriod, String), UsageReport>,
    tops: Recent<(ReportPeriod, i64), Top>,
}

impl RecentReports {
    /// New usage was counted on this server: reports read before it are read again.
    pub fn usage_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// [`report::report`], or the same report read less than [`FRESH_FOR`] ago with no usage
    /// counted since.
    pub async fn report(
        &self,
        pool: &PgPool,
        scope: Scope,
        period: ReportPeriod,
        tz: &TimeZoneName,
        now: Timestamp,
    ) -> Result<UsageReport> {
        let key = (scope, period, tz.as_str().to_owned());
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(report) = self.reports.get(&key, generation) {
            return Ok(report);
        }
        let report = report::report(pool, scope, period, tz, now).await?;
        self.reports.put(key, generation, report.clone());
        Ok(report)
    }

    /// [`report::top`], reused as a report is.
    pub async fn top(&self, pool: &PgPool, period: ReportPeriod, now: Timestamp, limit: i64) -> Result<Top> {
        let key = (period, limit);
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(top) = self.tops.get(&key, generation) {
            return Ok(top);
        }
        let top = report::top(pool, period, now, limit).await?;
        self.tops.put(key, generation, top.clone());
        Ok(top)
    }
}

/// Values by key, each with when it was read and the usage generation it was read in.
struct Recent<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    read_at: Instant,
    generation: u64,
    value: V,
}

impl<V> Entry<V> {
    fn fresh(&self, generation: u64, now: Instant) -> bool {
        self.generation == generation && now.duration_since(self.read_at) < FRESH_FOR
    }
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    fn get(&self, key: &K, generation: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|entry| entry.fresh(generation, Instant::now())).map(|entry| entry.value.clone())
    }

    /// Keeps `value`, read in `generation` (the generation before the read began, so that a
    /// batch counted during the read makes it stale at once).
    fn put(&self, key: K, generation: u64, value: V) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.fresh(generation, now));
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { read_at: now, generation, value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_reused_until_usage_changes_or_it_ages() {
        let recent: Recent<u32, &str> = Recent::default();
        recent.put(1, 7, "seven");
        assert_eq!(recent.get(&1, 7), Some("seven"));
        assert_eq!(recent.get(&1, 8), None, "usage counted since: read again");
        assert_eq!(recent.get(&2, 7), None);
        let old = Entry { read_at: Instant::now() - FRESH_FOR, generation: 7, value: () };
        assert!(!old.fresh(7, Instant::now()));
    }

    #[test]
    fn the_entries_stay_bounded() {
        let recent: Recent<usize, usize> = Recent::default();
        for key in 0..MAX_ENTRIES * 3 {
            recent.put(key, 0, key);
        }
        let len = recent.entries.lock().expect("lock").len();
        assert!(len <= MAX_ENTRIES, "{len}");
        assert_eq!(recent.get(&(MAX_ENTRIES * 3 - 1), 0), Some(MAX_ENTRIES * 3 - 1));
    }
}
