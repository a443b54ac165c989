//! A plan's limits: which counters a request must fit in, in which calendar windows.
//!
//! Windows come from the protocol's calendar arithmetic ([`Period::window`]) in the plan's
//! time zone. Computing one in a zone with DST consults the zone's transitions, so each plan
//! caches its current window per period until the clock leaves it; the cache is checked
//! with `Window::contains`, so a clock that steps back simply recomputes.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use hyper::header::HeaderValue;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tollgate_protocol::{Period, Window};
use uuid::Uuid;

use super::counters::{Check, CounterKey};
use super::touched::{InlineVec, Touched};
use crate::header_number;

/// At most `max` of `metric` per `period` window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitRule {
    /// Index of the metric within its API (as in [`Touched`]).
    pub metric: u32,
    /// The metric's id, for counter keys.
    pub metric_id: Uuid,
    pub period: Period,
    /// `0` disables the metric.
    pub max: u64,
}

pub struct PlanLimits {
    tz: TimeZone,
    rules: Box<[LimitRule]>,
    /// Each rule's `max` as a `RateLimit-Limit` header value, made once (and static, so
    /// sending it costs no reference count).
    limit_headers: Box<[HeaderValue]>,
    windows: [ArcSwapOption<Window>; Period::ALL.len()],
}

impl PlanLimits {
    pub fn new(tz: TimeZone, rules: Vec<LimitRule>) -> PlanLimits {
        let limit_headers = rules.iter().map(|rule| header_number::interned(rule.max)).collect();
        PlanLimits { tz, rules: rules.into_boxed_slice(), limit_headers, windows: Default::default() }
    }

    /// The `RateLimit-Limit` value of the limit [`Check::limit`] names.
    pub fn limit_header(&self, limit: u32) -> Option<&HeaderValue> {
        self.limit_headers.get(limit as usize)
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    pub fn rules(&self) -> &[LimitRule] {
        &self.rules
    }

    /// The window of `period` containing `now`.
    pub fn window(&self, period: Period, now: Timestamp) -> Window {
        let cache = &self.windows[period as usize];
        if let Some(window) = &*cache.load()
            && window.contains(now)
        {
            return **window;
        }
        let window = period.window(now, &self.tz);
        cache.store(Some(Arc::new(window)));
        window
    }

    /// Appends one check per limit on a metric the request touched.
    pub fn checks(&self, app: Uuid, touched: &Touched, now: Timestamp, out: &mut Checks) {
        for (limit, rule) in (0u32..).zip(self.rules.iter()) {
            let Some(amount) = touched.amount(rule.metric) else {
                continue;
            };
            let window = self.window(rule.period, now);
            out.push(Check {
                key: CounterKey { app, metric: rule.metric_id, period: rule.period, window: window.id() },
                amount,
                max: rule.max,
                window_end: window.end,
                limit,
            });
        }
    }
}

impl PlanLimits {
    /// One check per limit of the plan, adding nothing: where every counter of `app` stands
    /// now (for the limits report).
    pub fn standing(&self, app: Uuid, now: Timestamp, out: &mut Checks) {
        for (limit, rule) in (0u32..).zip(self.rules.iter()) {
            let window = self.window(rule.period, now);
            out.push(Check {
                key: CounterKey { app, metric: rule.metric_id, period: rule.period, window: window.id() },
                amount: 0,
                max: rule.max,
                window_end: window.end,
                limit,
            });
        }
    }
}

/// The checks of one request, inline.
pub type Checks = InlineVec<Check, 8>;

impl Checks {
    pub fn empty() -> Checks {
        InlineVec::new(Check::PLACEHOLDER)
    }
}
