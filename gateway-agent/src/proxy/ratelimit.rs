//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, as in
//! draft-ietf-httpapi-ratelimit-headers-06 (the last draft with three separate fields), for
//! the most constrained limit a request touched.
//!
//! They go on every answer to an admitted request (the upstream's, or the agent's own 400,
//! 408, 502 or 504 after admission) and on the 429 of a refused one. Cheap by construction:
//! the `Limit` value is made once per plan limit and numbers up to 99,999 come from one static
//! table ([`crate::header_number`]), so the common case costs no allocation, formatting or
//! atomic reference count; larger ones are written into a per-thread buffer (no allocation).

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use jiff::Timestamp;

use crate::enforce::counters::Check;
use crate::enforce::limits::PlanLimits;
use crate::header_number::number;

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
    /// Whether the request could pass once the window resets: not when it asks for more
    /// than the limit allows at all (a limit of 0, a rule's delta above the limit).
    passes_after_reset: bool,
}

impl<'a> RateLimit<'a> {
    /// `check` (of `plan`) with its counter standing at `used`.
    pub fn of(plan: &'a PlanLimits, check: &Check, used: u64) -> Option<RateLimit<'a>> {
        Some(RateLimit {
            limit: plan.limit_header(check.limit)?,
            remaining: check.max.saturating_sub(used),
            reset_at: check.window_end,
            passes_after_reset: check.amount <= check.max,
        })
    }

    /// Writes the three fields (no `RateLimit-Reset` for a limit that never resets), replacing
    /// any the upstream sent; with `retry_after`, also `Retry-After` (for a 429), unless no
    /// wait would let the request pass.
    pub fn write(&self, headers: &mut HeaderMap, now: Timestamp, retry_after: bool) {
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit.clone());
        headers.insert(RATELIMIT_REMAINING.clone(), number(self.remaining));
        match self.reset_at {
            Some(end) => {
                let reset = number(seconds_until(end, now));
                if retry_after && self.passes_after_reset {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        let at = |s: &str| s.parse::<Timestamp>().expect("time");
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:00:10Z")), 50);
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:00:10.5Z")), 50);
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:00:59.999Z")), 1);
        assert_eq!(seconds_until(at("2030-01-01T00:01:00Z"), at("2030-01-01T00:02:00Z")), 0);
    }
}
