//! Enforcement: who is calling (credentials), what the call counts as (mapping rules,
//! metric lineage) and whether the plan's limits leave room (limits, counters).
//!
//! The limiter is a pure component: [`limits::PlanLimits`] turns "this app used these
//! metrics at this instant" into [`counters::Check`]s, and [`counters::LocalCounters`]
//! admits or refuses them atomically. Both are public so their properties can be tested
//! against a reference model.
//!
//! The building blocks the compiled config holds (key locations, mapping rules, plan limits)
//! depend on nothing in `config`; the steps that read a whole config (credentials.rs,
//! seed.rs) depend on it, never the other way round.

pub mod counters;
pub(crate) mod credentials;
pub(crate) mod key_location;
pub mod limits;
pub(crate) mod mapping;
pub(crate) mod seed;
pub mod touched;

use std::sync::Arc;

use jiff::Timestamp;

use crate::redis::SharedCounters;
use counters::{Check, LocalCounters, Outcome};
pub use touched::{InlineVec, Touched};

/// Local counters, or shared Redis counters with the local ones as fallback.
pub(crate) struct Limiter {
    pub local: LocalCounters,
    pub shared: Option<Arc<SharedCounters>>,
}

impl Limiter {
    pub async fn check_and_add(&self, checks: &[Check], now: Timestamp) -> Outcome {
        if checks.is_empty() {
            return Outcome::Admitted { tightest: None };
        }
        if let Some(shared) = &self.shared
            && shared.is_up()
            // Boxed: the Redis exchange's future would otherwise be part of every request's
            // future, Redis or not.
            && let Some(outcome) = Box::pin(shared.check_and_add(checks, now)).await
        {
            if outcome.is_admitted() {
                self.local.add(checks);
            }
            return outcome;
        }
        let outcome = self.local.check_and_add(checks);
        // Counted here alone: Redis must learn of it before it is used again.
        if outcome.is_admitted()
            && let Some(shared) = &self.shared
        {
            shared.owe(checks, now);
        }
        outcome
    }

    /// Where the counters of `checks` stand now, adding nothing: from Redis while it is in
    /// use and answers, else from the local counters.
    pub async fn standing(&self, checks: &[Check]) -> Vec<u64> {
        if let Some(shared) = &self.shared
            && shared.is_up()
            && let Some(used) = shared.read(checks).await
        {
            return used;
        }
        checks.iter().map(|check| self.local.used(&check.key)).collect()
    }
}
