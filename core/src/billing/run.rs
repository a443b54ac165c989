//! The billing run: every account billed in its own transaction.
//!
//! * **Idempotent:** an account that already has an invoice for the period in the current
//!   billing mode is skipped, so a second run changes nothing. (After a switch from prepaid
//!   to postpaid a month has both: its fees in advance, then its usage once it ends.)
//! * **Crash-safe:** an account's invoices are written and issued in one transaction;
//!   a run killed half way leaves whole accounts billed or not, and the next run bills
//!   the rest.
//! * **Safe with replicas:** the transaction first takes a transaction-scoped advisory
//!   lock on (account, period, mode), so a second replica waits, then sees the invoice and
//!   skips; `UNIQUE (account_id, period_start, currency, mode)` backs this up.
//!
//! Inputs are read a page of accounts at a time, one query per table; under its lock an
//! account is read again only if its invoices changed since (see docs/BILLING.md). With
//! `workers > 1` several accounts are billed at once, each still in its own transaction.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::StreamExt;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use tollgate_protocol::period::TimeZoneName;
use uuid::Uuid;

use super::compute::{
    self, AccountInput, Billed, BilledUsage, BillingMode, Line, LineKind, MetricPricing, PlanTerms, Segment, Subject,
    Subscription, Usage,
};
use super::invoice::{InvoiceNumber, InvoiceState};
use super::money::Currency;
use super::period::Month;
use super::pricing::{PricingMode, Tier};
use super::settings::{self, BillingSettings};
use crate::{Error, Result};

/// What to bill.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The invoices' period; by default the month that just ended (postpaid) or the
    /// current month (prepaid).
    pub month: Option<Month>,
    /// Only this account.
    pub account: Option<Uuid>,
    /// Compute and report, write nothing.
    pub dry_run: bool,
    /// Accounts billed at once, each in its own transaction on its own connection (0 counts
    /// as 1). With one, invoice numbers follow the accounts' order; with more, the order in
    /// which their transactions commit.
    pub workers: usize,
    /// The server's public URL, for the links in "invoice issued" mails.
    pub public_url: String,
    /// The payment provider charges by itself: issued invoices are due for a first try.
    pub charge: bool,
}

/// One invoice a run made (or would make, in a dry run).
#[derive(Clone, Debug, serde::Serialize)]
pub struct IssuedInvoice {
    pub account_id: Uuid,
    pub number: Option<String>,
    pub currency: String,
    pub lines: usize,
    pub total: Decimal,
    pub state: InvoiceState,
}

/// What a run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunSummary {
    pub month: String,
    pub mode: String,
    pub accounts: usize,
    /// Accounts that already had their invoices for the period.
    pub skipped: usize,
    /// Accounts with nothing to bill.
    pub empty: usize,
    pub invoices: Vec<IssuedInvoice>,
    /// Accounts whose billing failed (rolled back); the run went on with the next.
    pub failed: Vec<FailedAccount>,
    pub dry_run: bool,
}

/// An account a run could not bill, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FailedAccount {
    pub account_id: Uuid,
    pub error: String,
}

impl RunSummary {
    /// Totals by currency, for the summary line.
    pub fn totals(&self) -> Vec<(String, Decimal, usize)> {
        let mut by: std::collections::BTreeMap<String, (Decimal, usize)> = Default::default();
        for inv in &self.invoices {
            let e = by.entry(inv.currency.clone()).or_default();
            e.0 += inv.total;
            e.1 += 1;
        }
        by.into_iter().map(|(c, (t, n))| (c, t, n)).collect()
    }
}

/// Every zone has left a month 26 hours after it ended in UTC at the latest (UTC−12
/// and a margin); and entered it 14 hours before (UTC+14).
const LATEST_ZONE_HOURS: i64 = 12;
const EARLIEST_ZONE_HOURS: i64 = 14;

/// The period a run bills by default at `now`.
pub fn default_month(mode: BillingMode, now: Timestamp) -> Month {
    let utc = TimeZoneName::utc();
    match mode {
        BillingMode::Postpaid => {
            Month::containing(now - jiff::SignedDuration::from_hours(LATEST_ZONE_HOURS), &utc).previous()
        }
        BillingMode::Prepaid => Month::containing(now + jiff::SignedDuration::from_hours(EARLIEST_ZONE_HOURS), &utc),
    }
}

/// Refuses a period that cannot be billed yet at `now`: postpaid bills a month once it
/// has ended in every zone, prepaid once it has begun in one.
pub fn check_month(mode: BillingMode, month: Month, now: Timestamp) -> Result<()> {
    let utc = TimeZoneName::utc();
    let ok = match mode {
        BillingMode::Postpaid => month.in_zone(&utc).end + jiff::SignedDuration::from_hours(LATEST_ZONE_HOURS) <= now,
        BillingMode::Prepaid => {
            month.in_zone(&utc).start - jiff::SignedDuration::from_hours(EARLIEST_ZONE_HOURS) <= now
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "period",
            match mode {
                BillingMode::Postpaid => {
                    format!("{month} has not ended everywhere yet; postpaid bills a month after it ends")
                }
                BillingMode::Prepaid => format!("{month} has not begun yet; prepaid bills a month from its first day"),
            },
        ))
    }
}

fn to_jiff(t: OffsetDateTime) -> Timestamp {
    Timestamp::from_second(t.unix_timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn to_time(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.as_second()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_date(m: Month) -> time::Date {
    let d = m.first_day();
    time::Month::try_from(u8::try_from(d.month()).unwrap_or(1))
        .ok()
        .and_then(|month| time::Date::from_calendar_date(i32::from(d.year()), month, 1).ok())
        .unwrap_or(time::Date::MIN)
}

fn from_date(d: time::Date) -> Option<Month> {
    Month::new(i16::try_from(d.year()).ok()?, i8::try_from(u8::from(d.month())).ok()?)
}

/// Accounts whose inputs are read together, before their transactions. A page is read
/// at most a few seconds before its last account is billed; what could change the lines
/// in that time (the account's invoices) is checked again under each account's lock.
const PAGE: usize = 500;

/// Bills every account with a subscription that touches the period (or just one account),
/// calling `progress(done, total)` after each.
/// Records who started a run that was not a dry run (an admin or a token; the schedule's
/// runs are the job's own), with what it issued: invoices are issued and cards charged, and
/// the audit log must say on whose word.
pub async fn record_run(
    pool: &PgPool,
    actor: &crate::audit::Actor,
    summary: &RunSummary,
    account: Option<Uuid>,
) -> Result<()> {
    if summary.dry_run {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let entry = crate::audit::Entry {
        action: "billing.run",
        entity: "billing",
        entity_id: account,
        before: None,
        after: Some(json!({
            "period": summary.month,
            "mode": summary.mode,
            "account_id": account,
            "invoices": summary.invoices.iter().filter_map(|i| i.number.clone()).collect::<Vec<_>>(),
            "failed": summary.failed.len(),
        })),
    };
    crate::audit::record(&mut tx, actor, entry).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn run(pool: &PgPool, options: &RunOptions, mut progress: impl FnMut(usize, usize)) -> Result<RunSummary> {
    let settings = settings::get(pool).await?;
    let now = Timestamp::now();
    let month = options.month.unwrap_or_else(|| default_month(settings.mode, now));
    check_month(settings.mode, month, now)?;
    // One account asked for by id: a mistyped one is an error, not a run that bills nobody.
    if let Some(account) = options.account {
        crate::accounts::directory::get(pool, crate::accounts::AccountId(account)).await.map_err(|err| match err {
            Error::NotFound => Error::invalid("account_id", format!("no account has the id {account}")),
            other => other,
        })?;
    }
    // Wide enough for every zone and for the corrections of earlier months.
    let utc = TimeZoneName::utc();
    let from = month.previous().previous().previous().in_zone(&utc).start - jiff::SignedDuration::from_hours(14);
    let to = month.in_zone(&utc).end + jiff::SignedDuration::from_hours(14);
    // Accounts billed already are counted without opening a transaction each; the check
    // under the lock in `bill_account` still decides for runs racing this one.
    let accounts = sqlx::query!(
        r#"SELECT s.account_id AS "id!",
                  EXISTS (SELECT 1 FROM invoices i
                          WHERE i.account_id = s.account_id AND i.period_start = $4 AND i.mode = $5) AS "billed!"
           FROM (SELECT DISTINCT account_id FROM subscription_segments
                 WHERE started_at < $1 AND (ended_at IS NULL OR ended_at > $2) AND ($3::uuid IS NULL OR account_id = $3)) s
           ORDER BY 1"#,
        to_time(to),
        to_time(from),
        options.account,
        to_date(month),
        settings.mode as BillingMode
    )
    .fetch_all(pool)
    .await?;
    let mut summary = RunSummary {
        month: month.to_string(),
        mode: settings.mode.to_string(),
        accounts: accounts.len(),
        dry_run: options.dry_run,
        ..RunSummary::default()
    };
    let total = accounts.len();
    let mut done = 0;
    for chunk in accounts.chunks(PAGE) {
        let unbilled: Vec<Uuid> = chunk.iter().filter(|a| !a.billed).map(|a| a.id).collect();
        let mut page = if unbilled.is_empty() {
            Page::default()
        } else {
            load_page(&mut *pool.acquire().await?, &unbilled, month, settings.mode).await?
        };
        let usage = &page.usage;
        let settings = &settings;
        let work: Vec<_> = chunk
            .iter()
            .map(|account| {
                let inputs = page.accounts.remove(&account.id).unwrap_or_default();
                let billed = account.billed;
                async move {
                    let outcome = if billed {
                        Ok(Outcome::AlreadyBilled)
                    } else {
                        bill_account(pool, account.id, month, settings, options, inputs, usage).await
                    };
                    (account.id, outcome)
                }
            })
            .collect();
        // In the accounts' order whatever order the workers finish in.
        let mut outcomes = futures_util::stream::iter(work).buffered(options.workers.max(1));
        while let Some((account, outcome)) = outcomes.next().await {
            done += 1;
            // One account's failure must not stop every later account from being billed.
            match outcome {
                Ok(Outcome::AlreadyBilled) => summary.skipped += 1,
                Ok(Outcome::Nothing) => summary.empty += 1,
                Ok(Outcome::Invoices(list)) => summary.invoices.extend(list),
                Err(err) => {
                    tracing::error!(account = %account, period = %month, error = %err, "billing an account failed");
                    summary.failed.push(FailedAccount { account_id: account, error: err.to_string() });
                }
            }
            progress(done, total);
        }
    }
    Ok(summary)
}

/// What an account's next invoice holds so far, computed as the run would bill it now
/// and written nowhere: the fees of its period as they stand (each application's plan
/// to the end of the period) and the usage counted so far. The portal shows it.
#[derive(Clone, Debug)]
pub struct Upcoming {
    /// The period the invoice will be issued for.
    pub month: Month,
    pub mode: BillingMode,
    /// One per currency; none when nothing is billed so far.
    pub invoices: Vec<UpcomingInvoice>,
}

#[derive(Clone, Debug)]
pub struct UpcomingInvoice {
    pub currency: Currency,
    pub lines: Vec<Line>,
    pub subtotal: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
}

/// The account's next invoice now: postpaid, the current month's (issued once it
/// ends); prepaid, the next month's (its fees in advance, this month's usage). A period
/// the account has an invoice for in the same mode already has nothing upcoming.
pub async fn upcoming(pool: &PgPool, account: crate::accounts::AccountId) -> Result<Upcoming> {
    let account = account.0;
    let settings = settings::get(pool).await?;
    let current = Month::containing(Timestamp::now(), &TimeZoneName::utc());
    let month = match settings.mode {
        BillingMode::Postpaid => current,
        BillingMode::Prepaid => current.next(),
    };
    let mut page = load_page(&mut *pool.acquire().await?, &[account], month, settings.mode).await?;
    let inputs = page.accounts.remove(&account).unwrap_or_default();
    let lines = if inputs.period_billed { Vec::new() } else { inputs.lines(month, settings.mode, &page.usage) };
    let currencies: BTreeSet<Currency> = lines.iter().map(|l| l.currency).collect();
    let invoices = currencies
        .into_iter()
        .map(|currency| {
            let lines: Vec<Line> = lines.iter().filter(|l| l.currency == currency).cloned().collect();
            let (subtotal, tax, total) = compute::totals(currency, &lines, settings.tax_rate);
            UpcomingInvoice { currency, lines, subtotal, tax, total }
        })
        .collect();
    Ok(Upcoming { month, mode: settings.mode, invoices })
}

/// What a plan's past subscribers still owe for their time on it, by currency, and how many
/// accounts owe it: what runs for the months not yet invoiced would bill for the plan, from
/// the month before the correction window on. Deleting the plan would drop exactly this,
/// since its subscription history goes with it.
pub async fn unbilled_on_plan(conn: &mut PgConnection, plan: Uuid) -> Result<(Vec<(Currency, Decimal)>, usize)> {
    let settings = settings::get_in(&mut *conn).await?;
    let current = Month::containing(Timestamp::now(), &TimeZoneName::utc());
    let newest = match settings.mode {
        BillingMode::Postpaid => current,
        BillingMode::Prepaid => current.next(),
    };
    let mut months = vec![newest];
    for _ in 0..=compute::CORRECTION_MONTHS {
        months.push(months[months.len() - 1].previous());
    }
    // History that ended before the oldest of these months, with a day's margin for the
    // plan's zone, counts as settled.
    let oldest = months[months.len() - 1];
    let since = to_time(oldest.in_zone(&TimeZoneName::utc()).start - jiff::SignedDuration::from_hours(24));
    let accounts: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT DISTINCT account_id FROM subscription_segments
         WHERE plan_id = $1 AND (ended_at IS NULL OR ended_at >= $2)",
        plan,
        since
    )
    .fetch_all(&mut *conn)
    .await?;
    // Each month's run would bill `owed − billed` per subject; a subject two months' runs
    // would both bill (a setup fee, a correction) is owed once.
    let mut owed: HashMap<(Uuid, Subject), (Currency, Decimal)> = HashMap::new();
    for chunk in accounts.chunks(500) {
        for &month in &months {
            let page = load_page(&mut *conn, chunk, month, settings.mode).await?;
            for (account, inputs) in &page.accounts {
                if inputs.period_billed {
                    continue;
                }
                for line in inputs.lines(month, settings.mode, &page.usage) {
                    if line.subject.plan_id == plan && !line.amount.is_zero() {
                        owed.insert((*account, line.subject), (line.currency, line.amount));
                    }
                }
            }
        }
    }
    let owing: BTreeSet<Uuid> = owed.keys().map(|(account, _)| *account).collect();
    let mut total: HashMap<Currency, Decimal> = HashMap::new();
    for (currency, amount) in owed.into_values() {
        *total.entry(currency).or_default() += amount;
    }
    let mut total: Vec<(Currency, Decimal)> = total.into_iter().filter(|(_, amount)| !amount.is_zero()).collect();
    total.sort_by_key(|(currency, _)| *currency);
    Ok((total, owing.len()))
}

enum Outcome {
    AlreadyBilled,
    Nothing,
    Invoices(Vec<IssuedInvoice>),
}

/// What one account's lines are computed from, besides usage.
#[derive(Default)]
struct Inputs {
    subscriptions: Vec<Subscription>,
    billed: Billed,
    billed_usage: BilledUsage,
    invoiced: BTreeSet<(Month, Currency)>,
    /// The account's invoices that are not cancelled, sorted: `billed` and `invoiced`
    /// (and whether setup fees were billed) follow from exactly these.
    invoice_ids: Vec<Uuid>,
    /// An invoice for the period was committed after the run listed the account.
    period_billed: bool,
}

/// A page of accounts' inputs, read in one query per table.
#[derive(Default)]
struct Page {
    accounts: HashMap<Uuid, Inputs>,
    usage: Usage,
}

impl Inputs {
    fn lines(&self, month: Month, mode: BillingMode, usage: &Usage) -> Vec<Line> {
        compute::lines(&AccountInput {
            month,
            mode,
            subscriptions: &self.subscriptions,
            usage,
            billed: &self.billed,
            billed_usage: &self.billed_usage,
            invoiced: &self.invoiced,
        })
    }
}

async fn bill_account(
    pool: &PgPool,
    account: Uuid,
    month: Month,
    settings: &BillingSettings,
    options: &RunOptions,
    inputs: Inputs,
    usage: &Usage,
) -> Result<Outcome> {
    let dry_run = options.dry_run;
    if inputs.period_billed {
        return Ok(Outcome::AlreadyBilled);
    }
    let mut lines = inputs.lines(month, settings.mode, usage);
    // Nothing to bill needs no transaction: a change since the page was read is billed
    // by the next run, as a change just after this run would be.
    if lines.is_empty() {
        return Ok(Outcome::Nothing);
    }
    let mut tx = pool.begin().await?;
    let key = format!("tollgate.billing:{account}:{month}:{}", settings.mode);
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key).execute(&mut *tx).await?;
    // After the lock: a replica that billed the account first has committed by now.
    let period_start = to_date(month);
    let now = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM invoices WHERE account_id = $1 AND period_start = $2 AND mode = $3) AS "billed!",
                  ARRAY(SELECT id FROM invoices WHERE account_id = $1 AND (state <> 'cancelled' OR charges_waived) ORDER BY id) AS "invoices!""#,
        account,
        period_start,
        settings.mode as BillingMode
    )
    .fetch_one(&mut *tx)
    .await?;
    if now.billed {
        return Ok(Outcome::AlreadyBilled);
    }
    if now.invoices != inputs.invoice_ids {
        // An invoice was issued or cancelled since the page was read: read this account again.
        let mut fresh = load_page(&mut tx, &[account], month, settings.mode).await?;
        let inputs = fresh.accounts.remove(&account).unwrap_or_default();
        lines = inputs.lines(month, settings.mode, &fresh.usage);
        if lines.is_empty() {
            return Ok(Outcome::Nothing);
        }
    }
    let currencies: BTreeSet<Currency> = lines.iter().map(|l| l.currency).collect();
    let mut issued = Vec::new();
    for currency in currencies {
        let mine: Vec<Line> = lines.iter().filter(|l| l.currency == currency).cloned().collect();
        let (subtotal, tax, total) = compute::totals(currency, &mine, settings.tax_rate);
        // Nothing to collect: a zero total, or a credit (corrections that owe the account more
        // than the month charges, e.g. a prepaid month's fee for an application deleted early).
        // A credit left pending could never be paid, and would show as revenue outstanding.
        let state = if total <= Decimal::ZERO { InvoiceState::Paid } else { InvoiceState::Pending };
        let number = if dry_run {
            None
        } else {
            let (id, number) =
                insert_invoice(&mut tx, account, month, currency, &mine, (subtotal, tax, total), state, settings)
                    .await?;
            // Mail and the first payment try are decided with the invoice.
            super::payments::on_issue(&mut tx, id, &options.public_url, options.charge).await?;
            // The run writes its invoices without the audited transition, so it raises their events here;
            // an invoice with nothing to pay is issued paid.
            let after = serde_json::json!({"state": state, "number": number.to_string(), "total": total.to_string(), "currency": currency.to_string()});
            let data = crate::webhooks::queue::data("invoice", Some(id), "billing run", None, Some(&after));
            crate::webhooks::queue::enqueue(&mut tx, crate::webhooks::EventType::InvoiceIssued, data.clone()).await?;
            if state == InvoiceState::Paid {
                crate::webhooks::queue::enqueue(&mut tx, crate::webhooks::EventType::InvoicePaid, data).await?;
            }
            Some(number)
        };
        issued.push(IssuedInvoice {
            account_id: account,
            number: number.map(|n| n.to_string()),
            currency: currency.to_string(),
            lines: mine.len(),
            total,
            state,
        });
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(Outcome::Invoices(issued))
}

#[allow(clippy::too_many_arguments)]
async fn insert_invoice(
    tx: &mut Transaction<'_, Postgres>,
    account: Uuid,
    month: Month,
    currency: Currency,
    lines: &[Line],
    (subtotal, tax, total): (Decimal, Decimal, Decimal),
    state: InvoiceState,
    settings: &BillingSettings,
) -> Result<(Uuid, InvoiceNumber)> {
    let id = Uuid::now_v7();
    let month_date = to_date(month);
    let sequence = sqlx::query_scalar!(
        "INSERT INTO invoice_sequences (month, last) VALUES ($1, 1)
         ON CONFLICT (month) DO UPDATE SET last = invoice_sequences.last + 1
         RETURNING last",
        month_date
    )
    .fetch_one(&mut **tx)
    .await?;
    let number = InvoiceNumber::new(month, sequence);
    let issuer = json!({
        "name": settings.provider_name,
        "address": settings.provider_address,
        "tax_id": settings.provider_tax_id,
        "payment_instructions": settings.payment_instructions,
    });
    let apps: Vec<Uuid> = lines.iter().map(|l| l.subject.application_id).collect();
    let kinds: Vec<String> = lines.iter().map(|l| l.kind.as_str().to_owned()).collect();
    let descriptions: Vec<String> = lines.iter().map(|l| l.description.clone()).collect();
    let quantities: Vec<Decimal> = lines.iter().map(|l| l.quantity).collect();
    let unit_prices: Vec<Decimal> = lines.iter().map(|l| l.unit_price).collect();
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let priced_fees: Vec<Option<Decimal>> = lines.iter().map(|l| l.priced_fee).collect();
    let priced_units: Vec<Option<i64>> = lines.iter().map(|l| l.priced_units).collect();
    let plans: Vec<Uuid> = lines.iter().map(|l| l.subject.plan_id).collect();
    let metrics: Vec<Option<Uuid>> = lines.iter().map(|l| l.subject.metric_id).collect();
    let months: Vec<time::Date> = lines.iter().map(|l| to_date(l.subject.service_month)).collect();
    // The run finalizes and issues in one step; each step is recorded.
    let mut steps: Vec<String> = vec!["open".into(), "finalized".into(), "pending".into()];
    if state == InvoiceState::Paid {
        steps.push("paid".into());
    }
    // The invoice, its lines and its steps in one statement: round trips dominate a run.
    let inserted = sqlx::query_scalar!(
        r#"WITH invoice AS (
               INSERT INTO invoices (id, account_id, number, period_start, period_end, currency, state, subtotal, tax_rate,
                                     tax, total, issued_at, due_at, paid_at, mode, issuer)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), now() + make_interval(days => $12),
                       CASE WHEN $7 = 'paid'::invoice_state THEN now() END, $13, $14)
               ON CONFLICT (account_id, period_start, currency, mode) DO NOTHING
               RETURNING id
           ), lines AS (
               INSERT INTO invoice_lines (id, invoice_id, application_id, subject_application_id, kind, description,
                                          quantity, unit_price, amount, plan_id, metric_id, service_month,
                                          priced_fee, priced_units)
               SELECT gen_random_uuid(), invoice.id, a.id, t.app, t.kind::invoice_line_kind, t.description, t.quantity,
                      t.unit_price, t.amount, p.id, m.id, t.service_month, t.priced_fee, t.priced_units
               FROM invoice
               CROSS JOIN unnest($15::uuid[], $16::text[], $17::text[], $18::numeric[], $19::numeric[], $20::numeric[],
                                 $21::uuid[], $22::uuid[], $23::date[], $25::numeric[], $26::int8[])
                    WITH ORDINALITY AS t(app, kind, description, quantity, unit_price, amount, plan, metric,
                                         service_month, priced_fee, priced_units, n)
               LEFT JOIN applications a ON a.id = t.app
               LEFT JOIN plans p ON p.id = t.plan
               LEFT JOIN metrics m ON m.id = t.metric
               ORDER BY t.n
           ), steps AS (
               INSERT INTO invoice_transitions (invoice_id, from_state, to_state, actor_label, note)
               SELECT invoice.id, lag(s) OVER (ORDER BY n), s, 'billing run',
                      CASE WHEN s <> 'paid' THEN ''
                           WHEN $11 < 0 THEN 'a credit: nothing to collect, owed to the account'
                           ELSE 'nothing to pay' END
               FROM invoice CROSS JOIN unnest($24::text[]) WITH ORDINALITY AS t(s, n)
               ORDER BY n
           )
           SELECT count(*) AS "inserted!" FROM invoice"#,
        id,
        account,
        number.as_str(),
        month_date,
        to_date(month.next()),
        currency.as_str(),
        state as InvoiceState,
        subtotal,
        settings.tax_rate,
        tax,
        total,
        settings.payment_terms_days,
        settings.mode as BillingMode,
        issuer,
        &apps,
        &kinds,
        &descriptions,
        &quantities,
        &unit_prices,
        &amounts,
        &plans,
        &metrics as &[Option<Uuid>],
        &months,
        &steps,
        &priced_fees as &[Option<Decimal>],
        &priced_units as &[Option<i64>]
    )
    .fetch_one(&mut **tx)
    .await?;
    if inserted == 0 {
        // Only reachable if the advisory lock was bypassed; the unique key still holds.
        return Err(Error::Conflict(format!("account {account} already has a {currency} invoice for {month}")));
    }
    Ok((id, number))
}

/// The inputs of `accounts` for `month` billed in `mode`: one query per table whatever the
/// number of accounts.
async fn load_page(conn: &mut PgConnection, accounts: &[Uuid], month: Month, mode: BillingMode) -> Result<Page> {
    let mut page = Page { accounts: accounts.iter().map(|id| (*id, Inputs::default())).collect(), usage: Usage::new() };
    load_subscriptions(conn, accounts, &mut page.accounts).await?;
    let apps: Vec<Uuid> =
        page.accounts.values().flat_map(|i| i.subscriptions.iter().map(|s| s.application_id)).collect();
    page.usage = load_usage(conn, &apps, month).await?;
    load_billed(conn, accounts, month, mode, &mut page.accounts).await?;
    Ok(page)
}

async fn load_subscriptions(
    conn: &mut PgConnection,
    accounts: &[Uuid],
    into: &mut HashMap<Uuid, Inputs>,
) -> Result<()> {
    let rows = sqlx::query!(
        r#"SELECT s.account_id, s.application_id, s.application_name, s.plan_id, s.started_at, s.ended_at,
                  a.trial_ends_at AS "trial_ends_at?",
                  p.name AS plan_name, p.setup_fee, p.monthly_fee, p.currency, p.time_zone
           FROM subscription_segments s
           JOIN plans p ON p.id = s.plan_id
           LEFT JOIN applications a ON a.id = s.application_id
           WHERE s.account_id = ANY($1)
           ORDER BY s.account_id, s.application_id, s.started_at, s.id"#,
        accounts
    )
    .fetch_all(&mut *conn)
    .await?;
    let plan_ids: Vec<Uuid> = rows.iter().map(|r| r.plan_id).collect::<BTreeSet<_>>().into_iter().collect();
    let prices = sqlx::query!(
        r#"SELECT r.plan_id, r.metric_id, m.system_name AS metric_name, r.min_units, r.max_units, r.price_per_unit,
                  COALESCE(pm.mode, 'graduated') AS "mode!: PricingMode"
           FROM pricing_rules r
           JOIN metrics m ON m.id = r.metric_id
           LEFT JOIN pricing_modes pm ON pm.plan_id = r.plan_id AND pm.metric_id = r.metric_id
           WHERE r.plan_id = ANY($1)
           ORDER BY r.plan_id, m.system_name, r.min_units"#,
        &plan_ids
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut pricing: HashMap<Uuid, Vec<MetricPricing>> = HashMap::new();
    for p in prices {
        let list = pricing.entry(p.plan_id).or_default();
        let tier = Tier { from: p.min_units, to: p.max_units, price: p.price_per_unit };
        match list.last_mut() {
            Some(last) if last.metric_id == p.metric_id => last.tiers.push(tier),
            _ => list.push(MetricPricing {
                metric_id: p.metric_id,
                metric_name: p.metric_name,
                mode: p.mode,
                tiers: vec![tier],
            }),
        }
    }
    // Plans are shared by every account of the page.
    let mut plans: HashMap<Uuid, Arc<PlanTerms>> = HashMap::new();
    for r in rows {
        let plan = match plans.get(&r.plan_id) {
            Some(plan) => plan.clone(),
            None => {
                let currency = Currency::new(r.currency.trim())
                    .map_err(|e| Error::Internal(format!("plan {}: {e}", r.plan_id)))?;
                let time_zone =
                    TimeZoneName::new(&r.time_zone).map_err(|e| Error::Internal(format!("plan {}: {e}", r.plan_id)))?;
                let plan = Arc::new(PlanTerms {
                    id: r.plan_id,
                    name: r.plan_name,
                    setup_fee: r.setup_fee,
                    monthly_fee: r.monthly_fee,
                    currency,
                    time_zone,
                    pricing: pricing.remove(&r.plan_id).unwrap_or_default(),
                });
                plans.insert(r.plan_id, plan.clone());
                plan
            }
        };
        let segment = Segment { plan, start: to_jiff(r.started_at), end: r.ended_at.map(to_jiff) };
        let subs = &mut into.entry(r.account_id).or_default().subscriptions;
        match subs.last_mut() {
            Some(sub) if sub.application_id == r.application_id => sub.segments.push(segment),
            _ => subs.push(Subscription {
                application_id: r.application_id,
                application_name: r.application_name,
                trial_ends_at: r.trial_ends_at.map(to_jiff),
                segments: vec![segment],
                // Set from the account's invoices in `load_billed`.
                setup_fee_billed: false,
            }),
        }
    }
    Ok(())
}

async fn load_usage(conn: &mut PgConnection, apps: &[Uuid], month: Month) -> Result<Usage> {
    let utc = TimeZoneName::utc();
    let from =
        month.previous().previous().previous().previous().in_zone(&utc).start - jiff::SignedDuration::from_hours(15);
    let to = month.in_zone(&utc).end + jiff::SignedDuration::from_hours(15);
    let rows = sqlx::query!(
        "SELECT application_id, metric_id, bucket_start, hits FROM usage_rollups
         WHERE application_id = ANY($1) AND granularity = 'month' AND bucket_start >= $2 AND bucket_start < $3",
        apps,
        to_time(from),
        to_time(to)
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| ((r.application_id, r.metric_id, to_jiff(r.bucket_start)), r.hits)).collect())
}

async fn load_billed(
    conn: &mut PgConnection,
    accounts: &[Uuid],
    month: Month,
    mode: BillingMode,
    into: &mut HashMap<Uuid, Inputs>,
) -> Result<()> {
    let rows = sqlx::query!(
        r#"SELECT i.account_id, l.subject_application_id AS "app!", l.plan_id AS "plan!", l.metric_id,
                  l.service_month AS "service_month!", l.kind AS "kind: LineKind", sum(l.amount) AS "amount!",
                  (array_agg(l.priced_fee ORDER BY i.id, l.created_at) FILTER (WHERE l.priced_fee IS NOT NULL))[1]
                      AS priced_fee,
                  max(l.priced_units) AS priced_units
           FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
           WHERE i.account_id = ANY($1) AND (i.state <> 'cancelled' OR i.charges_waived)
             AND l.subject_application_id IS NOT NULL AND l.plan_id IS NOT NULL AND l.service_month IS NOT NULL
           GROUP BY 1, 2, 3, 4, 5, 6"#,
        accounts
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let Some(service_month) = from_date(r.service_month) else { continue };
        let subject = Subject {
            application_id: r.app,
            plan_id: r.plan,
            metric_id: r.metric_id,
            service_month,
            setup: r.kind == LineKind::SetupFee,
        };
        let inputs = into.entry(r.account_id).or_default();
        let charged = inputs.billed.entry(subject).or_default();
        charged.amount += r.amount;
        // A monthly fee line and its corrections (adjustments) are one subject: the first
        // price recorded is the one the month was billed at.
        charged.fee = charged.fee.or(r.priced_fee);
        charged.units = charged.units.max(r.priced_units);
        if let Some(metric) = r.metric_id.filter(|_| r.kind != LineKind::SetupFee) {
            let usage = inputs.billed_usage.entry((r.app, metric, service_month)).or_default();
            usage.amount += r.amount;
            usage.units = usage.units.max(r.priced_units);
        }
    }
    // An application's setup fee is billed once, on its account's invoices (an application
    // never changes account). Asked per page, not per segment: a per-row subquery was planned
    // as a scan of every setup fee line ever billed.
    let setup = sqlx::query!(
        r#"SELECT DISTINCT i.account_id, l.subject_application_id AS "app!"
           FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id
           WHERE i.account_id = ANY($1) AND (i.state <> 'cancelled' OR i.charges_waived) AND l.kind = 'setup_fee'
             AND l.subject_application_id IS NOT NULL"#,
        accounts
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in setup {
        let subs = &mut into.entry(r.account_id).or_default().subscriptions;
        for sub in subs.iter_mut().filter(|s| s.application_id == r.app) {
            sub.setup_fee_billed = true;
        }
    }
    let invoices = sqlx::query!(
        r#"SELECT account_id, id, period_start, currency, state AS "state: InvoiceState", charges_waived,
                  mode AS "mode: BillingMode"
           FROM invoices
           WHERE account_id = ANY($1)
           ORDER BY account_id, id"#,
        accounts
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in invoices {
        let inputs = into.entry(r.account_id).or_default();
        let period = from_date(r.period_start);
        // Only an invoice of the same mode bills the period: after a switch from prepaid to
        // postpaid, the month whose fees went out in advance still has its usage to bill.
        inputs.period_billed |= period == Some(month) && r.mode == mode;
        // A month with an invoice, even one cancelled to be corrected, may have its fees
        // corrected: its charges stay owed, and its month can never be invoiced again.
        if let (Some(period), Ok(currency)) = (period, Currency::new(r.currency.trim())) {
            inputs.invoiced.insert((period, currency));
        }
        // A cancelled invoice that waived its charges still counts as having billed them.
        if r.state == InvoiceState::Cancelled && !r.charges_waived {
            continue;
        }
        inputs.invoice_ids.push(r.id);
    }
    Ok(())
}
