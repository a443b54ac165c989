//! Invoices of every account in the admin API: list and filter, show whole, move
//! along the life cycle, and record a payment received outside Tollgate.

use actix_web::{HttpRequest, HttpResponse, web};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tollgate_core::Error;
use tollgate_core::billing::directory::{self, AdminInvoice, InvoiceDetail, InvoiceFilter};
use tollgate_core::billing::payments::{self, PaymentOutcome};
use tollgate_core::billing::{Currency, InvoiceAction, InvoiceState, LineKind, Month, invoices, money};
use tollgate_core::db::PgPool;
use tollgate_web::parse_id;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::schemas;
use super::wire::{parse_decimal, parse_json_object, parse_query, rfc3339};

/// An invoice as lists show it. Money is a decimal string in the invoice's currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceOut {
    pub id: Uuid,
    pub account_id: Uuid,
    pub account_name: String,
    /// `YYYY-MM-NNNNNNNN`.
    pub number: String,
    /// The billing period, `YYYY-MM`.
    pub period: String,
    pub currency: String,
    #[schema(schema_with = schemas::invoice_state)]
    pub state: InvoiceState,
    #[schema(value_type = String)]
    pub subtotal: Decimal,
    #[schema(value_type = String)]
    pub tax: Decimal,
    #[schema(value_type = String)]
    pub total: Decimal,
    #[schema(format = DateTime)]
    pub issued_at: Option<String>,
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    #[schema(format = DateTime)]
    pub paid_at: Option<String>,
}

impl Keyed for InvoiceOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl From<AdminInvoice> for InvoiceOut {
    fn from(a: AdminInvoice) -> Self {
        let i = a.invoice;
        InvoiceOut {
            id: i.id,
            account_id: i.account_id,
            account_name: a.account_name,
            number: i.number,
            period: i.period,
            state: i.state,
            subtotal: money::exact_in(i.subtotal, &i.currency),
            tax: money::exact_in(i.tax, &i.currency),
            total: money::exact_in(i.total, &i.currency),
            currency: i.currency.trim().to_owned(),
            issued_at: i.issued_at.map(rfc3339),
            due_at: i.due_at.map(rfc3339),
            paid_at: i.paid_at.map(rfc3339),
        }
    }
}

/// One line of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineOut {
    #[schema(schema_with = schemas::line_kind)]
    pub kind: LineKind,
    pub description: String,
    #[schema(value_type = String)]
    pub quantity: Decimal,
    #[schema(value_type = String)]
    pub unit_price: Decimal,
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// The month the line charges for, `YYYY-MM`.
    pub service_month: Option<String>,
    pub application_id: Option<Uuid>,
    pub plan_id: Option<Uuid>,
}

/// One step of the life cycle, with who took it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionOut {
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: String,
    pub note: String,
    #[schema(format = DateTime)]
    pub at: String,
}

/// A payment an admin recorded, or an automatic try.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentOut {
    pub id: Uuid,
    /// `manual`, `test`, or a card processor's name.
    pub provider: String,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub currency: String,
    pub reference: String,
    #[schema(schema_with = schemas::payment_outcome)]
    pub outcome: PaymentOutcome,
    /// Why a try was declined.
    pub error: Option<String>,
    /// 1 to 3 for automatic tries; absent for a recorded payment.
    pub attempt: Option<i16>,
    pub actor: String,
    #[schema(format = DateTime)]
    pub attempted_at: String,
}

/// The provider's details as printed on the invoice when it was issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerOut {
    pub name: String,
    pub address: String,
    pub tax_id: String,
}

/// An invoice whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceDetailOut {
    #[serde(flatten)]
    pub invoice: InvoiceOut,
    /// A fraction: 0.2 is 20 %.
    #[schema(value_type = String)]
    pub tax_rate: Decimal,
    pub issuer: Option<IssuerOut>,
    /// Automatic tries made so far.
    pub payment_attempts: i16,
    /// When the next automatic try is due.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub lines: Vec<LineOut>,
    pub transitions: Vec<TransitionOut>,
    pub payments: Vec<PaymentOut>,
}

impl From<InvoiceDetail> for InvoiceDetailOut {
    fn from(d: InvoiceDetail) -> Self {
        let currency = d.invoice.invoice.currency.clone();
        InvoiceDetailOut {
            invoice: InvoiceOut::from(d.invoice),
            tax_rate: d.tax_rate,
            issuer: d.issuer.map(|i| IssuerOut { name: i.name, address: i.address, tax_id: i.tax_id }),
            payment_attempts: d.payment_attempts,
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            lines: d
                .lines
                .into_iter()
                .map(|l| LineOut {
                    kind: l.kind,
                    description: l.description,
                    quantity: l.quantity.normalize(),
                    unit_price: l.unit_price.normalize(),
                    amount: money::exact_in(l.amount, &currency),
                    service_month: l.service_month,
                    application_id: l.application_id,
                    plan_id: l.plan_id,
                })
                .collect(),
            transitions: d
                .transitions
                .into_iter()
                .map(|t| TransitionOut {
                    from_state: t.from_state,
                    to_state: t.to_state,
                    actor: t.actor,
                    note: t.note,
                    at: rfc3339(t.at),
                })
                .collect(),
            payments: d
                .payments
                .into_iter()
                .map(|p| PaymentOut {
                    id: p.id,
                    provider: p.provider,
                    amount: money::exact_in(p.amount, &p.currency),
                    currency: p.currency.trim().to_owned(),
                    reference: p.reference,
                    outcome: p.outcome,
                    error: p.error,
                    attempt: p.attempt,
                    actor: p.actor,
                    attempted_at: rfc3339(p.attempted_at),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceQuery {
    /// Only invoices in this state.
    #[param(schema_with = schemas::invoice_state)]
    pub state: Option<InvoiceState>,
    pub account_id: Option<Uuid>,
    /// Only accounts whose name contains this, ignoring case.
    #[param(max_length = 200)]
    pub account_name: Option<String>,
    /// The billing period, `YYYY-MM`.
    #[param(
        pattern = "^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])$",
        max_length = 7
    )]
    pub period: Option<String>,
    /// An ISO 4217 code, e.g. `EUR`.
    #[param(pattern = "^[A-Z]{3}$", max_length = 3)]
    pub currency: Option<String>,
    /// Only the invoices after this one in the list: pass the last `id` of a page to get
    /// the next one (keyset paging, as fast at any depth; `page` then counts from there).
    pub after_id: Option<Uuid>,
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

/// A `YYYY-MM` parameter, or 422 naming it.
pub fn parse_month(field: &'static str, raw: &str) -> ApiResult<Month> {
    let ok = raw.len() == 7 && raw.as_bytes()[4] == b'-';
    ok.then(|| raw.parse::<Month>().ok())
        .flatten()
        .ok_or_else(|| Error::invalid(field, "use a month as YYYY-MM, e.g. 2026-11").into())
}

/// List and filter the invoices of every account, newest period first.
#[utoipa::path(get, operation_id = "list_invoices", path = "/admin/api/v1/invoices", tag = "billing", params(InvoiceQuery),
    responses((status = 200, body = Page<InvoiceOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A filter or page out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let q: InvoiceQuery = parse_query(&req)?;
    let period = q.period.as_deref().map(|p| parse_month("period", p)).transpose()?;
    let currency = q
        .currency
        .as_deref()
        .map(|c| Currency::new(c).map_err(|_| Error::invalid("currency", "use an ISO 4217 code such as EUR")))
        .transpose()?;
    let page = PageQuery { page: q.page, per_page: q.per_page };
    let (limit, offset) = page.window()?;
    let account_name = match q.account_name.as_deref().map(str::trim) {
        Some(name) if name.chars().count() > 200 => {
            return Err(Error::invalid("account_name", "use at most 200 characters").into());
        }
        Some(name) if !name.is_empty() => Some(name.to_owned()),
        _ => None,
    };
    let filter = InvoiceFilter {
        state: q.state,
        account_id: q.account_id,
        account_name,
        period,
        currency,
        after_id: q.after_id,
    };
    let (items, total) = directory::list(&pool, &filter, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page::new(items.into_iter().map(InvoiceOut::from).collect(), &req, &page, total)))
}

/// One invoice with its lines, life cycle and payments.
#[utoipa::path(get, operation_id = "get_invoice", path = "/admin/api/v1/invoices/{id}", tag = "billing", params(("id" = Uuid, Path)),
    responses((status = 200, body = InvoiceDetailOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(InvoiceDetailOut::from(directory::get(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionIn {
    #[schema(schema_with = schemas::invoice_action)]
    pub action: InvoiceAction,
    /// Why, for the invoice's history.
    #[serde(default)]
    #[schema(max_length = 500, pattern = "^[^\\u0000]*$")]
    pub note: String,
    /// With `cancel` only: waive the invoice's charges, so no later run bills them again.
    /// Without it a cancelled invoice's charges stay owed and the next run bills them as
    /// adjustments (an invoice cancelled to be corrected).
    #[serde(default)]
    pub waive: bool,
}

/// Move an invoice along its life cycle (`open → finalized → pending → unpaid → paid | failed`,
/// `cancelled` from any state but paid). A move the life cycle does not allow is 422 naming `action`.
#[utoipa::path(post, operation_id = "transition_invoice", path = "/admin/api/v1/invoices/{id}/transitions", tag = "billing",
    params(("id" = Uuid, Path)), request_body = TransitionIn,
    responses((status = 200, body = InvoiceDetailOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Not allowed from the invoice's state, e.g. `an invoice in state paid cannot cancel`")),
    security(("bearer" = [])))]
pub async fn transition(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let input: TransitionIn = parse_json_object(&body)?;
    invoices::transition(&pool, id, input.action, &actor, input.note.trim(), input.waive).await?;
    Ok(HttpResponse::Ok().json(InvoiceDetailOut::from(directory::get(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentIn {
    /// The invoice's total, exactly: part payments are not recorded. A JSON number is read too.
    #[schema(schema_with = schemas::payment_amount)]
    #[serde(deserialize_with = "super::wire::string_or_number")]
    pub amount: String,
    /// Where the money came from, e.g. a bank transfer's id.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\u0000]*$", example = "BT-2026-11-0042")]
    pub reference: String,
}

/// Record a payment received outside Tollgate (bank transfer, cheque): the invoice must be
/// pending or unpaid and `amount` its total; it becomes paid.
#[utoipa::path(post, operation_id = "record_invoice_payment", path = "/admin/api/v1/invoices/{id}/payments", tag = "billing",
    params(("id" = Uuid, Path)), request_body = PaymentIn,
    responses((status = 201, body = InvoiceDetailOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "`amount` is not the total, `reference` is blank, or the invoice's `state` takes no payment")),
    security(("bearer" = [])))]
pub async fn record_payment(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let input: PaymentIn = parse_json_object(&body)?;
    let amount = parse_decimal("amount", &input.amount)?;
    payments::record_manual_payment(&pool, id, amount, &input.reference, &actor).await?;
    Ok(HttpResponse::Created().json(InvoiceDetailOut::from(directory::get(&pool, id).await?)))
}
