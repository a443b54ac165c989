//! An issued invoice as the account it bills sees it: the document the portal
//! shows, prints and turns into a PDF. Drafts (`open`, `finalized`) are not
//! documents yet, so they are not found, like another account's invoices.

use rust_decimal::Decimal;
use sqlx::PgPool;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::compute::LineKind;
use super::invoice::InvoiceState;
use super::invoices::{InvoiceSummary, list_for_account};
use super::money::Currency;
use crate::accounts::AccountId;
use crate::{Error, Result};

/// The provider's details frozen on the invoice when it was issued.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Issuer {
    pub name: String,
    pub address: String,
    pub tax_id: String,
    /// How to pay, as the billing settings said at issue.
    pub payment_instructions: String,
}

/// One line of an invoice, as stored (each amount rounded once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentLine {
    pub kind: LineKind,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

/// Everything an invoice shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceDocument {
    pub id: Uuid,
    pub number: String,
    /// The billed account's name.
    pub account_name: String,
    /// The billing month, `YYYY-MM`.
    pub period: String,
    /// The period's first day and the day after its last.
    pub period_start: Date,
    pub period_end: Date,
    pub currency: Currency,
    pub state: InvoiceState,
    pub issuer: Issuer,
    pub lines: Vec<DocumentLine>,
    pub subtotal: Decimal,
    /// 0.2 is 20 %.
    pub tax_rate: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub issued_at: Option<OffsetDateTime>,
    pub due_at: Option<OffsetDateTime>,
    pub paid_at: Option<OffsetDateTime>,
}

impl InvoiceDocument {
    /// The period's last day (the period end is exclusive).
    pub fn period_last_day(&self) -> Date {
        self.period_end.previous_day().unwrap_or(self.period_end)
    }

    /// An amount in the invoice's currency, to its minor unit: `12.50 USD`, `1235 JPY`.
    pub fn money(&self, amount: &Decimal) -> String {
        self.currency.format(*amount)
    }

    /// A unit price, as [`Currency::price`] writes it.
    pub fn price(&self, price: &Decimal) -> String {
        self.currency.price(*price)
    }

    /// Never issued (`open`, `finalized`, or cancelled before issue): not a document
    /// the account was sent, and its lines may still change.
    pub fn is_draft(&self) -> bool {
        self.issued_at.is_none()
    }

    /// The payment instructions to print: the issuer's, while the invoice is issued, not
    /// settled and has something to pay.
    pub fn payment_instructions(&self) -> Option<&str> {
        let awaiting = matches!(self.state, InvoiceState::Pending | InvoiceState::Unpaid | InvoiceState::Failed);
        let text = self.issuer.payment_instructions.trim();
        (awaiting && !self.is_draft() && self.total > Decimal::ZERO && !text.is_empty()).then_some(text)
    }

    /// The tax rate as a percentage: `20 %`, `7.5 %`.
    pub fn tax_percent(&self) -> String {
        format!("{} %", (self.tax_rate * Decimal::ONE_HUNDRED).normalize())
    }
}

/// A quantity without trailing zeros: `1`, `0.354839`, `1001`.
pub fn quantity(q: &Decimal) -> String {
    q.normalize().to_string()
}

/// A day as `YYYY-MM-DD` (UTC), or a dash.
pub fn day(at: Option<OffsetDateTime>) -> String {
    at.map(|t| t.to_offset(time::UtcOffset::UTC).date().to_string()).unwrap_or_else(|| "-".to_owned())
}

/// Whether developers may see an invoice: once issued, whatever happened after.
fn visible(state: InvoiceState, issued_at: Option<OffsetDateTime>) -> bool {
    state.is_issued() && issued_at.is_some()
}

/// The account's issued invoices, newest period first.
pub async fn issued_for_account(pool: &PgPool, account: AccountId) -> Result<Vec<InvoiceSummary>> {
    let all = list_for_account(pool, account.0).await?;
    Ok(all.into_iter().filter(|i| visible(i.state, i.issued_at)).collect())
}

/// One issued invoice of the account; a draft or another account's invoice is `NotFound`.
pub async fn for_account(pool: &PgPool, account: AccountId, id: Uuid) -> Result<InvoiceDocument> {
    let doc = load(pool, id, Some(account)).await?;
    if visible(doc.state, doc.issued_at) { Ok(doc) } else { Err(Error::NotFound) }
}

/// Any invoice, drafts included, for an admin (a draft's document says it is one:
/// [`InvoiceDocument::is_draft`]).
pub async fn for_admin(pool: &PgPool, id: Uuid) -> Result<InvoiceDocument> {
    load(pool, id, None).await
}

/// The invoice, of `account` when one is given.
async fn load(pool: &PgPool, id: Uuid, account: Option<AccountId>) -> Result<InvoiceDocument> {
    let row = sqlx::query!(
        r#"SELECT i.id, i.number, a.name AS account_name, to_char(i.period_start, 'YYYY-MM') AS "period!",
                  i.period_start, i.period_end, i.currency, i.state AS "state: InvoiceState", i.issuer,
                  i.subtotal, i.tax_rate, i.tax, i.total, i.issued_at, i.due_at, i.paid_at
           FROM invoices i JOIN accounts a ON a.id = i.account_id
           WHERE i.id = $1 AND ($2::uuid IS NULL OR i.account_id = $2)"#,
        id,
        account.map(|a| a.0)
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    let currency = Currency::new(row.currency.trim())
        .map_err(|e| Error::Internal(format!("invoice {id} has a bad currency: {e}")))?;
    // A missing or partial issuer prints as blanks rather than failing the page.
    let issuer = row.issuer.and_then(|v| serde_json::from_value::<Issuer>(v).ok()).unwrap_or_default();
    let lines = sqlx::query!(
        r#"SELECT kind AS "kind: LineKind", description, quantity, unit_price, amount
           FROM invoice_lines WHERE invoice_id = $1
           ORDER BY service_month NULLS FIRST, kind, description, id"#,
        id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|l| DocumentLine {
        kind: l.kind,
        description: l.description,
        quantity: l.quantity,
        unit_price: l.unit_price,
        amount: l.amount,
    })
    .collect();
    Ok(InvoiceDocument {
        id: row.id,
        number: row.number,
        account_name: row.account_name,
        period: row.period,
        period_start: row.period_start,
        period_end: row.period_end,
        currency,
        state: row.state,
        issuer,
        lines,
        subtotal: row.subtotal,
        tax_rate: row.tax_rate,
        tax: row.tax,
        total: row.total,
        issued_at: row.issued_at,
        due_at: row.due_at,
        paid_at: row.paid_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn doc(currency: &str, tax_rate: &str) -> InvoiceDocument {
        InvoiceDocument {
            id: Uuid::nil(),
            number: "2025-10-00000001".into(),
            account_name: "Acme".into(),
            period: "2025-10".into(),
            period_start: time::macros::date!(2025 - 10 - 01),
            period_end: time::macros::date!(2025 - 11 - 01),
            currency: Currency::new(currency).expect("currency"),
            state: InvoiceState::Pending,
            issuer: Issuer::default(),
            lines: Vec::new(),
            subtotal: Decimal::ZERO,
            tax_rate: d(tax_rate),
            tax: Decimal::ZERO,
            total: Decimal::ZERO,
            issued_at: None,
            due_at: None,
            paid_at: None,
        }
    }

    #[test]
    fn money_prices_and_rates_read_as_on_paper() {
        let usd = doc("USD", "0.2");
        assert_eq!(usd.money(&d("12.5000")), "12.50 USD");
        assert_eq!(usd.price(&d("0.005000")), "0.005 USD");
        assert_eq!(usd.price(&d("31.000000")), "31.00 USD");
        assert_eq!(usd.tax_percent(), "20 %");
        assert_eq!(usd.period_last_day(), time::macros::date!(2025 - 10 - 31));
        let jpy = doc("JPY", "0.075");
        assert_eq!(jpy.money(&d("1235.0000")), "1235 JPY");
        assert_eq!(jpy.price(&d("1500.000000")), "1500 JPY");
        assert_eq!(jpy.tax_percent(), "7.5 %");
        let kwd = doc("KWD", "0");
        assert_eq!(kwd.money(&d("1.5")), "1.500 KWD");
        assert_eq!(quantity(&d("0.354839")), "0.354839");
        assert_eq!(quantity(&d("1001.000000")), "1001");
        assert_eq!(day(None), "-");
    }

    #[test]
    fn drafts_are_not_documents_and_everything_issued_is() {
        let now = Some(OffsetDateTime::UNIX_EPOCH);
        assert!(!visible(InvoiceState::Open, None));
        assert!(!visible(InvoiceState::Finalized, None));
        // Cancelled before it was issued: never a document.
        assert!(!visible(InvoiceState::Cancelled, None));
        for state in [
            InvoiceState::Pending,
            InvoiceState::Unpaid,
            InvoiceState::Paid,
            InvoiceState::Failed,
            InvoiceState::Cancelled,
        ] {
            assert!(visible(state, now), "{state}");
        }
    }
}
