//! Issued invoices: reading them and moving them through their life cycle.

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::compute::LineKind;
use super::invoice::{InvoiceAction, InvoiceState};
use super::money::Currency;
use super::period::Month;
use crate::audit::{self, Actor, Entry};
use crate::{Error, Result};

/// An invoice as lists show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InvoiceSummary {
    pub id: Uuid,
    pub account_id: Uuid,
    pub number: String,
    /// `YYYY-MM`.
    pub period: String,
    pub currency: String,
    pub state: InvoiceState,
    pub subtotal: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    #[serde(with = "time::serde::rfc3339::option")]
    pub issued_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
}

/// The account's invoices, newest period first.
pub async fn list_for_account(pool: &PgPool, account: Uuid) -> Result<Vec<InvoiceSummary>> {
    let rows = sqlx::query!(
        r#"SELECT id, account_id, number, to_char(period_start, 'YYYY-MM') AS "period!", currency, state AS "state: InvoiceState",
                  subtotal, tax, total, issued_at, due_at, paid_at
           FROM invoices WHERE account_id = $1 ORDER BY period_start DESC, number DESC"#,
        account
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| InvoiceSummary {
            id: r.id,
            account_id: r.account_id,
            number: r.number,
            period: r.period,
            currency: r.currency,
            state: r.state,
            subtotal: r.subtotal,
            tax: r.tax,
            total: r.total,
            issued_at: r.issued_at,
            due_at: r.due_at,
            paid_at: r.paid_at,
        })
        .collect())
}

/// Which invoices a list shows; `None` is any.
#[derive(Clone, Debug, Default)]
pub struct InvoiceFilter {
    pub state: Option<InvoiceState>,
    /// Invoices of this account.
    pub account_id: Option<Uuid>,
    /// Invoices of accounts whose name contains this.
    pub account_name: Option<String>,
    pub period: Option<Month>,
    pub currency: Option<Currency>,
}

/// An invoice in the admin list: the summary and its account's name.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InvoiceRow {
    pub account_name: String,
    #[serde(flatten)]
    pub invoice: InvoiceSummary,
}

/// Invoices matching `filter`, newest period first, at most `limit`.
pub async fn list(pool: &PgPool, filter: &InvoiceFilter, limit: i64) -> Result<Vec<InvoiceRow>> {
    let period = filter.period.map(|m| m.to_string());
    let currency = filter.currency.map(|c| c.as_str().to_owned());
    let name = filter.account_name.as_deref().map(crate::db::contains_pattern);
    let rows = sqlx::query!(
        r#"SELECT i.id, i.account_id, a.name AS account_name, i.number, to_char(i.period_start, 'YYYY-MM') AS "period!",
                  i.currency, i.state AS "state: InvoiceState", i.subtotal, i.tax, i.total, i.issued_at, i.due_at, i.paid_at
           FROM invoices i JOIN accounts a ON a.id = i.account_id
           WHERE ($1::invoice_state IS NULL OR i.state = $1)
             AND ($2::uuid IS NULL OR i.account_id = $2)
             AND ($3::text IS NULL OR a.name ILIKE $3)
             AND ($4::text IS NULL OR i.period_start = ($4 || '-01')::date)
             AND ($5::text IS NULL OR i.currency = $5)
           ORDER BY i.period_start DESC, i.number DESC
           LIMIT $6"#,
        filter.state as Option<InvoiceState>,
        filter.account_id,
        name,
        period,
        currency,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| InvoiceRow {
            account_name: r.account_name,
            invoice: InvoiceSummary {
                id: r.id,
                account_id: r.account_id,
                number: r.number,
                period: r.period,
                currency: r.currency,
                state: r.state,
                subtotal: r.subtotal,
                tax: r.tax,
                total: r.total,
                issued_at: r.issued_at,
                due_at: r.due_at,
                paid_at: r.paid_at,
            },
        })
        .collect())
}

/// The provider's details as printed on an issued invoice.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Issuer {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub tax_id: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct InvoiceLineView {
    pub kind: LineKind,
    pub description: String,
    /// `YYYY-MM`, when the line has a service month.
    pub service_month: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

/// One step of an invoice's life, and who took it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TransitionView {
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    pub note: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An invoice with everything its page shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InvoiceDetail {
    pub account_name: String,
    #[serde(flatten)]
    pub invoice: InvoiceSummary,
    pub tax_rate: Decimal,
    /// `None` until issued.
    pub issuer: Option<Issuer>,
    pub lines: Vec<InvoiceLineView>,
    /// Oldest first.
    pub transitions: Vec<TransitionView>,
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<InvoiceDetail> {
    let r = sqlx::query!(
        r#"SELECT i.id, i.account_id, a.name AS account_name, i.number, to_char(i.period_start, 'YYYY-MM') AS "period!",
                  i.currency, i.state AS "state: InvoiceState", i.subtotal, i.tax_rate, i.tax, i.total, i.issued_at, i.due_at,
                  i.paid_at, i.issuer
           FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE i.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    let lines = sqlx::query!(
        r#"SELECT kind AS "kind: LineKind", description, to_char(service_month, 'YYYY-MM') AS service_month, quantity, unit_price, amount
           FROM invoice_lines WHERE invoice_id = $1 ORDER BY created_at, id"#,
        id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|l| InvoiceLineView {
        kind: l.kind,
        description: l.description,
        service_month: l.service_month,
        quantity: l.quantity.normalize(),
        unit_price: l.unit_price.normalize(),
        amount: l.amount,
    })
    .collect();
    let transitions = sqlx::query!(
        "SELECT from_state, to_state, actor_label, note, at FROM invoice_transitions WHERE invoice_id = $1 ORDER BY at, id",
        id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|t| TransitionView { from_state: t.from_state, to_state: t.to_state, actor: t.actor_label, note: t.note, at: t.at })
    .collect();
    // A malformed issuer is shown as blank rather than failing the page.
    let issuer = r.issuer.map(|v| serde_json::from_value(v).unwrap_or_default());
    Ok(InvoiceDetail {
        account_name: r.account_name,
        invoice: InvoiceSummary {
            id: r.id,
            account_id: r.account_id,
            number: r.number,
            period: r.period,
            currency: r.currency,
            state: r.state,
            subtotal: r.subtotal,
            tax: r.tax,
            total: r.total,
            issued_at: r.issued_at,
            due_at: r.due_at,
            paid_at: r.paid_at,
        },
        tax_rate: r.tax_rate,
        issuer,
        lines,
        transitions,
    })
}

/// Moves an invoice through its life cycle, recording the step and an audit entry in the
/// same transaction. A move the life cycle does not allow is invalid input (422), naming
/// the action and the state.
pub async fn transition(
    pool: &PgPool,
    invoice: Uuid,
    action: InvoiceAction,
    actor: &Actor,
    note: &str,
) -> Result<InvoiceState> {
    if note.chars().count() > 500 {
        return Err(Error::invalid("note", "use at most 500 characters"));
    }
    let mut tx = pool.begin().await?;
    let (_, to) = transition_in(&mut tx, invoice, action, actor, note).await?;
    tx.commit().await?;
    Ok(to)
}

/// [`transition`] inside the caller's transaction (payments pay, mark unpaid and fail
/// invoices together with their payment rows); returns the states before and after.
pub(crate) async fn transition_in(
    tx: &mut sqlx::PgConnection,
    invoice: Uuid,
    action: InvoiceAction,
    actor: &Actor,
    note: &str,
) -> Result<(InvoiceState, InvoiceState)> {
    let from =
        sqlx::query_scalar!(r#"SELECT state AS "state: InvoiceState" FROM invoices WHERE id = $1 FOR UPDATE"#, invoice)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
    let to = from.apply(action).map_err(|e| Error::invalid("action", e.to_string()))?;
    // Only pending and unpaid invoices wait for an automatic try.
    sqlx::query!(
        "UPDATE invoices SET state = $2, updated_at = now(),
                issued_at = CASE WHEN $2 = 'pending'::invoice_state THEN now() ELSE issued_at END,
                paid_at = CASE WHEN $2 = 'paid'::invoice_state THEN now() ELSE paid_at END,
                next_attempt_at = CASE WHEN $2 IN ('pending'::invoice_state, 'unpaid'::invoice_state) THEN next_attempt_at END
         WHERE id = $1",
        invoice,
        to as InvoiceState
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO invoice_transitions (invoice_id, from_state, to_state, actor_label, note) VALUES ($1, $2, $3, $4, $5)",
        invoice,
        from.as_str(),
        to.as_str(),
        actor.label,
        note
    )
    .execute(&mut *tx)
    .await?;
    let action_name = format!("invoice.{action}");
    audit::record(
        tx,
        actor,
        Entry {
            action: &action_name,
            entity: "invoice",
            entity_id: Some(invoice),
            before: Some(json!({"state": from})),
            after: Some(json!({"state": to, "note": note})),
        },
    )
    .await?;
    Ok((from, to))
}
