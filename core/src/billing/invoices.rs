//! Invoices: an account's list, and moving an invoice through its life cycle. The
//! admins' view of every account's invoices is [`super::directory`].

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::invoice::{InvoiceAction, InvoiceState};
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

/// An [`InvoiceSummary`] from a query row that selects its columns under their own
/// names (lists, the admin view and the payment job read the same columns).
macro_rules! summary_of {
    ($r:ident) => {
        $crate::billing::invoices::InvoiceSummary {
            id: $r.id,
            account_id: $r.account_id,
            number: $r.number,
            period: $r.period,
            currency: $r.currency,
            state: $r.state,
            subtotal: $r.subtotal,
            tax: $r.tax,
            total: $r.total,
            issued_at: $r.issued_at,
            due_at: $r.due_at,
            paid_at: $r.paid_at,
        }
    };
}
pub(crate) use summary_of;

/// The account's invoices, newest period first.
pub async fn list_for_account(pool: &PgPool, account: Uuid) -> Result<Vec<InvoiceSummary>> {
    Ok(sqlx::query_as!(
        InvoiceSummary,
        r#"SELECT id, account_id, number, to_char(period_start, 'YYYY-MM') AS "period!", currency, state AS "state: InvoiceState",
                  subtotal, tax, total, issued_at, due_at, paid_at
           FROM invoices WHERE account_id = $1 ORDER BY period_start DESC, number DESC"#,
        account
    )
    .fetch_all(pool)
    .await?)
}

/// Moves an invoice through its life cycle, recording the step and an audit entry in the
/// same transaction. A move the life cycle does not allow is invalid input (422), naming
/// the action and the state.
///
/// A cancellation with `waive` waives the invoice's charges: no later run bills them again.
/// Without it they stay owed, and the next run bills them as adjustments (a wrong invoice
/// cancelled and corrected).
pub async fn transition(
    pool: &PgPool,
    invoice: Uuid,
    action: InvoiceAction,
    actor: &Actor,
    note: &str,
    waive: bool,
) -> Result<InvoiceState> {
    if note.chars().count() > 500 {
        return Err(Error::invalid("note", "use at most 500 characters"));
    }
    if waive && action != InvoiceAction::Cancel {
        return Err(Error::invalid("waive", "only a cancellation waives an invoice's charges"));
    }
    let mut tx = pool.begin().await?;
    let (_, to) = transition_in(&mut tx, invoice, action, actor, note).await?;
    if waive {
        sqlx::query!("UPDATE invoices SET charges_waived = true WHERE id = $1", invoice).execute(&mut *tx).await?;
    }
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
