//! Billing periods and proration by the second.
//!
//! A billing period is a calendar month in the plan's time zone, taken from
//! `protocol::period` (the one calendar the agents and usage rollups use), so a
//! call at 23:50 local on the 31st is billed in that month. A monthly fee is
//! prorated as 3scale's `cost_for_period` does, but by the second:
//! `fee × seconds billable in the period / seconds in the period`, where the
//! billable time is the subscription's time on the plan after any trial.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use rust_decimal::Decimal;
use tollgate_protocol::Period;
use tollgate_protocol::period::TimeZoneName;

/// A calendar month, `YYYY-MM`; the name of a billing period whatever the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    first_day: Date,
}

/// Not a `YYYY-MM` month.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a month (expected YYYY-MM, e.g. 2026-11)")]
pub struct BadMonth(pub String);

impl Month {
    pub fn new(year: i16, month: i8) -> Option<Month> {
        Date::new(year, month, 1).ok().filter(|_| (1..=9999).contains(&year)).map(|first_day| Month { first_day })
    }

    /// The month holding `date`.
    pub fn of(date: Date) -> Month {
        Month { first_day: date.first_of_month() }
    }

    /// The month in `tz` that holds the instant `at`.
    pub fn containing(at: Timestamp, tz: &TimeZoneName) -> Month {
        Month::of(tz.window(Period::Month, at).start.to_zoned(tz.time_zone().clone()).date())
    }

    pub fn first_day(&self) -> Date {
        self.first_day
    }

    pub fn year(&self) -> i16 {
        self.first_day.year()
    }

    pub fn month(&self) -> i8 {
        self.first_day.month()
    }

    pub fn previous(&self) -> Month {
        Month { first_day: self.first_day.checked_sub(jiff::Span::new().months(1)).unwrap_or(self.first_day) }
    }

    pub fn next(&self) -> Month {
        Month { first_day: self.first_day.checked_add(jiff::Span::new().months(1)).unwrap_or(self.first_day) }
    }

    /// This month as a half-open interval of instants in the zone `tz`.
    pub fn in_zone(&self, tz: &TimeZoneName) -> Interval {
        // Local midnight of the 1st (or the end of a DST gap), then the calendar's window.
        let probe = tz
            .time_zone()
            .to_ambiguous_timestamp(self.first_day.to_datetime(Time::midnight()))
            .compatible()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let window = tz.window(Period::Month, probe);
        Interval { start: window.start, end: window.end.unwrap_or(Timestamp::MAX) }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl FromStr for Month {
    type Err = BadMonth;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMonth(s.to_owned());
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Month::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

/// A half-open interval of instants `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    pub fn new(start: Timestamp, end: Timestamp) -> Interval {
        Interval { start, end: end.max(start) }
    }

    pub fn seconds(&self) -> i64 {
        self.end.as_second() - self.start.as_second()
    }

    pub fn is_empty(&self) -> bool {
        self.seconds() <= 0
    }

    pub fn intersect(&self, other: &Interval) -> Interval {
        Interval::new(self.start.max(other.start), self.end.min(other.end))
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }
}

/// The exact (unrounded) part of `monthly_fee` owed for `billable` within `period`:
/// `fee × billable seconds in the period / seconds of the period`.
pub fn prorate(monthly_fee: Decimal, period: &Interval, billable: &Interval) -> Decimal {
    let part = period.intersect(billable).seconds();
    let whole = period.seconds();
    if part <= 0 || whole <= 0 {
        return Decimal::ZERO;
    }
    if part == whole {
        return monthly_fee;
    }
    monthly_fee * Decimal::from(part) / Decimal::from(whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::money::Currency;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn months_parse_and_name_themselves() {
        let m: Month = "2026-11".parse().unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.previous().to_string(), "2026-10");
        assert_eq!("2026-12".parse::<Month>().unwrap().next().to_string(), "2027-01");
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "2026-00", "", "abcd-ef"] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_month_in_kolkata_starts_at_local_midnight() {
        let tz = TimeZoneName::new("Asia/Kolkata").unwrap();
        let oct = "2026-10".parse::<Month>().unwrap().in_zone(&tz);
        assert_eq!(oct.start, at("2026-09-30T18:30:00Z"));
        assert_eq!(oct.end, at("2026-10-31T18:30:00Z"));
        // 23:50 local on the 31st is 18:20 UTC: still October.
        assert!(oct.contains(at("2026-10-31T18:20:00Z")));
        assert_eq!(Month::containing(at("2026-10-31T18:20:00Z"), &tz).to_string(), "2026-10");
        assert_eq!(Month::containing(at("2026-10-31T18:30:00Z"), &tz).to_string(), "2026-11");
    }

    #[test]
    fn a_dst_month_has_its_real_length() {
        // New York leaves DST on 2026-11-01: November has 30 days and one hour.
        let tz = TimeZoneName::new("America/New_York").unwrap();
        let nov = "2026-11".parse::<Month>().unwrap().in_zone(&tz);
        assert_eq!(nov.seconds(), 30 * 86_400 + 3600);
    }

    #[test]
    fn proration_of_a_mid_month_start() {
        // 30-day month (2592000 s) in UTC, subscribed at 00:00 on the 16th: 15 days left.
        // 30.00 × 1296000 / 2592000 = 15.00.
        let tz = TimeZoneName::utc();
        let nov = "2026-11".parse::<Month>().unwrap().in_zone(&tz);
        let from_16th = Interval::new(at("2026-11-16T00:00:00Z"), Timestamp::MAX);
        assert_eq!(prorate(d("30"), &nov, &from_16th), d("15"));
        // One second of a 31-day month (2678400 s) at 100.00: 0.0000373..., rounds to 0.00.
        let dec = "2026-12".parse::<Month>().unwrap().in_zone(&tz);
        let last_second = Interval::new(at("2026-12-31T23:59:59Z"), Timestamp::MAX);
        let usd = Currency::new("USD").unwrap();
        assert_eq!(usd.round(prorate(d("100"), &dec, &last_second)), d("0.00"));
    }

    proptest! {
        /// Cutting a month anywhere (plan changes, cancellations) bills parts that sum to the
        /// whole fee exactly before rounding, and to within half a minor unit per part after.
        #[test]
        fn parts_of_a_month_sum_to_the_fee(
            cuts in prop::collection::vec(0_i64..2_678_400, 0..6),
            cents in 0_i64..100_000_000,
            zone in prop::sample::select(vec!["UTC", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"]),
            currency in prop::sample::select(vec!["USD", "JPY", "KWD"]),
        ) {
            let tz = TimeZoneName::new(zone).unwrap();
            let month = "2026-10".parse::<Month>().unwrap().in_zone(&tz);
            let fee = Decimal::new(cents, 2);
            let mut points: Vec<Timestamp> = cuts
                .iter()
                .map(|c| Timestamp::from_second(month.start.as_second() + c).unwrap().min(month.end))
                .collect();
            points.push(month.start);
            points.push(month.end);
            points.sort();
            let parts: Vec<Interval> = points.windows(2).map(|w| Interval::new(w[0], w[1])).collect();
            let exact: Decimal = parts.iter().map(|p| prorate(fee, &month, p)).sum();
            prop_assert!((exact - fee).abs() < d("0.000000001"));
            let currency = Currency::new(currency).unwrap();
            let rounded: Decimal = parts.iter().map(|p| currency.round(prorate(fee, &month, p))).sum();
            let half_unit = Decimal::new(5, currency.decimals() + 1);
            prop_assert!((rounded - fee).abs() <= half_unit * Decimal::from(parts.len()));
        }
    }
}
