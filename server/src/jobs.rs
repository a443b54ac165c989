//! Background jobs of the management server: mail delivery, clean-up of
//! sessions and throttle records, change reports of large staged versions,
//! usage alerts, usage retention, billing, invoice payments and webhooks.
//! Each is a loop on its own timer; several replicas may run them at once
//! (rows are claimed with SKIP LOCKED, deletes are idempotent).

use std::time::Duration;

use tollgate_core::apis::staging;
use tollgate_core::billing::Payments;
use tollgate_core::billing::payments;
use tollgate_core::billing::run::RunOptions;
use tollgate_core::db::PgPool;
use tollgate_core::mail::{Delivery, deliver_due};
use tollgate_core::sessions::SessionStore;
use tollgate_core::usage;
use tollgate_core::usage::retention::Retention;
use tollgate_core::webhooks::deliver::{self, Sender};

use crate::settings::Settings;

/// How mail leaves this server, from the settings.
pub fn mail_delivery(settings: &Settings) -> Result<Delivery, tollgate_core::Error> {
    match (&settings.smtp_url, &settings.mail_outbox_dir) {
        (Some(url), _) => Delivery::smtp(url.expose(), &settings.mail_from),
        (None, Some(dir)) => Delivery::directory(dir.clone(), &settings.mail_from),
        (None, None) => {
            tracing::warn!("no TOLLGATE_SMTP_URL: outgoing mail is kept in the outbox table until one is set");
            Ok(Delivery::Hold)
        }
    }
}

pub fn spawn_mail_worker(pool: PgPool, delivery: Delivery) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Err(err) = deliver_due(&pool, &delivery).await {
                tracing::warn!(error = %err, "mail delivery round failed");
            }
        }
    });
}

/// Removes expired sessions and throttle records no throttle reads any more.
pub fn spawn_session_purge(sessions: SessionStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(err) = sessions.purge_expired().await {
                tracing::warn!(error = %err, "session clean-up failed");
            }
            if let Err(err) = tollgate_core::accounts::throttle::purge_old(sessions.pool()).await {
                tracing::warn!(error = %err, "throttle clean-up failed");
            }
        }
    });
}

/// How often the billing job runs. A run bills only what is not billed yet, so running it
/// hourly costs little and means a period is billed within the hour it can be.
const BILLING_EVERY: Duration = Duration::from_secs(3600);
/// The first run waits a little, so a fleet restarting does not bill all at once on boot.
const BILLING_FIRST_AFTER: Duration = Duration::from_secs(60);

/// Runs the billing of the default period (the same code as `tollgate billing run`).
/// Replicas may run it at once: each account is billed under an advisory lock.
pub fn spawn_billing_job(pool: PgPool, payments: Payments, public_url: String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + BILLING_FIRST_AFTER, BILLING_EVERY);
        let options = RunOptions { public_url, charge: payments.charges_automatically(), ..RunOptions::default() };
        loop {
            tick.tick().await;
            match tollgate_core::billing::run::run(&pool, &options, |_, _| {}).await {
                Ok(summary) if !summary.failed.is_empty() => {
                    tracing::warn!(period = %summary.month, invoices = summary.invoices.len(), failed = summary.failed.len(), "billing run left accounts unbilled");
                }
                Ok(summary) if !summary.invoices.is_empty() => {
                    tracing::info!(period = %summary.month, invoices = summary.invoices.len(), "billing run issued invoices");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "billing run failed"),
            }
        }
    });
}

/// How often the payment job looks for invoices due for a try.
const PAYMENTS_POLL: Duration = Duration::from_secs(30);

/// Charges issued invoices and retries declined ones, with a provider that charges by
/// itself. Every replica runs it; each invoice is taken with SKIP LOCKED.
pub fn spawn_payment_job(pool: PgPool, payments: Payments, public_url: String) {
    if !payments.charges_automatically() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PAYMENTS_POLL);
        loop {
            tick.tick().await;
            let now = time::OffsetDateTime::now_utc();
            match payments::run_due(&pool, payments.0.as_ref(), &public_url, now).await {
                Ok(round) if round != payments::Round::default() => {
                    tracing::info!(
                        paid = round.paid,
                        declined = round.declined,
                        failed = round.failed,
                        "invoice payments tried"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "invoice payment round failed"),
            }
        }
    });
}

/// How often an idle staging worker looks for a queued report.
const STAGING_POLL: Duration = Duration::from_millis(250);

/// Makes the change reports of large staged versions, one at a time per
/// replica: a claimed job runs to its end, then the next is looked for at once.
pub fn spawn_staging_worker(pool: PgPool) {
    tokio::spawn(async move {
        loop {
            match staging::claim(&pool).await {
                Ok(Some(job)) => {
                    if let Err(err) = staging::run(&pool, &job).await {
                        tracing::warn!(error = %err, api = %job.api.0, version = job.number, attempt = job.attempts, "change report failed");
                        if let Err(err) = staging::fail(&pool, &job, &err.to_string()).await {
                            tracing::warn!(error = %err, "could not hand back a change report job");
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "looking for change reports to make failed"),
            }
            tokio::time::sleep(STAGING_POLL).await;
        }
    });
}

/// How often the alert job looks at applications whose usage moved.
const ALERT_POLL: Duration = Duration::from_secs(2);

/// Alerts on usage crossing limit levels. Every replica runs it; the queue is
/// claimed with SKIP LOCKED and the `usage_alerts` insert decides who sends.
pub fn spawn_usage_alerts(pool: PgPool, public_url: String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ALERT_POLL);
        loop {
            tick.tick().await;
            // A full round means more are queued: go on at once.
            loop {
                match usage::alerts::run_round(&pool, &public_url, jiff::Timestamp::now()).await {
                    Ok(outcome) if outcome.full => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "usage alert round failed");
                        break;
                    }
                }
            }
        }
    });
}

/// Deletes usage older than the retention settings, every 10 minutes, in
/// batches that never block intake.
pub fn spawn_usage_retention(pool: PgPool, retention: Retention) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match usage::retention::run(&pool, &retention, time::OffsetDateTime::now_utc()).await {
                Ok(deleted) => {
                    metrics::counter!("tollgate_usage_retention_deleted_rows_total").increment(deleted.total());
                }
                Err(err) => tracing::warn!(error = %err, "usage retention run failed"),
            }
        }
    });
}

/// How often the webhook job looks for deliveries due.
const WEBHOOKS_POLL: Duration = Duration::from_millis(500);

/// Sends webhook deliveries and their retries. Every replica runs it; each
/// delivery is claimed with SKIP LOCKED, so none is sent twice at once.
/// Every 10 minutes, finished deliveries older than 30 days are deleted.
pub fn spawn_webhook_job(pool: PgPool, sender: Sender) {
    let purge_pool = pool.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(err) = deliver::purge_finished(&purge_pool, time::OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %err, "webhook delivery clean-up failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WEBHOOKS_POLL);
        loop {
            tick.tick().await;
            match deliver::run_due(&pool, &sender, time::OffsetDateTime::now_utc()).await {
                Ok(round) if round != deliver::Round::default() => {
                    tracing::debug!(delivered = round.delivered, failed = round.failed, "webhook deliveries sent");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "webhook delivery round failed"),
            }
        }
    });
}
