//! Invoices of the signed-in developer's account: the list, one invoice as a
//! printable page, and the same invoice as a PDF. Only issued invoices exist
//! here; a draft or another account's invoice is not found (404).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use time::OffsetDateTime;
use tollgate_core::billing::compute::BillingMode;
use tollgate_core::billing::document::{self, InvoiceDocument};
use tollgate_core::billing::invoices::InvoiceSummary;
use tollgate_core::billing::money;
use tollgate_core::billing::run::{self, UpcomingInvoice};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, PageResult, Session, SignedInUser, invoice_pdf, parse_id, render};

use crate::account::account_of;

/// One row of the list, formatted.
struct Row {
    id: uuid::Uuid,
    number: String,
    period: String,
    state: String,
    total: String,
    issued: String,
    due: String,
    paid: String,
}

impl From<InvoiceSummary> for Row {
    fn from(i: InvoiceSummary) -> Row {
        let total = money::display(i.total, &i.currency);
        Row {
            id: i.id,
            number: i.number,
            period: i.period,
            state: i.state.to_string(),
            total,
            issued: document::day(i.issued_at),
            due: document::day(i.due_at),
            paid: document::day(i.paid_at),
        }
    }
}

/// A line of the next invoice, formatted.
struct UpcomingLine {
    kind: String,
    description: String,
    quantity: String,
    unit_price: String,
    amount: String,
}

/// The next invoice so far, in one currency, formatted.
struct UpcomingTable {
    currency: String,
    lines: Vec<UpcomingLine>,
    subtotal: String,
    tax: String,
    total: String,
}

impl From<UpcomingInvoice> for UpcomingTable {
    fn from(invoice: UpcomingInvoice) -> UpcomingTable {
        let currency = invoice.currency;
        UpcomingTable {
            currency: currency.to_string(),
            lines: invoice
                .lines
                .iter()
                .map(|line| UpcomingLine {
                    kind: line.kind.to_string(),
                    description: line.description.clone(),
                    quantity: document::quantity(&line.quantity),
                    unit_price: currency.price(line.unit_price),
                    amount: currency.format(line.amount),
                })
                .collect(),
            subtotal: currency.format(invoice.subtotal),
            tax: currency.format(invoice.tax),
            total: currency.format(invoice.total),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/invoices.html")]
struct ListPage {
    chrome: Chrome,
    invoices: Vec<Row>,
    /// The period the next invoice is for, and whether it bills fees in advance.
    upcoming_month: String,
    prepaid: bool,
    upcoming: Vec<UpcomingTable>,
}

pub async fn list(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let invoices = document::issued_for_account(&pool, account).await?;
    let next = run::upcoming(&pool, account).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(
        StatusCode::OK,
        &ListPage {
            chrome,
            invoices: invoices.into_iter().map(Row::from).collect(),
            upcoming_month: next.month.to_string(),
            prepaid: next.mode == BillingMode::Prepaid,
            upcoming: next.invoices.into_iter().map(UpcomingTable::from).collect(),
        },
    ))
}

#[derive(Template)]
#[template(path = "portal/invoice.html")]
struct ShowPage {
    chrome: Chrome,
    doc: InvoiceDocument,
}

impl ShowPage {
    fn day(&self, at: &Option<OffsetDateTime>) -> String {
        document::day(*at)
    }

    fn quantity(&self, q: &rust_decimal::Decimal) -> String {
        document::quantity(q)
    }
}

pub async fn show(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let doc = document::for_account(&pool, account_of(&user)?, parse_id(&path)?).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ShowPage { chrome, doc }))
}

/// The invoice as an A4 PDF download, `invoice-<number>.pdf`.
pub async fn pdf(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let doc = document::for_account(&pool, account_of(&user)?, parse_id(&path)?).await?;
    Ok(invoice_pdf::download(&doc))
}
