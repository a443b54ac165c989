//! Where rollup buckets start, and which buckets tile a limit's window.
//!
//! Every bucket start comes from `tollgate_protocol::period` in the plan's
//! time zone, the calendar the agent's counters and billing use, so a day or
//! month bucket is exactly a limit's day or month window: a call at 23:50 on
//! the 31st in Asia/Kolkata lands in that month, not in the next UTC day's.
//! Minute buckets are UTC minutes, as agents report them (every zone in use
//! today is offset by whole minutes, so they are local minutes too).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use time::OffsetDateTime;
use tollgate_protocol::{Period, Window};
use uuid::Uuid;

use super::Granularity;
use crate::Result;

/// The start of the bucket of `granularity` holding the UTC minute `minute`
/// (Unix seconds), in time zone `tz`.
pub fn bucket_start(granularity: Granularity, minute: i64, tz: &TimeZone) -> i64 {
    let minute = minute - minute.rem_euclid(60);
    let Ok(at) = Timestamp::from_second(minute) else { return minute };
    let period = match granularity {
        Granularity::Minute => return minute,
        Granularity::Hour => Period::Hour,
        Granularity::Day => Period::Day,
        Granularity::Month => Period::Month,
    };
    period.window(at, tz).start.as_second()
}

/// The finest granularity whose buckets tile every window of `period` exactly
/// and are still kept by retention (see `retention::Retention::check`): hours
/// for a day, days for a week or month, months for a year or eternity.
pub fn tiling(period: Period) -> Granularity {
    match period {
        Period::Minute => Granularity::Minute,
        Period::Hour | Period::Day => Granularity::Hour,
        Period::Week | Period::Month => Granularity::Day,
        Period::Year | Period::Eternity => Granularity::Month,
    }
}

pub(crate) fn offset_datetime(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.as_second()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A window's bounds as the rollups store them. Eternity (or the end of
/// representable time) ends at the largest date: everything from the start on.
fn bounds(window: &Window) -> (OffsetDateTime, OffsetDateTime) {
    let end = window.end.map_or(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT), offset_datetime);
    (offset_datetime(window.start), end)
}

/// Usage of `metric` in `window` per application of `applications` (absent
/// when none), summed over the buckets that tile the window. The plan's zone
/// made the buckets at intake, so they start on the window's bounds.
pub async fn used_in_window(
    conn: &mut sqlx::PgConnection,
    applications: &[Uuid],
    metric: Uuid,
    window: &Window,
) -> Result<Vec<(Uuid, i64)>> {
    let (start, end) = bounds(window);
    let rows = sqlx::query!(
        r#"SELECT application_id, LEAST(sum(hits), 9223372036854775807)::bigint AS "used!" FROM usage_rollups
           WHERE metric_id = $1 AND granularity = $2
             AND bucket_start >= $3 AND bucket_start < $4 AND application_id = ANY($5)
           GROUP BY application_id"#,
        metric,
        tiling(window.period) as Granularity,
        start,
        end,
        applications
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.application_id, r.used)).collect())
}

/// [`used_in_window`] for every application on `plan` that a snapshot
/// carries (not rejected). The applications are joined in SQL: a million ids
/// as one `= ANY($n)` parameter took seconds.
pub async fn used_in_window_by_plan(
    conn: &mut sqlx::PgConnection,
    plan: Uuid,
    metric: Uuid,
    window: &Window,
) -> Result<Vec<(Uuid, i64)>> {
    let (start, end) = bounds(window);
    let rows = sqlx::query!(
        r#"SELECT r.application_id, LEAST(sum(r.hits), 9223372036854775807)::bigint AS "used!"
           FROM usage_rollups r
           JOIN applications ap ON ap.id = r.application_id
           WHERE ap.plan_id = $1 AND ap.state <> 'rejected'
             AND r.metric_id = $2 AND r.granularity = $3
             AND r.bucket_start >= $4 AND r.bucket_start < $5
           GROUP BY r.application_id"#,
        plan,
        metric,
        tiling(window.period) as Granularity,
        start,
        end
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.application_id, r.used)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn kolkata_late_evening_on_the_31st_stays_in_that_month() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        // 23:50 local on 31 January is 18:20 UTC.
        let minute = at("2026-01-31T18:20:00Z");
        assert_eq!(bucket_start(Granularity::Month, minute, &tz), at("2025-12-31T18:30:00Z"));
        assert_eq!(bucket_start(Granularity::Day, minute, &tz), at("2026-01-30T18:30:00Z"));
        assert_eq!(bucket_start(Granularity::Hour, minute, &tz), at("2026-01-31T17:30:00Z"));
        assert_eq!(bucket_start(Granularity::Minute, minute + 7, &tz), minute);
    }

    #[test]
    fn kathmandu_quarter_hour_offset() {
        let tz = TimeZone::get("Asia/Kathmandu").unwrap();
        // 23:50 local (+05:45) on 30 April is 18:05 UTC.
        let minute = at("2026-04-30T18:05:00Z");
        assert_eq!(bucket_start(Granularity::Month, minute, &tz), at("2026-03-31T18:15:00Z"));
        assert_eq!(bucket_start(Granularity::Day, minute, &tz), at("2026-04-29T18:15:00Z"));
        assert_eq!(bucket_start(Granularity::Hour, minute, &tz), at("2026-04-30T17:15:00Z"));
    }

    #[test]
    fn tiling_buckets_start_on_window_bounds() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        let now = "2026-03-14T10:11:00Z".parse::<Timestamp>().unwrap();
        for period in Period::ALL {
            let window = period.window(now, &tz);
            let g = tiling(period);
            if period != Period::Eternity {
                assert_eq!(bucket_start(g, window.start.as_second(), &tz), window.start.as_second(), "{period}");
            }
        }
    }
}
