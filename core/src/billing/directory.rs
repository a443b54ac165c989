//! Invoices as admins see them, the one read model behind the admin pages and the
//! admin REST API: every account's invoices, filtered and paged, and one invoice
//! whole (issuer, lines, transitions, payments and the next automatic try).

use rust_decimal::Decimal;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::compute::LineKind;
use super::document::Issuer;
use super::invoice::InvoiceState;
use super::invoices::{InvoiceSummary, summary_of};
use super::money::Currency;
use super::payments::{Payment, list_for_invoice};
use super::period::Month;
use crate::{Error, Result};

/// What to list; every filter is optional and they combine with AND.
#[derive(Clone, Debug, Default)]
pub struct InvoiceFilter {
    pub state: Option<InvoiceState>,
    pub account_id: Option<Uuid>,
    /// Invoices of accounts whose name contains this, ignoring case.
    pub account_name: Option<String>,
    pub period: Option<Month>,
    pub currency: Option<Currency>,
    /// Only the invoices after this one in the list (keyset paging: the last id of the
    /// previous page), read from where it stopped at any depth. An unknown id leaves the page empty.
    pub after_id: Option<Uuid>,
}

/// An invoice in the admin list: its summary and the account's name.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdminInvoice {
    #[serde(flatten)]
    pub invoice: InvoiceSummary,
    pub account_name: String,
}

fn date(m: Month) -> Option<time::Date> {
    let d = m.first_day();
    let month = time::Month::try_from(u8::try_from(d.month()).ok()?).ok()?;
    time::Date::from_calendar_date(i32::from(d.year()), month, 1).ok()
}

/// One page of invoices, newest period first, and how many match (counted up to
/// `COUNT_LIMIT + 1`).
pub async fn list(pool: &PgPool, filter: &InvoiceFilter, limit: i64, offset: i64) -> Result<(Vec<AdminInvoice>, i64)> {
    let period = match filter.period {
        Some(m) => Some(date(m).ok_or_else(|| Error::invalid("period", "not a month Tollgate can bill"))?),
        None => None,
    };
    let currency = filter.currency.map(|c| c.as_str().to_owned());
    let name = filter.account_name.as_deref().map(crate::db::contains_pattern);
    let rows = sqlx::query!(
        r#"SELECT i.id, i.account_id, a.name AS account_name, i.number, to_char(i.period_start, 'YYYY-MM') AS "period!",
                  i.currency, i.state AS "state: InvoiceState", i.subtotal, i.tax, i.total, i.issued_at, i.due_at, i.paid_at
           FROM invoices i JOIN accounts a ON a.id = i.account_id
           WHERE ($1::invoice_state IS NULL OR i.state = $1) AND ($2::uuid IS NULL OR i.account_id = $2)
             AND ($3::date IS NULL OR i.period_start = $3) AND ($4::text IS NULL OR i.currency = $4)
             AND ($5::text IS NULL OR a.name ILIKE $5)
             AND ($8::uuid IS NULL OR (i.period_start, i.number) < (SELECT period_start, number FROM invoices WHERE id = $8))
           ORDER BY i.period_start DESC, i.number DESC
           LIMIT $6 OFFSET $7"#,
        filter.state as Option<InvoiceState>,
        filter.account_id,
        period,
        currency,
        name,
        limit,
        offset,
        filter.after_id
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM (
             SELECT 1 FROM invoices i JOIN accounts a ON a.id = i.account_id
             WHERE ($1::invoice_state IS NULL OR i.state = $1) AND ($2::uuid IS NULL OR i.account_id = $2)
               AND ($3::date IS NULL OR i.period_start = $3) AND ($4::text IS NULL OR i.currency = $4)
               AND ($5::text IS NULL OR a.name ILIKE $5)
             LIMIT $6
           ) AS matching"#,
        filter.state as Option<InvoiceState>,
        filter.account_id,
        period,
        currency,
        name,
        crate::db::COUNT_LIMIT + 1
    )
    .fetch_one(pool)
    .await?;
    let items =
        rows.into_iter().map(|r| AdminInvoice { invoice: summary_of!(r), account_name: r.account_name }).collect();
    Ok((items, total))
}

/// One line of an invoice.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LineView {
    pub kind: LineKind,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
    /// `YYYY-MM`, the month the line charges for.
    pub service_month: Option<String>,
    pub application_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
}

/// One step of an invoice's life cycle.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TransitionView {
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    pub note: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An invoice whole.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InvoiceDetail {
    #[serde(flatten)]
    pub invoice: AdminInvoice,
    pub tax_rate: Decimal,
    /// The provider's details as printed when issued; `None` before.
    pub issuer: Option<Issuer>,
    /// Automatic tries made so far.
    pub payment_attempts: i16,
    /// When the next automatic try is due; `None` when none is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub lines: Vec<LineView>,
    pub transitions: Vec<TransitionView>,
    pub payments: Vec<Payment>,
}

/// One invoice of any account, or `NotFound`.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<InvoiceDetail> {
    let r = sqlx::query!(
        r#"SELECT i.id, i.account_id, a.name AS account_name, i.number, to_char(i.period_start, 'YYYY-MM') AS "period!",
                  i.currency, i.state AS "state: InvoiceState", i.subtotal, i.tax_rate, i.tax, i.total, i.issued_at, i.due_at,
                  i.paid_at, i.issuer, i.payment_attempts, i.next_attempt_at
           FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE i.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    let lines = sqlx::query!(
        r#"SELECT kind AS "kind: LineKind", description, quantity, unit_price, amount,
                  to_char(service_month, 'YYYY-MM') AS service_month, subject_application_id, plan_id
           FROM invoice_lines WHERE invoice_id = $1 ORDER BY service_month NULLS FIRST, kind, description, id"#,
        id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|l| LineView {
        kind: l.kind,
        description: l.description,
        quantity: l.quantity,
        unit_price: l.unit_price,
        amount: l.amount,
        service_month: l.service_month,
        application_id: l.subject_application_id,
        plan_id: l.plan_id,
    })
    .collect();
    let transitions = sqlx::query_as!(
        TransitionView,
        r#"SELECT from_state, to_state, actor_label AS actor, note, at FROM invoice_transitions
           WHERE invoice_id = $1 ORDER BY at, id"#,
        id
    )
    .fetch_all(pool)
    .await?;
    let payments = list_for_invoice(pool, id).await?;
    // A malformed issuer shows as blanks rather than failing the page.
    let issuer = r.issuer.map(|v| serde_json::from_value(v).unwrap_or_default());
    Ok(InvoiceDetail {
        invoice: AdminInvoice { invoice: summary_of!(r), account_name: r.account_name },
        tax_rate: r.tax_rate,
        issuer,
        payment_attempts: r.payment_attempts,
        next_attempt_at: r.next_attempt_at,
        lines,
        transitions,
        payments,
    })
}
