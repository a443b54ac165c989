//! Usage-limit periods and their calendar arithmetic.
//!
//! Server, agent and billing must agree on where a window begins, so this is the one place
//! that decides. Windows are half-open `[start, end)` and tile the timeline without gaps or
//! overlaps:
//!
//! * `day`, `week` (ISO, Monday first), `month` and `year` follow the calendar of the plan's
//!   time zone. A window starts at the first instant of its first local day (local midnight,
//!   or the end of the DST gap when midnight is skipped), so a Paris day is 23 or 25 hours
//!   long on DST days.
//! * `minute` and `hour` are real minutes and hours aligned to the local clock (`hh:00`,
//!   which matters in zones such as `Asia/Kolkata`, +05:30). A UTC-offset change also ends a
//!   window, so the repeated hour on a fall-back night is two one-hour windows, not one
//!   two-hour window, and a 30-minute DST shift (Lord Howe) yields a 30-minute window.
//! * `eternity` starts at the Unix epoch and never ends.
//!
//! Results saturate at the edges of jiff's range (years ±9999): a start that cannot be
//! represented becomes [`Timestamp::MIN`] and an end becomes `None`.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Serialize};

/// The period of a usage limit. Ordered from shortest to longest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Eternity,
}

/// A period name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown period `{0}` (expected minute, hour, day, week, month, year or eternity)")]
pub struct UnknownPeriod(pub String);

impl Period {
    pub const ALL: [Period; 7] =
        [Period::Minute, Period::Hour, Period::Day, Period::Week, Period::Month, Period::Year, Period::Eternity];

    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
            Period::Eternity => "eternity",
        }
    }

    /// Whether the server seeds current usage for this period in snapshots. Minute counters
    /// are short-lived enough to restart from zero; longer ones must survive agent restarts.
    pub fn is_seeded(self) -> bool {
        self >= Period::Hour
    }

    /// The window of this period that contains `at`, in time zone `tz`.
    ///
    /// Cheap for UTC and other fixed-offset zones; otherwise it consults the zone's
    /// transitions, so hot paths should cache the window until [`Window::end`].
    pub fn window(self, at: Timestamp, tz: &TimeZone) -> Window {
        let (start, end) = match self {
            Period::Minute => clock_window(at, tz, 60),
            Period::Hour => clock_window(at, tz, 3600),
            Period::Day | Period::Week | Period::Month | Period::Year => calendar_window(self, at, tz),
            Period::Eternity => (Timestamp::UNIX_EPOCH, None),
        };
        Window { period: self, start, end }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = UnknownPeriod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Period::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownPeriod(s.to_owned()))
    }
}

/// Counter key of a window: its start in Unix seconds. Together with the period (part of
/// every counter key anyway) it identifies the window; `eternity` is always 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WindowId(pub i64);

/// A half-open interval `[start, end)` of one period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub period: Period,
    pub start: Timestamp,
    /// `None` for eternity (and past the end of representable time).
    pub end: Option<Timestamp>,
}

impl Window {
    /// The window of `period` containing `at`; same as [`Period::window`].
    pub fn containing(period: Period, at: Timestamp, tz: &TimeZone) -> Window {
        period.window(at, tz)
    }

    pub fn id(&self) -> WindowId {
        WindowId(self.start.as_second())
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && self.end.is_none_or(|end| at < end)
    }

    /// The window right after this one (`None` for eternity).
    pub fn next(&self, tz: &TimeZone) -> Option<Window> {
        self.end.map(|end| self.period.window(end, tz))
    }

    /// Whole seconds until the window ends, rounded up, for a `Retry-After` header:
    /// `None` if it never ends, 0 if it already has.
    pub fn seconds_until_end(&self, now: Timestamp) -> Option<u64> {
        let left = self.end?.duration_since(now);
        if left <= SignedDuration::ZERO {
            return Some(0);
        }
        let whole = left.as_secs().unsigned_abs();
        Some(if left.subsec_nanos() > 0 { whole + 1 } else { whole })
    }
}

/// Minute and hour windows: aligned to the local clock with the offset in force, and also
/// cut at every UTC-offset change so windows never overlap.
fn clock_window(at: Timestamp, tz: &TimeZone, unit: i64) -> (Timestamp, Option<Timestamp>) {
    let secs = floor_second(at);
    let offset = i64::from(tz.to_offset(at).seconds());
    let aligned = secs - (secs + offset).rem_euclid(unit);
    let aligned_end = aligned + unit;
    if tz.to_fixed_offset().is_ok() {
        return (ts(aligned).unwrap_or(Timestamp::MIN), ts(aligned_end));
    }
    // Offset changes in (aligned, at]: the latest one starts this window.
    let start = ts(secs + 1)
        .and_then(|probe| {
            tz.preceding(probe)
                .map(|t| t.timestamp())
                .take_while(|&t| t.as_second() > aligned)
                .find(|&t| changes_offset(tz, t))
        })
        .or_else(|| ts(aligned))
        .unwrap_or(Timestamp::MIN);
    // Offset changes in (at, aligned_end): the first one ends it.
    let end = tz
        .following(at)
        .map(|t| t.timestamp())
        .take_while(|&t| t.as_second() < aligned_end)
        .find(|&t| changes_offset(tz, t))
        .or_else(|| ts(aligned_end));
    (start, end)
}

/// Some zone transitions only rename the zone; those must not split a window.
fn changes_offset(tz: &TimeZone, transition: Timestamp) -> bool {
    ts(transition.as_second() - 1).is_none_or(|before| tz.to_offset(before) != tz.to_offset(transition))
}

/// Day, week, month, year: from the first instant of the first local day of the unit to the
/// first instant of the next unit's first day.
fn calendar_window(period: Period, at: Timestamp, tz: &TimeZone) -> (Timestamp, Option<Timestamp>) {
    let local = tz.to_datetime(at).date();
    let mut first_day = match period {
        Period::Week => local.checked_sub(Span::new().days(local.weekday().to_monday_zero_offset())).ok(),
        Period::Month => Some(local.first_of_month()),
        Period::Year => Some(local.first_of_year()),
        _ => Some(local),
    };
    // Normally one step; the loop covers a clock set back across midnight, where an instant's
    // local date can lie before the day whose midnight has already passed.
    let mut start = first_day.and_then(|d| first_instant(d, tz));
    if start.is_some_and(|s| s > at) {
        first_day = first_day.and_then(|d| step(period, d, -1));
        start = first_day.and_then(|d| first_instant(d, tz));
    }
    let mut next_day = first_day.and_then(|d| step(period, d, 1));
    let mut end = next_day.and_then(|d| first_instant(d, tz));
    for _ in 0..2 {
        match end {
            Some(e) if e <= at => {
                start = end;
                next_day = next_day.and_then(|d| step(period, d, 1));
                end = next_day.and_then(|d| first_instant(d, tz));
            }
            _ => break,
        }
    }
    (start.unwrap_or(Timestamp::MIN), end)
}

fn step(period: Period, day: Date, n: i8) -> Option<Date> {
    let span = match period {
        Period::Week => Span::new().weeks(n),
        Period::Month => Span::new().months(n),
        Period::Year => Span::new().years(n),
        _ => Span::new().days(n),
    };
    day.checked_add(span).ok()
}

/// Local midnight of `day`; in a DST gap the first instant after it, in a fold the earlier.
fn first_instant(day: Date, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(day.to_datetime(Time::midnight())).compatible().ok()
}

fn floor_second(at: Timestamp) -> i64 {
    let secs = at.as_second();
    if at.subsec_nanosecond() < 0 { secs - 1 } else { secs }
}

fn ts(second: i64) -> Option<Timestamp> {
    Timestamp::from_second(second).ok()
}

/// An IANA time zone name known to the bundled tzdb, e.g. `Europe/Paris`.
/// Serialised as the name; holds the resolved zone so window arithmetic needs no lookup.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName {
    name: String,
    tz: TimeZone,
}

/// A name that is not in the tzdb.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone `{0}` (expected an IANA name such as Europe/Paris)")]
pub struct UnknownTimeZone(pub String);

impl TimeZoneName {
    /// Resolves `name` (case-insensitively) and keeps the tzdb's spelling.
    pub fn new(name: &str) -> Result<TimeZoneName, UnknownTimeZone> {
        let tz = TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_owned()))?;
        let name = tz.iana_name().unwrap_or(name).to_owned();
        Ok(TimeZoneName { name, tz })
    }

    pub fn utc() -> TimeZoneName {
        TimeZoneName { name: "UTC".to_owned(), tz: TimeZone::UTC }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Shorthand for [`Period::window`] in this zone.
    pub fn window(&self, period: Period, at: Timestamp) -> Window {
        period.window(at, &self.tz)
    }
}

impl PartialEq for TimeZoneName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TimeZoneName {}

impl std::hash::Hash for TimeZoneName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZoneName({:?})", self.name)
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for TimeZoneName {
    type Err = UnknownTimeZone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeZoneName::new(s)
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = UnknownTimeZone;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        TimeZoneName::new(&s)
    }
}

impl From<TimeZoneName> for String {
    fn from(name: TimeZoneName) -> String {
        name.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("zone in bundled tzdb")
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    fn window(period: Period, at: &str, zone: &str) -> (String, Option<String>) {
        let w = period.window(t(at), &tz(zone));
        assert!(w.contains(t(at)));
        (w.start.to_string(), w.end.map(|e| e.to_string()))
    }

    fn span(start: &str, end: &str) -> (String, Option<String>) {
        (start.to_owned(), Some(end.to_owned()))
    }

    #[test]
    fn period_names_round_trip() {
        for p in Period::ALL {
            assert_eq!(p.as_str().parse::<Period>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).expect("json"), format!("\"{p}\""));
        }
        assert!("fortnight".parse::<Period>().is_err());
        assert!(!Period::Minute.is_seeded() && Period::Hour.is_seeded());
    }

    #[test]
    fn utc_fast_path() {
        assert_eq!(
            window(Period::Minute, "2024-05-06T07:08:09.5Z", "UTC"),
            span("2024-05-06T07:08:00Z", "2024-05-06T07:09:00Z")
        );
        let w = Period::Hour.window(t("2024-05-06T07:08:09Z"), &TimeZone::UTC);
        assert_eq!(w.start, t("2024-05-06T07:00:00Z"));
        assert_eq!(w.id(), WindowId(t("2024-05-06T07:00:00Z").as_second()));
        // Before the epoch, sub-second parts must floor, not truncate.
        let w = Period::Minute.window(t("1969-12-31T23:59:59.5Z"), &TimeZone::UTC);
        assert_eq!(w.start, t("1969-12-31T23:59:00Z"));
    }

    #[test]
    fn paris_dst_days_are_23_and_25_hours() {
        let spring = Period::Day.window(t("2025-03-30T12:00:00Z"), &tz("Europe/Paris"));
        assert_eq!(spring.start, t("2025-03-29T23:00:00Z"));
        assert_eq!(spring.end, Some(t("2025-03-30T22:00:00Z")));
        let autumn = Period::Day.window(t("2025-10-26T12:00:00Z"), &tz("Europe/Paris"));
        assert_eq!(autumn.start, t("2025-10-25T22:00:00Z"));
        assert_eq!(autumn.end, Some(t("2025-10-26T23:00:00Z")));
    }

    #[test]
    fn hours_around_dst_transitions() {
        // Spring forward in Paris: 02:00 local is skipped; 01:00-03:00 local is one hour.
        assert_eq!(
            window(Period::Hour, "2025-03-30T00:30:00Z", "Europe/Paris"),
            span("2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z")
        );
        assert_eq!(
            window(Period::Hour, "2025-03-30T01:30:00Z", "Europe/Paris"),
            span("2025-03-30T01:00:00Z", "2025-03-30T02:00:00Z")
        );
        // Fall back: 02:00-03:00 local happens twice, as two separate hours.
        assert_eq!(
            window(Period::Hour, "2025-10-26T00:30:00Z", "Europe/Paris"),
            span("2025-10-26T00:00:00Z", "2025-10-26T01:00:00Z")
        );
        assert_eq!(
            window(Period::Hour, "2025-10-26T01:30:00Z", "Europe/Paris"),
            span("2025-10-26T01:00:00Z", "2025-10-26T02:00:00Z")
        );
        // Half-hour zone: hours start at hh:00 local, i.e. hh:30 UTC.
        assert_eq!(
            window(Period::Hour, "2025-01-01T10:45:00Z", "Asia/Kolkata"),
            span("2025-01-01T10:30:00Z", "2025-01-01T11:30:00Z")
        );
        // Lord Howe (+10:30) springs forward 30 minutes at 02:00 local (15:30 UTC), landing
        // on 02:30: the hour 02:00-03:00 local is only its last half.
        assert_eq!(
            window(Period::Hour, "2024-10-05T14:45:00Z", "Australia/Lord_Howe"),
            span("2024-10-05T14:30:00Z", "2024-10-05T15:30:00Z")
        );
        assert_eq!(
            window(Period::Hour, "2024-10-05T15:40:00Z", "Australia/Lord_Howe"),
            span("2024-10-05T15:30:00Z", "2024-10-05T16:00:00Z")
        );
    }

    #[test]
    fn midnight_skipped_by_dst() {
        // Santiago springs forward at 00:00 local: the day starts at 01:00 local.
        assert_eq!(
            window(Period::Day, "2024-09-08T12:00:00Z", "America/Santiago"),
            span("2024-09-08T04:00:00Z", "2024-09-09T03:00:00Z")
        );
    }

    #[test]
    fn month_ends_and_leap_years() {
        assert_eq!(
            window(Period::Month, "2024-02-29T23:59:59Z", "UTC"),
            span("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z")
        );
        assert_eq!(
            window(Period::Month, "2023-02-15T00:00:00Z", "UTC"),
            span("2023-02-01T00:00:00Z", "2023-03-01T00:00:00Z")
        );
        // 31 Jan 23:30 in UTC is already February in Paris.
        assert_eq!(
            window(Period::Month, "2025-01-31T23:30:00Z", "Europe/Paris"),
            span("2025-01-31T23:00:00Z", "2025-02-28T23:00:00Z")
        );
        // March in Paris loses an hour to DST.
        assert_eq!(
            window(Period::Month, "2025-03-15T00:00:00Z", "Europe/Paris"),
            span("2025-02-28T23:00:00Z", "2025-03-31T22:00:00Z")
        );
        assert_eq!(
            window(Period::Year, "2024-12-31T23:59:59Z", "UTC"),
            span("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")
        );
        assert_eq!(
            window(Period::Year, "2024-12-31T15:00:00Z", "Pacific/Auckland"),
            span("2024-12-31T11:00:00Z", "2025-12-31T11:00:00Z")
        );
        assert_eq!(
            window(Period::Day, "2024-02-29T12:00:00Z", "America/New_York"),
            span("2024-02-29T05:00:00Z", "2024-03-01T05:00:00Z")
        );
    }

    #[test]
    fn iso_weeks_cross_year_boundaries() {
        // 2025-01-01 is a Wednesday: its week began on Monday 2024-12-30.
        assert_eq!(
            window(Period::Week, "2025-01-01T12:00:00Z", "UTC"),
            span("2024-12-30T00:00:00Z", "2025-01-06T00:00:00Z")
        );
        // Sunday 2021-01-03 belongs to the week of Monday 2020-12-28.
        assert_eq!(
            window(Period::Week, "2021-01-03T23:59:59Z", "UTC"),
            span("2020-12-28T00:00:00Z", "2021-01-04T00:00:00Z")
        );
        // A Monday starts a new week.
        assert_eq!(
            window(Period::Week, "2021-01-04T00:00:00Z", "UTC"),
            span("2021-01-04T00:00:00Z", "2021-01-11T00:00:00Z")
        );
        // The week containing the Paris autumn change is 7 days + 1 hour.
        assert_eq!(
            window(Period::Week, "2025-10-26T12:00:00Z", "Europe/Paris"),
            span("2025-10-19T22:00:00Z", "2025-10-26T23:00:00Z")
        );
    }

    #[test]
    fn eternity_and_retry_after() {
        let w = Period::Eternity.window(t("2030-01-01T00:00:00Z"), &TimeZone::UTC);
        assert_eq!(w.start, Timestamp::UNIX_EPOCH);
        assert_eq!(w.end, None);
        assert_eq!(w.id(), WindowId(0));
        assert_eq!(w.seconds_until_end(t("2030-01-01T00:00:00Z")), None);
        assert_eq!(w.next(&TimeZone::UTC), None);

        let minute = Period::Minute.window(t("2030-01-01T00:00:10Z"), &TimeZone::UTC);
        assert_eq!(minute.seconds_until_end(t("2030-01-01T00:00:10Z")), Some(50));
        assert_eq!(minute.seconds_until_end(t("2030-01-01T00:00:10.2Z")), Some(50));
        assert_eq!(minute.seconds_until_end(t("2030-01-01T00:01:10Z")), Some(0));
    }

    #[test]
    fn time_zone_names() {
        let paris = TimeZoneName::new("europe/paris").expect("known");
        assert_eq!(paris.as_str(), "Europe/Paris");
        assert_eq!(serde_json::to_string(&paris).expect("json"), "\"Europe/Paris\"");
        assert!(TimeZoneName::new("Mars/Olympus_Mons").is_err());
        assert!(serde_json::from_str::<TimeZoneName>("\"Nowhere\"").is_err());
        assert_eq!(serde_json::from_str::<TimeZoneName>("\"UTC\"").expect("utc"), TimeZoneName::utc());
    }

    const ZONES: &[&str] = &[
        "UTC",
        "Etc/UTC",
        "Europe/Paris",
        "America/New_York",
        "America/Santiago",
        "America/Sao_Paulo",
        "America/Havana",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Asia/Tehran",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "Pacific/Chatham",
        "Africa/Casablanca",
        "Europe/Dublin",
        "Antarctica/Troll",
    ];

    fn any_instant() -> impl Strategy<Value = Timestamp> {
        // 1900..2100, with sub-second parts.
        (-2_208_988_800i64..4_102_444_800, 0i32..1_000_000_000)
            .prop_map(|(s, ns)| Timestamp::new(s, ns).expect("in range"))
    }

    fn any_period() -> impl Strategy<Value = Period> {
        proptest::sample::select(Period::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn windows_contain_the_instant_and_tile_the_timeline(
            at in any_instant(),
            period in any_period(),
            zone in proptest::sample::select(ZONES),
        ) {
            let tz = tz(zone);
            let w = period.window(at, &tz);
            if period == Period::Eternity {
                // Counting starts at the epoch; nothing is metered before 1970.
                prop_assert_eq!((w.start, w.end), (Timestamp::UNIX_EPOCH, None));
                return Ok(());
            }
            prop_assert!(w.contains(at), "{w:?} does not contain {at}");
            prop_assert_eq!(w.start.subsec_nanosecond(), 0);
            let end = w.end.expect("only eternity is endless");
            let next = period.window(end, &tz);
            prop_assert_eq!(next.start, end, "gap or overlap after {:?}", w);
            // The last instant of the window maps back to the same window.
            let last = end.checked_sub(SignedDuration::from_nanos(1)).expect("in range");
            prop_assert_eq!(period.window(last, &tz), w);
            prop_assert_eq!(period.window(w.start, &tz), w);
            let length = end.duration_since(w.start).as_secs();
            let (min, max) = match period {
                Period::Minute => (1, 60),
                Period::Hour => (1, 3600),
                Period::Day => (22 * 3600, 26 * 3600),
                // Samoa skipped 2011-12-30 entirely, so one week had 6 days.
                Period::Week => (6 * 86400, 7 * 86400 + 4 * 3600),
                Period::Month => (27 * 86400, 32 * 86400),
                Period::Year => (364 * 86400, 367 * 86400),
                Period::Eternity => unreachable!(),
            };
            prop_assert!((min..=max).contains(&length), "{w:?} lasts {length}s");
        }

        /// Random instants rarely land near a DST change, so aim right at the transitions.
        #[test]
        fn windows_tile_around_offset_changes(
            from in any_instant(),
            nudge in -7200i64..7200,
            period in proptest::sample::select(vec![Period::Minute, Period::Hour, Period::Day, Period::Week]),
            zone in proptest::sample::select(ZONES),
        ) {
            let tz = tz(zone);
            let Some(transition) = tz.following(from).next() else { return Ok(()) };
            let at = transition.timestamp() + SignedDuration::from_secs(nudge);
            let w = period.window(at, &tz);
            prop_assert!(w.contains(at), "{w:?} does not contain {at}");
            let end = w.end.expect("bounded");
            prop_assert_eq!(period.window(end, &tz).start, end);
            let before = w.start - SignedDuration::from_nanos(1);
            prop_assert_eq!(period.window(before, &tz).end, Some(w.start));
        }

        #[test]
        fn fixed_offset_fast_path_agrees_with_tzdb(at in any_instant(), period in any_period()) {
            prop_assert_eq!(period.window(at, &TimeZone::UTC), period.window(at, &tz("Etc/UTC")));
        }
    }
}
