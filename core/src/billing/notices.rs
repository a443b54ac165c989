//! Who hears about an invoice, and how: mail through the outbox and portal
//! notifications, always written in the transaction that decides what happened
//! (issue, a declined try, the final failure).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::money::Currency;
use crate::mail::messages::{self, InvoiceFacts};
use crate::notifications::{admins, tell, verified_owners};
use crate::{Error, Result};

/// An invoice as its notices describe it.
struct Invoice {
    id: Uuid,
    account_id: Uuid,
    account_name: String,
    facts: InvoiceFacts,
    paid: bool,
}

/// `YYYY-MM-DD` (UTC), as every invoice page shows a day.
fn day(t: OffsetDateTime) -> String {
    super::document::day(Some(t))
}

async fn load(conn: &mut PgConnection, invoice: Uuid, base_url: &str, admin: bool) -> Result<Invoice> {
    let r = sqlx::query!(
        r#"SELECT i.id, i.account_id, a.name AS account_name, i.number, to_char(i.period_start, 'YYYY-MM') AS "period!",
                  i.currency, i.total, i.due_at, i.state = 'paid' AS "paid!"
           FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE i.id = $1"#,
        invoice
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let currency = Currency::new(r.currency.trim()).map_err(|e| Error::Internal(format!("invoice {invoice}: {e}")))?;
    let path = if admin { format!("/admin/invoices/{}", r.id) } else { format!("/invoices/{}", r.id) };
    Ok(Invoice {
        id: r.id,
        account_id: r.account_id,
        account_name: r.account_name,
        facts: InvoiceFacts {
            number: r.number,
            period: r.period,
            total: currency.format(r.total),
            due: r.due_at.map(day),
            link: format!("{base_url}{path}"),
            credit: r.total.is_sign_negative() && !r.total.is_zero(),
        },
        paid: r.paid,
    })
}

/// "Invoice issued", to the account's owners, in the issuing transaction.
pub(crate) async fn issued(conn: &mut PgConnection, invoice: Uuid, base_url: &str) -> Result<()> {
    let inv = load(conn, invoice, base_url, false).await?;
    let link = format!("/invoices/{}", inv.id);
    let body = format!("Invoice {} for {}: {}.", inv.facts.number, inv.facts.period, inv.facts.total);
    for (user, email) in verified_owners(conn, inv.account_id).await? {
        let mail = messages::invoice_issued(&email, &inv.facts, inv.paid);
        tell(conn, user, &mail, "invoice_issued", &body, &link).await?;
    }
    Ok(())
}

/// "Payment failed", to the account's owners, for a declined try; `next_try` is when
/// the next one is due, `None` after the last. After the last, admins are told too.
pub(crate) async fn declined(
    conn: &mut PgConnection,
    invoice: Uuid,
    reason: &str,
    next_try: Option<OffsetDateTime>,
    base_url: &str,
) -> Result<()> {
    let inv = load(conn, invoice, base_url, false).await?;
    let link = format!("/invoices/{}", inv.id);
    let next = next_try.map(day);
    let body = match &next {
        Some(date) => format!("The payment of invoice {} was declined; the next try is on {date}.", inv.facts.number),
        None => format!("The last payment try of invoice {} was declined; the invoice failed.", inv.facts.number),
    };
    let kind = if next.is_some() { "payment_failed" } else { "invoice_failed" };
    for (user, email) in verified_owners(conn, inv.account_id).await? {
        let mail = messages::payment_failed(&email, &inv.facts, reason, next.as_deref());
        tell(conn, user, &mail, kind, &body, &link).await?;
    }
    if next.is_none() {
        let admin_view = load(conn, invoice, base_url, true).await?;
        let link = format!("/admin/invoices/{}", inv.id);
        let body = format!("Invoice {} of {} failed its last payment try.", inv.facts.number, inv.account_name);
        for (user, email) in admins(conn).await? {
            let mail = messages::invoice_failed_admin(&email, &admin_view.facts, &inv.account_name, reason);
            tell(conn, user, &mail, "invoice_failed", &body, &link).await?;
        }
    }
    Ok(())
}
