//! Billing in the admin API: run billing on demand (the same run as the hourly job
//! and `tollgate billing run`), and read or replace the provider's billing settings.

use actix_web::{HttpRequest, HttpResponse, web};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tollgate_core::billing::run::{self, RunOptions, RunSummary};
use tollgate_core::billing::settings::{self, BillingSettings};
use tollgate_core::billing::{BillingMode, InvoiceState, Payments};
use tollgate_core::db::PgPool;
use tollgate_web::PublicUrl;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::invoices::parse_month;
use super::schemas;
use super::wire::{parse_decimal, parse_json_object};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIn {
    /// `YYYY-MM`; by default the month that just ended (postpaid) or the current one (prepaid).
    #[schema(
        pattern = "^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])$",
        max_length = 7
    )]
    pub period: Option<String>,
    /// Only this account.
    pub account_id: Option<Uuid>,
    /// Compute and report, write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// An invoice a run issued (or would issue, in a dry run).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunInvoiceOut {
    pub account_id: Uuid,
    /// Absent in a dry run.
    pub number: Option<String>,
    pub currency: String,
    pub lines: usize,
    #[schema(value_type = String)]
    pub total: Decimal,
    #[schema(schema_with = schemas::invoice_state)]
    pub state: InvoiceState,
}

/// An account the run could not bill (rolled back; the next run retries it).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunFailureOut {
    pub account_id: Uuid,
    pub error: String,
}

/// What a run did. A period already billed is skipped account by account, so running
/// it again changes nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummaryOut {
    /// `YYYY-MM`.
    pub period: String,
    #[schema(schema_with = schemas::billing_mode)]
    pub mode: BillingMode,
    pub accounts: usize,
    /// Accounts that already had their invoices for the period.
    pub skipped: usize,
    /// Accounts with nothing to bill.
    pub empty: usize,
    pub invoices: Vec<RunInvoiceOut>,
    pub failed: Vec<RunFailureOut>,
    pub dry_run: bool,
}

impl From<RunSummary> for RunSummaryOut {
    fn from(s: RunSummary) -> Self {
        RunSummaryOut {
            period: s.month,
            mode: s.mode.parse().unwrap_or(BillingMode::Postpaid),
            accounts: s.accounts,
            skipped: s.skipped,
            empty: s.empty,
            invoices: s
                .invoices
                .into_iter()
                .map(|i| RunInvoiceOut {
                    account_id: i.account_id,
                    number: i.number,
                    currency: i.currency,
                    lines: i.lines,
                    total: i.total,
                    state: i.state,
                })
                .collect(),
            failed: s.failed.into_iter().map(|f| RunFailureOut { account_id: f.account_id, error: f.error }).collect(),
            dry_run: s.dry_run,
        }
    }
}

/// Run billing now. Idempotent: accounts already billed for the period are skipped.
#[utoipa::path(post, operation_id = "run_billing", path = "/admin/api/v1/billing/runs", tag = "billing", request_body = RunIn,
    responses((status = 200, body = RunSummaryOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "The `period` cannot be billed yet (postpaid bills a month once it has ended everywhere)")),
    security(("bearer" = [])))]
pub async fn run_billing(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    payments: web::Data<Payments>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let input: RunIn = parse_json_object(&body)?;
    let month = input.period.as_deref().map(|p| parse_month("period", p)).transpose()?;
    let options = RunOptions {
        month,
        account: input.account_id,
        dry_run: input.dry_run,
        public_url: public_url.0.clone(),
        charge: payments.charges_automatically(),
        ..RunOptions::default()
    };
    let summary = run::run(&pool, &options, |_, _| {}).await?;
    run::record_run(&pool, &actor, &summary, input.account_id).await?;
    Ok(HttpResponse::Ok().json(RunSummaryOut::from(summary)))
}

/// Who issues invoices, the tax on them, postpaid or prepaid, and payment terms.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// Printed on invoices as the issuer.
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub provider_name: String,
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    pub provider_address: String,
    #[schema(max_length = 100, pattern = "^[^\\u0000]*$")]
    pub provider_tax_id: String,
    /// A fraction below 1 with at most 5 decimals: `0.2` is 20 %. A JSON number is read too.
    #[schema(schema_with = schemas::tax_rate)]
    #[serde(deserialize_with = "super::wire::string_or_number")]
    pub tax_rate: String,
    #[schema(schema_with = schemas::billing_mode)]
    pub mode: BillingMode,
    /// Days from issue to due date.
    #[schema(minimum = 0, maximum = 365)]
    pub payment_terms_days: i32,
    /// How partners pay (bank details, a payment page), printed on issued invoices that
    /// await payment; empty prints nothing. Left out, it is set to empty (PUT replaces the
    /// settings whole).
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^[^\\u0000]*$")]
    pub payment_instructions: String,
}

impl From<BillingSettings> for SettingsBody {
    fn from(s: BillingSettings) -> Self {
        SettingsBody {
            provider_name: s.provider_name,
            provider_address: s.provider_address,
            provider_tax_id: s.provider_tax_id,
            tax_rate: s.tax_rate.normalize().to_string(),
            mode: s.mode,
            payment_terms_days: s.payment_terms_days,
            payment_instructions: s.payment_instructions,
        }
    }
}

/// The billing settings.
#[utoipa::path(get, operation_id = "get_billing_settings", path = "/admin/api/v1/billing/settings", tag = "billing",
    responses((status = 200, body = SettingsBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show_settings(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    Ok(HttpResponse::Ok().json(SettingsBody::from(settings::get(&pool).await?)))
}

/// Replace the billing settings (audited). Issued invoices keep the details they were issued with.
#[utoipa::path(put, operation_id = "replace_billing_settings", path = "/admin/api/v1/billing/settings", tag = "billing",
    request_body = SettingsBody,
    responses((status = 200, body = SettingsBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A value out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn replace_settings(req: HttpRequest, pool: web::Data<PgPool>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let input: SettingsBody = parse_json_object(&body)?;
    let tax_rate = parse_decimal("tax_rate", &input.tax_rate)?;
    let input = BillingSettings {
        provider_name: input.provider_name,
        provider_address: input.provider_address,
        provider_tax_id: input.provider_tax_id,
        tax_rate,
        mode: input.mode,
        payment_terms_days: input.payment_terms_days,
        payment_instructions: input.payment_instructions,
    };
    Ok(HttpResponse::Ok().json(SettingsBody::from(settings::update(&pool, &input, &actor).await?)))
}
