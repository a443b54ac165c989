//! Payments: the `PaymentProvider` seam, the manual and test providers, payments an
//! admin records, and the job that charges issued invoices and retries declines.
//!
//! Retries follow 3scale: with a provider that charges by itself, an invoice is due
//! for its first try when it is issued, then twice more, three days apart. A decline
//! moves it `pending → unpaid`; the third decline moves it to `failed`, and its
//! account's owners and every admin are told. Each try writes a `payments` row, the
//! transition, the audit entry and the mail in one transaction.

use std::str::FromStr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::invoice::{InvoiceAction, InvoiceState};
use super::invoices::{InvoiceSummary, summary_of, transition_in};
use super::money::Currency;
use super::notices;
use crate::audit::Actor;
use crate::stored::stored_enum;
use crate::{Error, Result};

/// Tries in all, the first at issue.
pub const MAX_TRIES: i16 = 3;
/// Days between two tries.
pub const RETRY_DAYS: i64 = 3;

stored_enum! {
    /// What became of a try or a recorded payment.
    pub enum PaymentOutcome as "payment_outcome" {
        Succeeded = "succeeded",
        Declined = "declined",
    }
}

/// A provider's answer to a charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The money is taken; `reference` is the provider's id of the charge.
    Succeeded { reference: String },
    /// Not taken, and why (shown to the account's owners: no secrets).
    Declined { reason: String },
}

/// Something that takes money for invoices. A card processor implements this and is
/// named in `TOLLGATE_PAYMENT_PROVIDER`; nothing else in billing changes.
pub trait PaymentProvider: Send + Sync {
    /// Stored with each payment (`^[a-z][a-z0-9_]{0,31}$`).
    fn name(&self) -> &'static str;
    /// Whether issued invoices are charged by the job; if not, admins record payments.
    fn charges_automatically(&self) -> bool;
    /// Charges `amount` for `invoice`. `attempt` (1…3) with the invoice id makes an
    /// idempotency key: a try the server crashed during is the same try again.
    fn charge<'a>(
        &'a self,
        invoice: &'a InvoiceSummary,
        amount: Decimal,
        currency: Currency,
        attempt: i16,
    ) -> BoxFuture<'a, Outcome>;
}

/// No automatic charge: an admin records each payment with its reference.
pub struct ManualProvider;

impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn charges_automatically(&self) -> bool {
        false
    }

    fn charge<'a>(&'a self, _: &'a InvoiceSummary, _: Decimal, _: Currency, _: i16) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::Declined { reason: "the manual provider takes no charges".into() } })
    }
}

/// For tests and demos: declines a total whose last two digits in minor units are
/// 13 (10.13 USD, 1013 JPY, 5.013 KWD), takes every other one.
pub struct TestProvider;

impl TestProvider {
    /// The rule, apart from the trait so it can be shown and tested.
    pub fn declines(amount: Decimal, currency: Currency) -> bool {
        let minor = currency.round(amount) * Decimal::from(10_i64.pow(currency.decimals()));
        (minor.trunc() % Decimal::from(100)).abs() == Decimal::from(13)
    }
}

impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    fn charges_automatically(&self) -> bool {
        true
    }

    fn charge<'a>(
        &'a self,
        invoice: &'a InvoiceSummary,
        amount: Decimal,
        currency: Currency,
        attempt: i16,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if TestProvider::declines(amount, currency) {
                Outcome::Declined { reason: "card declined (test provider: amounts ending in 13 decline)".into() }
            } else {
                Outcome::Succeeded { reference: format!("test-{}-{attempt}", invoice.number) }
            }
        })
    }
}

stored_enum! {
    /// The providers Tollgate ships, by the name `TOLLGATE_PAYMENT_PROVIDER` takes.
    pub enum ProviderName as "payment_provider_name" {
        Manual = "manual",
        Test = "test",
    }
}

impl ProviderName {
    pub fn provider(self) -> Arc<dyn PaymentProvider> {
        match self {
            ProviderName::Manual => Arc::new(ManualProvider),
            ProviderName::Test => Arc::new(TestProvider),
        }
    }
}

/// The server's provider, shared by the payment job, the billing run and handlers.
#[derive(Clone)]
pub struct Payments(pub Arc<dyn PaymentProvider>);

impl Payments {
    pub fn new(name: ProviderName) -> Payments {
        Payments(name.provider())
    }

    pub fn charges_automatically(&self) -> bool {
        self.0.charges_automatically()
    }
}

impl Default for Payments {
    fn default() -> Payments {
        Payments::new(ProviderName::Manual)
    }
}

impl FromStr for Payments {
    type Err = crate::UnknownName;

    fn from_str(s: &str) -> std::result::Result<Payments, Self::Err> {
        s.parse::<ProviderName>().map(Payments::new)
    }
}

/// A try or a recorded payment, as admins see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Payment {
    pub id: Uuid,
    pub provider: String,
    pub amount: Decimal,
    pub currency: String,
    pub reference: String,
    pub outcome: PaymentOutcome,
    pub error: Option<String>,
    /// 1…3 for automatic tries; none for a payment an admin recorded.
    pub attempt: Option<i16>,
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
}

/// An invoice's payments and tries, oldest first.
pub async fn list_for_invoice(pool: &PgPool, invoice: Uuid) -> Result<Vec<Payment>> {
    let rows = sqlx::query_as!(
        Payment,
        r#"SELECT id, provider, amount, currency, reference, outcome AS "outcome: PaymentOutcome", error, attempt,
                  actor_label AS actor, attempted_at
           FROM payments WHERE invoice_id = $1 ORDER BY attempted_at, id"#,
        invoice
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

struct NewPayment<'a> {
    invoice: Uuid,
    provider: &'a str,
    amount: Decimal,
    currency: &'a str,
    reference: &'a str,
    outcome: PaymentOutcome,
    error: Option<&'a str>,
    attempt: Option<i16>,
    actor: &'a str,
    at: OffsetDateTime,
}

async fn insert(conn: &mut PgConnection, p: NewPayment<'_>) -> Result<()> {
    // Providers' texts are cut to the columns' widths rather than lose the row.
    let reference: String = p.reference.chars().take(200).collect();
    let error: Option<String> = p.error.map(|e| e.chars().take(500).collect());
    sqlx::query!(
        "INSERT INTO payments (id, invoice_id, provider, amount, currency, reference, outcome, error, attempt, actor_label, attempted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        Uuid::now_v7(),
        p.invoice,
        p.provider,
        p.amount,
        p.currency,
        reference,
        p.outcome as PaymentOutcome,
        error,
        p.attempt,
        p.actor,
        p.at
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a payment an admin received (a bank transfer, a cheque): the invoice must be
/// pending or unpaid, and `amount` must be its total. The payment row, the move to
/// `paid` and the audit entry are one transaction.
pub async fn record_manual_payment(
    pool: &PgPool,
    invoice: Uuid,
    amount: Decimal,
    reference: &str,
    actor: &Actor,
) -> Result<InvoiceState> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(Error::invalid("reference", "say where the money came from, e.g. the bank transfer's id"));
    }
    if reference.chars().count() > 200 {
        return Err(Error::invalid("reference", "use at most 200 characters"));
    }
    if reference.chars().any(char::is_control) {
        return Err(Error::invalid("reference", "use no control characters"));
    }
    if amount <= Decimal::ZERO {
        return Err(Error::invalid("amount", "must be more than zero"));
    }
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT state AS "state: InvoiceState", total, currency FROM invoices WHERE id = $1 FOR UPDATE"#,
        invoice
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    row.state
        .apply(InvoiceAction::Pay)
        .map_err(|e| Error::invalid("state", format!("{e}: only pending and unpaid invoices take payments")))?;
    let currency =
        Currency::new(row.currency.trim()).map_err(|e| Error::Internal(format!("invoice {invoice}: {e}")))?;
    if amount != row.total {
        return Err(Error::invalid(
            "amount",
            format!("must equal the invoice's total, {}; part payments are not recorded", currency.format(row.total)),
        ));
    }
    insert(
        &mut tx,
        NewPayment {
            invoice,
            provider: ManualProvider.name(),
            amount: row.total,
            currency: currency.as_str(),
            reference,
            outcome: PaymentOutcome::Succeeded,
            error: None,
            attempt: None,
            actor: &actor.label,
            at: OffsetDateTime::now_utc(),
        },
    )
    .await?;
    let (_, to) =
        transition_in(&mut tx, invoice, InvoiceAction::Pay, actor, &format!("payment recorded: {reference}")).await?;
    tx.commit().await?;
    Ok(to)
}

/// In the issuing transaction: the "invoice issued" mail, and with an automatic provider
/// an unpaid invoice is due for its first try at once.
pub(crate) async fn on_issue(conn: &mut PgConnection, invoice: Uuid, base_url: &str, charge: bool) -> Result<()> {
    if charge {
        sqlx::query!(
            "UPDATE invoices SET next_attempt_at = now() WHERE id = $1 AND state = 'pending' AND total > 0",
            invoice
        )
        .execute(&mut *conn)
        .await?;
    }
    notices::issued(conn, invoice, base_url).await
}

/// What one round of the payment job did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub paid: usize,
    pub declined: usize,
    pub failed: usize,
}

/// How many invoices a round tries at most; the job comes back for the rest.
const ROUND: usize = 50;

/// Tries every invoice whose try is due at `now`, each in its own transaction holding
/// the invoice's row (`FOR UPDATE SKIP LOCKED`), so replicas never try one twice.
/// `now` is a parameter so tests move through the retry schedule without waiting.
pub async fn run_due(
    pool: &PgPool,
    provider: &dyn PaymentProvider,
    base_url: &str,
    now: OffsetDateTime,
) -> Result<Round> {
    let mut round = Round::default();
    if !provider.charges_automatically() {
        return Ok(round);
    }
    let actor = Actor::system(&format!("payments ({})", provider.name()));
    for _ in 0..ROUND {
        let mut tx = pool.begin().await?;
        let Some(r) = sqlx::query!(
            r#"SELECT id, account_id, number, to_char(period_start, 'YYYY-MM') AS "period!", currency,
                      state AS "state: InvoiceState", subtotal, tax, total, issued_at, due_at, paid_at, payment_attempts
               FROM invoices
               WHERE next_attempt_at <= $1 AND state IN ('pending', 'unpaid')
               ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"#,
            now
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            tx.commit().await?;
            break;
        };
        let currency =
            Currency::new(r.currency.trim()).map_err(|e| Error::Internal(format!("invoice {}: {e}", r.id)))?;
        let attempt = r.payment_attempts.saturating_add(1);
        let summary = summary_of!(r);
        let outcome = provider.charge(&summary, summary.total, currency, attempt).await;
        let (reference, error, result) = match &outcome {
            Outcome::Succeeded { reference } => (reference.as_str(), None, PaymentOutcome::Succeeded),
            Outcome::Declined { reason } => ("", Some(reason.as_str()), PaymentOutcome::Declined),
        };
        insert(
            &mut tx,
            NewPayment {
                invoice: summary.id,
                provider: provider.name(),
                amount: summary.total,
                currency: currency.as_str(),
                reference,
                outcome: result,
                error,
                attempt: Some(attempt),
                actor: &actor.label,
                at: now,
            },
        )
        .await?;
        sqlx::query!("UPDATE invoices SET payment_attempts = $2 WHERE id = $1", summary.id, attempt)
            .execute(&mut *tx)
            .await?;
        match outcome {
            Outcome::Succeeded { reference } => {
                let note = format!("charged by {} ({reference}), try {attempt}", provider.name());
                transition_in(&mut tx, summary.id, InvoiceAction::Pay, &actor, &note).await?;
                round.paid += 1;
            }
            Outcome::Declined { reason } => {
                let note = format!("try {attempt} of {MAX_TRIES} declined: {reason}");
                if summary.state == InvoiceState::Pending {
                    transition_in(&mut tx, summary.id, InvoiceAction::MarkUnpaid, &actor, &note).await?;
                }
                let next = if attempt >= MAX_TRIES {
                    transition_in(&mut tx, summary.id, InvoiceAction::Fail, &actor, &note).await?;
                    round.failed += 1;
                    None
                } else {
                    let next = now + time::Duration::days(RETRY_DAYS);
                    sqlx::query!("UPDATE invoices SET next_attempt_at = $2 WHERE id = $1", summary.id, next)
                        .execute(&mut *tx)
                        .await?;
                    round.declined += 1;
                    Some(next)
                };
                notices::declined(&mut tx, summary.id, &reason, next, base_url).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_test_provider_declines_amounts_ending_in_13_minor_units() {
        let usd = Currency::new("USD").unwrap();
        let jpy = Currency::new("JPY").unwrap();
        let kwd = Currency::new("KWD").unwrap();
        assert!(TestProvider::declines(d("10.13"), usd));
        assert!(TestProvider::declines(d("0.13"), usd));
        assert!(!TestProvider::declines(d("10.14"), usd));
        assert!(!TestProvider::declines(d("13.00"), usd));
        assert!(TestProvider::declines(d("1013"), jpy));
        assert!(!TestProvider::declines(d("1014"), jpy));
        assert!(TestProvider::declines(d("5.013"), kwd));
        assert!(!TestProvider::declines(d("5.13"), kwd));
    }

    #[test]
    fn provider_names_are_manual_and_test_and_nothing_else() {
        assert!(!"manual".parse::<Payments>().unwrap().charges_automatically());
        assert!("test".parse::<Payments>().unwrap().charges_automatically());
        assert!("stripe".parse::<Payments>().is_err());
    }
}
