//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, as in
//! draft-ietf-httpapi-ratelimit-headers-06 (the last draft with three separate fields), for
//! the most constrained limit a request touched.
//!
//! They go on every answer to an admitted request (the upstream's, or the agent's own 400,
//! 408, 502 or 504 after admission) and on the 429 of a refused one. Cheap by construction:
//! the `Limit` value is made once per plan limit, and numbers up to [`TABLE_MAX`] come from
//! one static table, so the common case costs no allocation or formatting.

use std::sync::LazyLock;

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use jiff::Timestamp;

use crate::enforce::counters::Check;
use crate::enforce::limits::PlanLimits;

pub(crate) static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub(crate) static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub(crate) static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The state of one limit, as the headers tell it.
#[derive(Clone, Copy)]
pub(crate) struct RateLimit<'a> {
    /// The limit's `max`, precomputed.
    limit: &'a HeaderValue,
    remaining: u64,
    /// When the limit's window ends; `None` for an eternity limit, which never resets.
    reset_at: Option<Timestamp>,
}

impl<'a> RateLimit<'a> {
    /// `check` (of `plan`) with its counter standing at `used`.
    pub fn of(plan: &'a PlanLimits, check: &Check, used: u64) -> Option<RateLimit<'a>> {
        Some(RateLimit {
            limit: plan.limit_header(check.limit)?,
            remaining: check.max.saturating_sub(used),
            reset_at: check.window_end,
        })
    }

    /// Writes the three fields (no `RateLimit-Reset` for a limit that never resets), replacing
    /// any the upstream sent; with `retry_after`, also `Retry-After` (for a 429).
    pub fn write(&self, headers: &mut HeaderMap, now: Timestamp, retry_after: bool) {
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit.clone());
        headers.insert(RATELIMIT_REMAINING.clone(), number(self.remaining));
        match self.reset_at {
            Some(end) => {
                let reset = number(seconds_until(end, now));
                if retry_after {
                    headers.insert(RETRY_AFTER, reset.clone());
                }
                headers.insert(RATELIMIT_RESET.clone(), reset);
            }
            None => {
                headers.remove(&RATELIMIT_RESET);
            }
        }
    }
}

/// Whole seconds from `now` until `end`, rounded up; 0 if it has passed.
pub(crate) fn seconds_until(end: Timestamp, now: Timestamp) -> u64 {
    let left = end.duration_since(now);
    if left.is_negative() {
        return 0;
    }
    left.as_secs().unsigned_abs() + u64::from(left.subsec_nanos() > 0)
}

/// Numbers up to this come from [`DIGITS`] (an hour in seconds, and most limits' remaining).
const TABLE_MAX: u64 = 9999;

/// `0123456789101112…9999`: every number up to [`TABLE_MAX`], written out once.
static DIGITS: LazyLock<&'static str> = LazyLock::new(|| {
    let text: String = (0..=TABLE_MAX).map(|n| n.to_string()).collect();
    Box::leak(text.into_boxed_str())
});

/// `n` as a header value; a slice of the static table (no allocation) up to [`TABLE_MAX`].
pub(crate) fn number(n: u64) -> HeaderValue {
    let (start, len) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1000..=TABLE_MAX => (2890 + (n - 1000) * 4, 4),
        _ => return HeaderValue::from(n),
    };
    let digits: &'static str = &DIGITS;
    let start = start as usize;
    digits.get(start..start + len).map_or_else(|| HeaderValue::from(n), HeaderValue::from_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_the_table_equal_formatted_ones() {
        for n in (0..=12_000).chain([u64::MAX, 1 << 40]) {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn seconds_round_up() {
        let at = |s: &str| s.parse::<Timestamp>().expect("time");
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:00:10Z")), 50);
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:00:10.5Z")), 50);
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:00:59.999Z")), 1);
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:02:00Z")), 0);
    }
}
