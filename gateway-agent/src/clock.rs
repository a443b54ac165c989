//! Where "now" comes from: the system clock, or a manual clock that tests move by hand so a
//! limit test cannot straddle a window boundary.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// A cheap, cloneable source of the current time.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `at` until moved through the returned handle.
    pub fn manual(at: Timestamp) -> (Clock, ManualClock) {
        let nanos = Arc::new(AtomicI64::new(to_nanos(at)));
        (Clock { manual: Some(nanos.clone()) }, ManualClock { nanos })
    }

    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => Timestamp::now(),
            Some(nanos) => from_nanos(nanos.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.manual.is_some() { "Clock(manual)" } else { "Clock(system)" })
    }
}

/// Moves a [`Clock::manual`] clock, forwards or backwards.
#[derive(Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn set(&self, at: Timestamp) {
        self.nanos.store(to_nanos(at), Ordering::Relaxed);
    }

    pub fn advance(&self, by: SignedDuration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(by, Ordering::Relaxed);
    }
}

// i64 nanoseconds cover 1677..2262, plenty for a clock.
fn to_nanos(at: Timestamp) -> i64 {
    i64::try_from(at.as_nanosecond()).unwrap_or(i64::MAX)
}

fn from_nanos(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH)
}
