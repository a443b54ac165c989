//! The alert job: warns an application's owners when its usage crosses a
//! level of a limit, once per (application, limit, window, level), however
//! many server replicas run the job.
//!
//! Intake queues every application whose usage moved. A round takes queued
//! applications with `FOR UPDATE SKIP LOCKED`, computes usage in each limit's
//! current window (protocol's calendar in the plan's zone), and inserts one
//! `usage_alerts` row per crossed level with `ON CONFLICT DO NOTHING`: the
//! replica whose insert wins is the one that sends. A burst that jumps several
//! levels at once mails only the highest of them. Mail (to the account's
//! verified owners) and portal notifications are written in the same
//! transaction, so an alert is decided and delivered together or not at all.
//!
//! A limit per minute or per hour has a new window every minute or hour: a client that keeps
//! to its limit would reach 100 % in each of them. Such limits mail and notify the owners about
//! a level at most once in [`QUIET`]; every window is still recorded and raises its webhook.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::PgPool;
use tollgate_protocol::{Period, TimeZoneName};
use uuid::Uuid;

use super::buckets::{offset_datetime, used_in_window};
use super::levels::{AlertLevel, from_stored};
use crate::Result;
use crate::mail;
use crate::mail::messages::AlertText;
use crate::notifications::{self, NewNotification, Recipient};
use crate::stored::StoredPeriod;

/// How many queued applications one round takes.
const ROUND: i64 = 100;

/// How long a level of a per-minute or per-hour limit stays quiet in mail once mailed.
const QUIET: time::Duration = time::Duration::hours(24);

struct Limit {
    id: Uuid,
    metric: Uuid,
    metric_name: String,
    period: Period,
    max: i64,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Applications taken from the queue.
    pub applications: usize,
    /// Alerts sent (one per limit and window, however many levels it crossed).
    pub sent: usize,
    /// The round took as many applications as it may: more may be queued.
    pub full: bool,
}

/// One round. `base_url` is the server's public URL, for links in mail.
pub async fn run_round(pool: &PgPool, base_url: &str, now: Timestamp) -> Result<Round> {
    let mut tx = pool.begin().await?;
    let queued = sqlx::query!(
        "DELETE FROM usage_alert_queue WHERE application_id IN (
             SELECT application_id FROM usage_alert_queue ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING application_id, earliest",
        ROUND
    )
    .fetch_all(&mut *tx)
    .await?;
    let apps: Vec<Uuid> = queued.iter().map(|q| q.application_id).collect();
    let earliest: HashMap<Uuid, Timestamp> = queued
        .iter()
        .filter_map(|q| Some((q.application_id, Timestamp::from_second(q.earliest?.unix_timestamp()).ok()?)))
        .collect();
    if apps.is_empty() {
        tx.commit().await?;
        return Ok(Round::default());
    }
    let rows = sqlx::query!(
        r#"SELECT a.id, a.name, a.account_id, a.muted_alert_levels, p.time_zone, p.alert_levels,
                  l.id AS limit_id, l.metric_id, m.friendly_name, l.period AS "period: StoredPeriod", l.max_value
           FROM applications a
           JOIN plans p ON p.id = a.plan_id
           JOIN usage_limits l ON l.plan_id = p.id
           JOIN metrics m ON m.id = l.metric_id
           WHERE a.id = ANY($1)
           ORDER BY a.id, l.id"#,
        &apps
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut sent = 0;
    let mut by_app: HashMap<Uuid, Vec<_>> = HashMap::new();
    for row in rows {
        by_app.entry(row.id).or_default().push(row);
    }
    let mut app_ids: Vec<&Uuid> = by_app.keys().collect();
    app_ids.sort();
    for app in app_ids {
        let rows = &by_app[app];
        let first = &rows[0];
        let tz = TimeZoneName::new(&first.time_zone).unwrap_or_else(|_| TimeZoneName::utc());
        let enabled = from_stored(&first.alert_levels);
        let muted = from_stored(&first.muted_alert_levels);
        for row in rows {
            let limit = Limit {
                id: row.limit_id,
                metric: row.metric_id,
                metric_name: row.friendly_name.clone(),
                period: row.period.0,
                max: row.max_value,
            };
            // The window of now, and the one the earliest new usage fell in if that one is over
            // (usage in a day's last seconds, or delivered late): each checked on its own.
            let mut windows = vec![tz.window(limit.period, now)];
            if let Some(&since) = earliest.get(app) {
                let earlier = tz.window(limit.period, since.min(now));
                if earlier.start != windows[0].start {
                    windows.insert(0, earlier);
                }
            }
            for window in windows {
                let used =
                    used_in_window(&mut tx, &[*app], limit.metric, &window).await?.first().map_or(0, |(_, used)| *used);
                // Levels to record: those that alert for this application, and
                // every violation (the admin's list shows them all).
                let levels: Vec<i16> = AlertLevel::ALL
                    .into_iter()
                    .filter(|l| l.crossed(used, limit.max))
                    .filter(|l| l.is_violation() || (enabled.contains(l) && !muted.contains(l)))
                    .map(AlertLevel::pct)
                    .collect();
                if levels.is_empty() {
                    continue;
                }
                let new = sqlx::query_scalar!(
                "INSERT INTO usage_alerts (application_id, usage_limit_id, window_start, threshold_pct, used, max_value)
                 SELECT $1, $2, $3, level, $5, $6 FROM unnest($4::int2[]) AS level
                 ON CONFLICT DO NOTHING
                 RETURNING threshold_pct",
                app,
                limit.id,
                offset_datetime(window.start),
                &levels,
                used,
                limit.max
            )
                .fetch_all(&mut *tx)
                .await?;
                // Mail only the highest newly crossed level that is on and not muted.
                let Some(level) =
                    from_stored(&new).into_iter().filter(|l| enabled.contains(l) && !muted.contains(l)).max()
                else {
                    continue;
                };
                let recently_told = matches!(limit.period, Period::Minute | Period::Hour)
                    && sqlx::query_scalar!(
                        r#"SELECT EXISTS (
                         SELECT 1 FROM usage_alerts
                         WHERE application_id = $1 AND usage_limit_id = $2 AND threshold_pct = $3 AND notified
                           AND window_start >= $4 AND window_start < $5
                       ) AS "told!""#,
                        app,
                        limit.id,
                        level.pct(),
                        offset_datetime(window.start) - QUIET,
                        offset_datetime(window.start)
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                if !recently_told {
                    sqlx::query!(
                        "UPDATE usage_alerts SET notified = true
                     WHERE application_id = $1 AND usage_limit_id = $2 AND window_start = $3 AND threshold_pct = $4",
                        app,
                        limit.id,
                        offset_datetime(window.start),
                        level.pct()
                    )
                    .execute(&mut *tx)
                    .await?;
                    let text = alert_text(&first.name, *app, &limit, level, used);
                    notify_owners(&mut tx, first.account_id, &text, base_url).await?;
                }
                let after = serde_json::json!({
                    "metric": limit.metric_name, "period": limit.period.to_string(), "level_pct": level.pct(),
                    "used": used, "max": limit.max, "window_start": offset_datetime(window.start).unix_timestamp(),
                });
                let data = crate::webhooks::queue::data("application", Some(*app), "usage alerts", None, Some(&after));
                crate::webhooks::queue::enqueue(&mut tx, crate::webhooks::EventType::UsageAlert, data).await?;
                sent += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(Round { applications: apps.len(), sent, full: apps.len() as i64 >= ROUND })
}

fn alert_text(app_name: &str, app: Uuid, limit: &Limit, level: AlertLevel, used: i64) -> AlertText {
    let per = match limit.period {
        Period::Eternity => "in total".to_owned(),
        period => format!("per {period}"),
    };
    let title = if level.is_violation() {
        format!("{app_name} reached {level}% of its {} limit", limit.metric_name)
    } else {
        format!("{app_name} used {level}% of its {} limit", limit.metric_name)
    };
    let overage =
        if level.is_violation() { " Calls beyond the limit are refused unless the plan allows overage." } else { "" };
    let quiet = if matches!(limit.period, Period::Minute | Period::Hour) {
        format!(" You will not be told of this level of this limit again for {} hours.", QUIET.whole_hours())
    } else {
        String::new()
    };
    let body = format!(
        "{app_name} has used {used} of its {max} {metric} {per} ({level}% or more).{overage}{quiet}",
        max = limit.max,
        metric = limit.metric_name
    );
    AlertText { app_name: app_name.to_owned(), title, body, link: format!("/apps/{app}/usage") }
}

/// Mail to every verified owner of the account, and a notification each.
async fn notify_owners(tx: &mut sqlx::PgConnection, account: Uuid, text: &AlertText, base_url: &str) -> Result<()> {
    for (owner, email) in notifications::verified_owners(&mut *tx, account).await? {
        mail::enqueue(&mut *tx, &mail::messages::usage_alert(&email, text, base_url)).await?;
        notifications::insert(
            &mut *tx,
            &NewNotification {
                to: Recipient::User(owner),
                kind: "usage_alert",
                title: &text.title,
                body: &text.body,
                link: Some(&text.link),
            },
        )
        .await?;
    }
    Ok(())
}
