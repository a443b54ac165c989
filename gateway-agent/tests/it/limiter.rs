//! The limiter as a pure component, against a reference model: it must admit exactly what
//! the model admits (never more, never less), at window edges and with a clock that steps
//! back, and must not over-admit under concurrency.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use tollgate_agent::enforce::Touched;
use tollgate_agent::enforce::counters::{Check, CounterKey, LocalCounters, Outcome, RETENTION_SECS};
use tollgate_agent::enforce::limits::{Checks, LimitRule, PlanLimits};
use tollgate_protocol::Period;
use uuid::Uuid;

const METRICS: u32 = 3;
const ZONES: &[&str] = &["UTC", "Europe/Paris", "Asia/Kolkata", "Australia/Lord_Howe"];

/// The reference: a count per (metric, period, window), windows computed afresh each time.
#[derive(Default)]
struct Model {
    used: HashMap<(u32, Period, i64), u64>,
}

impl Model {
    /// Admits if every limit on a touched metric has room, then counts on all of them.
    fn request(&mut self, rules: &[LimitRule], touched: &[(u32, u64)], now: Timestamp, tz: &TimeZone) -> bool {
        let mut keys = Vec::new();
        for rule in rules {
            let Some(&(_, amount)) = touched.iter().find(|(m, _)| *m == rule.metric) else {
                continue;
            };
            let window = rule.period.window(now, tz).id().0;
            let key = (rule.metric, rule.period, window);
            if self.used.get(&key).copied().unwrap_or(0) + amount > rule.max {
                return false;
            }
            keys.push((key, amount));
        }
        for (key, amount) in keys {
            *self.used.entry(key).or_default() += amount;
        }
        true
    }
}

fn rules_strategy() -> impl Strategy<Value = Vec<LimitRule>> {
    let periods =
        prop::sample::select(vec![Period::Minute, Period::Hour, Period::Day, Period::Month, Period::Eternity]);
    prop::collection::vec((0..METRICS, periods, 0u64..12), 1..6).prop_map(|rules| {
        let mut seen = std::collections::HashSet::new();
        rules
            .into_iter()
            .filter(|(metric, period, _)| seen.insert((*metric, *period)))
            .map(|(metric, period, max)| LimitRule {
                metric,
                metric_id: Uuid::from_u128(u128::from(metric) + 1),
                period,
                max,
            })
            .collect()
    })
}

/// A step of the clock in seconds, the (metric, amount)s a request touches, and whether to
/// sweep afterwards.
type Step = (i64, Vec<(u32, u64)>, bool);

/// Clock steps are often small, sometimes large, sometimes backwards.
fn steps_strategy() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => 0i64..20,
        2 => 20i64..4000,
        1 => -(RETENTION_SECS - 10)..0,
    ];
    let touched = prop::collection::vec((0..METRICS, 1u64..4), 1..3);
    prop::collection::vec((step, touched, prop::bool::weighted(0.1)), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn admits_exactly_what_the_model_admits(
        rules in rules_strategy(),
        steps in steps_strategy(),
        zone in prop::sample::select(ZONES),
        // Start near window edges: on a minute boundary, just before midnight, or anywhere.
        start in prop_oneof![
            Just(1_743_289_200i64 - 1),
            Just(1_711_846_800i64 - 5),
            1_700_000_000i64..1_800_000_000,
        ],
    ) {
        let tz = TimeZone::get(zone).expect("zone");
        let limits = PlanLimits::new(tz.clone(), rules.clone());
        let counters = LocalCounters::new();
        let mut model = Model::default();
        let app = Uuid::from_u128(42);
        let mut now = Timestamp::from_second(start).expect("time");
        let mut latest = now;
        for (step, raw_touched, sweep) in steps {
            now += SignedDuration::from_secs(step);
            // Clocks step back by less than the retention, relative to the latest reading.
            let floor = latest - SignedDuration::from_secs(RETENTION_SECS - 10);
            if now < floor {
                now = floor;
            }
            latest = latest.max(now);
            let mut touched = Touched::empty();
            for (metric, amount) in raw_touched {
                touched.add(metric, amount);
            }
            let mut checks = Checks::empty();
            limits.checks(app, &touched, now, &mut checks);
            let outcome = counters.check_and_add(checks.as_slice());
            let expected = model.request(&rules, touched.as_slice(), now, &tz);
            match outcome {
                Outcome::Admitted { tightest } => {
                    prop_assert!(expected, "over-admitted at {now}");
                    // The most constrained limit, by the model: least remaining, then the
                    // window that ends last (eternity last of all), then the first.
                    let checks = checks.as_slice();
                    let standing: Vec<(usize, u64)> = checks
                        .iter()
                        .enumerate()
                        .map(|(i, check)| {
                            let window = check.key.window.0;
                            let rule = &rules[check.limit as usize];
                            (i, model.used[&(rule.metric, rule.period, window)])
                        })
                        .collect();
                    let expected_tightest = standing.iter().copied().min_by_key(|&(i, used)| {
                        let check = checks[i];
                        let end = check.window_end.map_or(i64::MIN, |end| -end.as_second());
                        (check.max.saturating_sub(used), end, i)
                    });
                    prop_assert_eq!(tightest.map(|t| (t.index, t.used)), expected_tightest);
                }
                Outcome::Rejected { index, used } => {
                    prop_assert!(!expected, "under-admitted at {now}");
                    let check = checks.as_slice()[index];
                    prop_assert!(used + check.amount > check.max, "refused by a limit with room");
                }
            }
            if sweep {
                counters.sweep(latest);
            }
        }
        // Counters of the current windows equal the model's.
        for rule in &rules {
            let window = rule.period.window(now, &tz);
            let key = CounterKey { app, metric: rule.metric_id, period: rule.period, window: window.id() };
            let expected = model.used.get(&(rule.metric, rule.period, window.id().0)).copied().unwrap_or(0);
            prop_assert_eq!(counters.used(&key), expected);
        }
    }

    #[test]
    fn cached_windows_match_fresh_ones(
        zone in prop::sample::select(ZONES),
        start in 1_700_000_000i64..1_800_000_000,
        steps in prop::collection::vec(-7200i64..7200, 1..50),
    ) {
        let tz = TimeZone::get(zone).expect("zone");
        let limits = PlanLimits::new(tz.clone(), vec![]);
        let mut now = Timestamp::from_second(start).expect("time");
        for step in steps {
            now += SignedDuration::from_secs(step);
            for period in Period::ALL {
                prop_assert_eq!(limits.window(period, now), period.window(now, &tz));
            }
        }
    }
}

#[test]
fn concurrent_checks_never_over_admit_nor_under_admit() {
    let counters = Arc::new(LocalCounters::new());
    let app = Uuid::from_u128(7);
    let key = |metric: u128| CounterKey {
        app,
        metric: Uuid::from_u128(metric),
        period: Period::Eternity,
        window: tollgate_protocol::WindowId(0),
    };
    // Every request needs room on both counters: 1 on a (max 500), 2 on b (max 700).
    let checks = [
        Check { key: key(1), amount: 1, max: 500, window_end: None, limit: 0 },
        Check { key: key(2), amount: 2, max: 700, window_end: None, limit: 1 },
    ];
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let counters = counters.clone();
            std::thread::spawn(move || (0..200).filter(|_| counters.check_and_add(&checks).is_admitted()).count())
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    // b allows 350 requests, a 500: exactly the smaller, counted on both.
    assert_eq!(admitted, 350);
    assert_eq!(counters.used(&key(1)), 350);
    assert_eq!(counters.used(&key(2)), 700);
}
