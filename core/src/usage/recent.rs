//! Recent usage reports, reused until usage arrives.
//!
//! The admin dashboard and a usage page read a report (a transaction of four statements) and
//! the dashboard its top lists too: about seven of the page's dozen round trips to Postgres.
//! Under fifty admins or developers looking at once that was most of a page's cost, though the
//! answer only changes when an agent's batch is counted. So a report is kept, per scope,
//! period and time zone, until this server counts a batch ([`RecentReports::usage_changed`])
//! or [`FRESH_FOR`] passes (another replica's intake, and buckets that move on with the clock,
//! show within that).
//!
//! One request at a time reads a given report: the others wait for its answer instead of
//! reading it again (over many applications a report takes a good part of a second, and ten
//! readers at once took ten times as long). While a report that has aged out is read again,
//! and no batch was counted since it was read, the others get it as it is, up to
//! [`STALE_FOR`] old.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::report::{self, ReportPeriod, Scope, TimeZoneName, Timestamp, Top, UsageReport};
use crate::Result;

/// The longest a report is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// The longest a report is shown while another request reads it again (with no batch since).
pub const STALE_FOR: Duration = Duration::from_secs(10);

/// Reports kept at most per kind; beyond, those past [`STALE_FOR`] are dropped, then all. A
/// report of an API with 200 methods by minute is about 100 KB, so this bounds the memory to
/// tens of MB; past 256 different pages in 10 s, reports are read again, as before.
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
        self.reports.get_or_read(key, &self.generation, || report::report(pool, scope, period, tz, now)).await
    }

    /// [`report::top`], reused as a report is.
    pub async fn top(&self, pool: &PgPool, period: ReportPeriod, now: Timestamp, limit: i64) -> Result<Top> {
        self.tops.get_or_read((period, limit), &self.generation, || report::top(pool, period, now, limit)).await
    }
}

/// Values by key, each read by one request at a time.
struct Recent<K, V> {
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

/// One key's value and the turn to read it.
struct Slot<V> {
    value: Mutex<Option<Entry<V>>>,
    reading: tokio::sync::Mutex<()>,
}

struct Entry<V> {
    read_at: Instant,
    /// The usage generation when its read began.
    generation: u64,
    value: V,
}

impl<V: Clone> Slot<V> {
    /// The value, if it was read in `generation` less than `within` ago.
    fn value(&self, generation: u64, within: Duration) -> Option<V> {
        let value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        value
            .as_ref()
            .filter(|entry| entry.generation == generation && entry.read_at.elapsed() < within)
            .map(|entry| entry.value.clone())
    }

    fn keep(&self, generation: u64, value: V) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Entry { read_at: Instant::now(), generation, value });
    }

    /// Whether its value could still be shown (for eviction).
    fn usable(&self) -> bool {
        let value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        value.as_ref().is_some_and(|entry| entry.read_at.elapsed() < STALE_FOR)
    }
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent { slots: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    /// The value of `key`: the one kept if it is fresh; else, if another request is reading it
    /// and the one kept is of this generation and not past [`STALE_FOR`], that one; else read
    /// by `read`, by one request at a time (those waiting take its answer when it is fresh).
    async fn get_or_read<F, Fut>(&self, key: K, generation: &AtomicU64, read: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let slot = self.slot(key);
        let current = generation.load(Ordering::Acquire);
        if let Some(value) = slot.value(current, FRESH_FOR) {
            return Ok(value);
        }
        let _turn = match slot.reading.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                if let Some(value) = slot.value(current, STALE_FOR) {
                    return Ok(value);
                }
                let turn = slot.reading.lock().await;
                if let Some(value) = slot.value(generation.load(Ordering::Acquire), FRESH_FOR) {
                    return Ok(value);
                }
                turn
            }
        };
        // Read before the read begins: a batch counted during it makes the value stale at once.
        let read_in = generation.load(Ordering::Acquire);
        let value = read().await?;
        slot.keep(read_in, value.clone());
        Ok(value)
    }

    fn slot(&self, key: K) -> Arc<Slot<V>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if !slots.contains_key(&key) && slots.len() >= MAX_ENTRIES {
            slots.retain(|_, slot| slot.usable());
            if slots.len() >= MAX_ENTRIES {
                slots.clear();
            }
        }
        slots
            .entry(key)
            .or_insert_with(|| Arc::new(Slot { value: Mutex::new(None), reading: tokio::sync::Mutex::new(()) }))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A read that counts itself and lets the other futures run once before it answers.
    async fn counted(reads: &AtomicUsize, value: u32) -> Result<u32> {
        reads.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(value)
    }

    #[tokio::test]
    async fn a_value_is_reused_until_usage_changes() {
        let (recent, generation, reads) = (Recent::<u32, u32>::default(), AtomicU64::new(0), AtomicUsize::new(0));
        assert_eq!(recent.get_or_read(1, &generation, || counted(&reads, 10)).await.unwrap(), 10);
        assert_eq!(recent.get_or_read(1, &generation, || counted(&reads, 11)).await.unwrap(), 10, "reused");
        assert_eq!(recent.get_or_read(2, &generation, || counted(&reads, 20)).await.unwrap(), 20, "by key");
        generation.fetch_add(1, Ordering::SeqCst);
        assert_eq!(recent.get_or_read(1, &generation, || counted(&reads, 12)).await.unwrap(), 12, "read again");
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn requests_at_once_share_one_read() {
        let (recent, generation, reads) = (Recent::<u32, u32>::default(), AtomicU64::new(0), AtomicUsize::new(0));
        let one = || recent.get_or_read(1, &generation, || counted(&reads, 7));
        let answers = futures_util::future::join_all((0..10).map(|_| one())).await;
        assert!(answers.iter().all(|answer| matches!(answer, Ok(7))));
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for ten requests");
    }

    #[tokio::test]
    async fn an_aged_value_is_shown_while_another_request_reads_it_again() {
        let (recent, generation) = (Recent::<u32, u32>::default(), AtomicU64::new(0));
        let slot = recent.slot(1);
        let aged = Instant::now().checked_sub(FRESH_FOR + Duration::from_secs(1)).expect("an instant 6 s ago");
        *slot.value.lock().unwrap() = Some(Entry { read_at: aged, generation: 0, value: 5 });
        let turn = slot.reading.lock().await;
        let never = || async { unreachable!("another request is reading it") };
        assert_eq!(recent.get_or_read(1, &generation, never).await.unwrap(), 5);
        drop(turn);
        let reads = AtomicUsize::new(0);
        assert_eq!(recent.get_or_read(1, &generation, || counted(&reads, 6)).await.unwrap(), 6, "aged: read again");
    }

    #[test]
    fn the_slots_stay_bounded() {
        let recent: Recent<usize, usize> = Recent::default();
        for key in 0..MAX_ENTRIES * 3 {
            recent.slot(key).keep(0, key);
        }
        let len = recent.slots.lock().expect("lock").len();
        assert!(len <= MAX_ENTRIES, "{len}");
    }
}
