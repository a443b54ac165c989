//! Invoices in the admin UI: the list with its filters, one invoice with its
//! lines, payments, history and the life-cycle actions its state allows, and its
//! PDF (drafts included). Both read the admin view in `billing::directory`, as the
//! REST API does.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::audit::Actor;
use tollgate_core::billing::directory::{self, AdminInvoice, InvoiceDetail, InvoiceFilter, TransitionView};
use tollgate_core::billing::document::{self, Issuer};
use tollgate_core::billing::invoices::{self, InvoiceSummary};
use tollgate_core::billing::money::{self, Currency};
use tollgate_core::billing::payments::PaymentOutcome;
use tollgate_core::billing::{InvoiceAction, InvoiceState, Month};
use tollgate_core::db::PgPool;
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, FieldErrors, PageResult, Session, invoice_pdf, parse_id, render, see_other,
};
use uuid::Uuid;

/// The most invoices one list shows; narrow it with the filters.
const LIST_LIMIT: i64 = 200;

/// The actions an admin takes by hand; paying and failing come from payments.
const MANUAL_ACTIONS: [InvoiceAction; 4] =
    [InvoiceAction::Finalize, InvoiceAction::Issue, InvoiceAction::MarkUnpaid, InvoiceAction::Cancel];

/// The list's filters as typed, so a rejected one comes back as it was.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    currency: String,
}

impl ListQuery {
    /// The filter, or each bad field with why.
    fn filter(&self) -> Result<InvoiceFilter, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut filter = InvoiceFilter::default();
        match self.state.trim() {
            "" => {}
            s => match s.parse::<InvoiceState>() {
                Ok(state) => filter.state = Some(state),
                Err(e) => errors.add("state", format!("`{s}` is not a state: {e}")),
            },
        }
        let account = self.account.trim();
        if !account.is_empty() {
            match Uuid::parse_str(account) {
                Ok(id) => filter.account_id = Some(id),
                Err(_) if account.chars().count() <= 200 => filter.account_name = Some(account.to_owned()),
                Err(_) => errors.add("account", "use an account id or at most 200 characters of its name"),
            }
        }
        match self.period.trim() {
            "" => {}
            p => match p.parse::<Month>() {
                Ok(month) => filter.period = Some(month),
                Err(e) => errors.add("period", e.to_string()),
            },
        }
        match self.currency.trim() {
            "" => {}
            c => match Currency::new(&c.to_uppercase()) {
                Ok(currency) => filter.currency = Some(currency),
                Err(e) => errors.add("currency", e.to_string()),
            },
        }
        if errors.is_empty() { Ok(filter) } else { Err(errors) }
    }
}

#[derive(Template)]
#[template(path = "admin/invoices.html")]
struct ListPage {
    chrome: Chrome,
    query: ListQuery,
    states: &'static [InvoiceState],
    invoices: Vec<RowView>,
    errors: FieldErrors,
    limit: i64,
}

impl ListPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

/// A list row, formatted.
struct RowView {
    id: Uuid,
    number: String,
    account: String,
    period: String,
    state: InvoiceState,
    total: String,
    issued: String,
    due: String,
    paid: String,
}

impl From<AdminInvoice> for RowView {
    fn from(r: AdminInvoice) -> RowView {
        let i = r.invoice;
        RowView {
            id: i.id,
            total: money::display(i.total, &i.currency),
            issued: day(&i.issued_at),
            due: day(&i.due_at),
            paid: day(&i.paid_at),
            number: i.number,
            account: r.account_name,
            period: i.period,
            state: i.state,
        }
    }
}

/// `2026-11-30` for a moment, or a dash.
fn day(at: &Option<time::OffsetDateTime>) -> String {
    at.map(|t| t.date().to_string()).unwrap_or_else(|| "—".to_owned())
}

pub async fn list(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<ListQuery>,
) -> PageResult<HttpResponse> {
    let query = query.into_inner();
    let (status, invoices, errors) = match query.filter() {
        Ok(filter) => (
            StatusCode::OK,
            directory::list(&pool, &filter, LIST_LIMIT, 0).await?.0.into_iter().map(RowView::from).collect(),
            FieldErrors::new(),
        ),
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), errors),
    };
    let mut chrome = Chrome::for_session(&session).await?;
    if !errors.is_empty() {
        chrome = chrome.with_flash("error", "Some filters are not valid: see the highlighted fields.");
    }
    let page = ListPage { chrome, query, states: InvoiceState::ALL, invoices, errors, limit: LIST_LIMIT };
    Ok(render(status, &page))
}

#[derive(Template)]
#[template(path = "admin/invoice.html")]
struct InvoicePage {
    chrome: Chrome,
    invoice: InvoiceSummary,
    account_name: String,
    /// `None` until issued.
    issuer: Option<Issuer>,
    lines: Vec<LineRow>,
    /// Oldest first.
    transitions: Vec<TransitionView>,
    /// Automatic tries and recorded payments, oldest first.
    payments: Vec<PaymentRow>,
    /// When the next automatic try is due, if one is.
    next_try: Option<time::OffsetDateTime>,
    actions: Vec<InvoiceAction>,
    note: String,
    /// Whether a payment can be recorded (pending or unpaid).
    payable: bool,
    issued: String,
    due: String,
    paid: String,
    subtotal: String,
    tax: String,
    total: String,
    tax_percent: String,
    /// What the payment form shows.
    payment: PaymentDraft,
}

/// The payment form as typed: the amount (the invoice's total until one is typed), the
/// reference, and why they were refused.
#[derive(Default)]
pub(crate) struct PaymentDraft {
    pub amount: Option<String>,
    pub reference: String,
    pub errors: FieldErrors,
}

/// A line, formatted.
struct LineRow {
    description: String,
    kind: String,
    month: String,
    quantity: String,
    unit_price: String,
    amount: String,
}

/// A payment or a try, formatted.
struct PaymentRow {
    at: time::OffsetDateTime,
    /// `try 2 of 3` for an automatic try, `recorded` for an admin's payment.
    what: String,
    provider: String,
    succeeded: bool,
    amount: String,
    reference: String,
    /// Why a try was declined.
    error: String,
    actor: String,
}

impl InvoicePage {
    fn new(chrome: Chrome, detail: InvoiceDetail, note: String, mut payment: PaymentDraft) -> InvoicePage {
        let InvoiceDetail {
            invoice,
            tax_rate,
            issuer,
            payment_attempts: _,
            next_attempt_at,
            lines,
            transitions,
            payments,
        } = detail;
        let AdminInvoice { invoice, account_name } = invoice;
        let state = invoice.state;
        let currency = invoice.currency.clone();
        // The total with exactly the currency's decimals.
        payment.amount.get_or_insert_with(|| money::plain(invoice.total, &currency));
        InvoicePage {
            chrome,
            account_name,
            issuer,
            lines: lines
                .into_iter()
                .map(|l| LineRow {
                    description: l.description,
                    kind: l.kind.to_string(),
                    month: l.service_month.unwrap_or_default(),
                    quantity: document::quantity(&l.quantity),
                    unit_price: l.unit_price.normalize().to_string(),
                    amount: money::display(l.amount, &currency),
                })
                .collect(),
            transitions,
            payments: payments
                .into_iter()
                .map(|p| PaymentRow {
                    at: p.attempted_at,
                    what: match p.attempt {
                        Some(n) => format!("try {n} of {}", tollgate_core::billing::payments::MAX_TRIES),
                        None => "recorded".to_owned(),
                    },
                    provider: p.provider,
                    succeeded: p.outcome == PaymentOutcome::Succeeded,
                    amount: money::display(p.amount, &p.currency),
                    reference: p.reference,
                    error: p.error.unwrap_or_default(),
                    actor: p.actor,
                })
                .collect(),
            next_try: next_attempt_at,
            actions: MANUAL_ACTIONS.into_iter().filter(|a| state.apply(*a).is_ok()).collect(),
            note,
            payable: matches!(state, InvoiceState::Pending | InvoiceState::Unpaid),
            issued: day(&invoice.issued_at),
            due: day(&invoice.due_at),
            paid: day(&invoice.paid_at),
            subtotal: money::display(invoice.subtotal, &currency),
            tax: money::display(invoice.tax, &currency),
            total: money::display(invoice.total, &currency),
            tax_percent: (tax_rate * rust_decimal::Decimal::ONE_HUNDRED).normalize().to_string(),
            payment,
            invoice,
        }
    }

    fn action_label(&self, action: &InvoiceAction) -> &'static str {
        action_label(*action)
    }

    fn can_cancel(&self) -> bool {
        self.actions.contains(&InvoiceAction::Cancel)
    }

    fn payment_error(&self, field: &str) -> Option<&str> {
        self.payment.errors.get(field)
    }

    fn payment_amount(&self) -> &str {
        self.payment.amount.as_deref().unwrap_or_default()
    }
}

fn action_label(action: InvoiceAction) -> &'static str {
    match action {
        InvoiceAction::Finalize => "Finalize",
        InvoiceAction::Issue => "Issue",
        InvoiceAction::MarkUnpaid => "Mark unpaid",
        InvoiceAction::Pay => "Mark paid",
        InvoiceAction::Fail => "Mark failed",
        InvoiceAction::Cancel => "Cancel invoice",
    }
}

/// The invoice's page, with the transition form's `note` and the payment form's `payment`.
pub(crate) async fn invoice_page(
    pool: &PgPool,
    chrome: Chrome,
    id: Uuid,
    note: String,
    payment: PaymentDraft,
    status: StatusCode,
) -> PageResult<HttpResponse> {
    let detail = directory::get(pool, id).await?;
    Ok(render(status, &InvoicePage::new(chrome, detail, note, payment)))
}

/// The invoice as a PDF download, drafts included (marked as such).
pub async fn pdf(_admin: AdminUser, pool: web::Data<PgPool>, path: web::Path<String>) -> PageResult<HttpResponse> {
    let doc = document::for_admin(&pool, parse_id(&path)?).await?;
    Ok(invoice_pdf::download(&doc))
}

pub async fn show(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = parse_id(&path)?;
    invoice_page(
        &pool,
        Chrome::for_session(&session).await?,
        id,
        String::new(),
        PaymentDraft::default(),
        StatusCode::OK,
    )
    .await
}

/// One life-cycle step chosen by its button (`action`), with an optional note. A step
/// the invoice's state does not allow shows the invoice again with why (422).
pub async fn transition(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let id = parse_id(&path)?;
    let note = form.get("note").map(|n| n.trim().to_owned()).unwrap_or_default();
    let raw = form.get("action").map(String::as_str).unwrap_or("");
    let outcome = match raw.parse::<InvoiceAction>() {
        Ok(action) if MANUAL_ACTIONS.contains(&action) => {
            let waive = action == InvoiceAction::Cancel && form.get("waive").is_some_and(|v| v == "on");
            invoices::transition(&pool, id, action, &Actor::from(&user), &note, waive).await.map(|_| ())
        }
        _ => Err(tollgate_core::Error::invalid("action", format!("`{raw}` is not an action of this page"))),
    };
    match outcome {
        Ok(()) => Ok(see_other(format!("/admin/invoices/{id}"))),
        Err(tollgate_core::Error::Invalid { field, message }) => {
            let chrome = Chrome::for_session(&session)
                .await?
                .with_flash("error", format!("Nothing changed: {field}: {message}"));
            invoice_page(&pool, chrome, id, note, PaymentDraft::default(), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(err) => Err(err.into()),
    }
}
