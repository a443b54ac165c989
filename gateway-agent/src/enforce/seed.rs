//! Seeding local counters with the usage a snapshot (or the saved config) carries, so a
//! restarted agent does not hand out a fresh quota for hour-and-longer windows.

use tollgate_protocol::CurrentUsage;

use super::Limiter;
use super::counters::CounterKey;
use crate::config::Config;

/// Raises local counters to the usage the server has seen (never lowers them). Blocking
/// (a snapshot may carry usage for every application).
pub(crate) fn seed(config: &Config, usage: &[CurrentUsage], limiter: &Limiter) {
    for entry in usage {
        let Some(plan) = config
            .apps
            .by_id
            .get(&entry.application_id)
            .and_then(|&slot| config.apps.get(slot))
            .and_then(|app| config.catalog.plan(app.plan))
        else {
            continue;
        };
        let Ok(start) = jiff::Timestamp::from_second(entry.window_start.0) else {
            continue;
        };
        let window = entry.period.window(start, plan.limits.time_zone());
        // A window_start that is not the start of a window in the plan's calendar is stale
        // (the plan's time zone changed): ignore it rather than count it somewhere else.
        if window.id() != entry.window_start {
            continue;
        }
        limiter.local.seed(
            CounterKey {
                app: entry.application_id,
                metric: entry.metric,
                period: entry.period,
                window: entry.window_start,
            },
            entry.value,
            window.end,
        );
    }
}
