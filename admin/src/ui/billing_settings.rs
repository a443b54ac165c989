//! Billing settings in the admin UI: the provider's details printed on invoices, the
//! tax rate (typed as a percent, stored as an exact fraction), postpaid or prepaid, and
//! payment terms and instructions. A rejected form comes back as typed with each problem by its field.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::audit::Actor;
use tollgate_core::billing::BillingMode;
use tollgate_core::billing::settings::{self, BillingSettings, parse_tax_percent};
use tollgate_core::db::PgPool;
use tollgate_web::{AdminUser, Chrome, CsrfForm, FieldErrors, PageResult, Session, render, see_other};

/// The form's values as strings.
#[derive(Debug, Clone, Default)]
struct Fields {
    provider_name: String,
    provider_address: String,
    provider_tax_id: String,
    /// A percent, e.g. `20` or `7.5`.
    tax_rate: String,
    mode: String,
    payment_terms_days: String,
    payment_instructions: String,
}

impl Fields {
    fn from_settings(s: &BillingSettings) -> Fields {
        Fields {
            provider_name: s.provider_name.clone(),
            provider_address: s.provider_address.clone(),
            provider_tax_id: s.provider_tax_id.clone(),
            tax_rate: s.tax_percent().to_string(),
            mode: s.mode.to_string(),
            payment_terms_days: s.payment_terms_days.to_string(),
            payment_instructions: s.payment_instructions.clone(),
        }
    }

    fn from_form(form: &HashMap<String, String>) -> Fields {
        let get = |k: &str| form.get(k).cloned().unwrap_or_default();
        Fields {
            provider_name: get("provider_name").trim().to_owned(),
            provider_address: get("provider_address").trim().to_owned(),
            provider_tax_id: get("provider_tax_id").trim().to_owned(),
            tax_rate: get("tax_rate"),
            mode: get("mode"),
            payment_terms_days: get("payment_terms_days"),
            payment_instructions: get("payment_instructions").trim().to_owned(),
        }
    }

    /// The typed settings, or every field that cannot be read.
    fn to_input(&self, errors: &mut FieldErrors) -> Option<BillingSettings> {
        let tax_rate = parse_tax_percent(&self.tax_rate).map_err(|e| errors.absorb(e)).ok();
        let mode = self.mode.parse::<BillingMode>().map_err(|e| errors.add("mode", e.to_string())).ok();
        let days = self.payment_terms_days.trim().parse::<i32>().ok().filter(|d| (0..=365).contains(d)).or_else(|| {
            // Checked here too, so every bad field is named at once.
            errors.add("payment_terms_days", "enter a whole number of days, 0 to 365");
            None
        });
        Some(BillingSettings {
            provider_name: self.provider_name.clone(),
            provider_address: self.provider_address.clone(),
            provider_tax_id: self.provider_tax_id.clone(),
            tax_rate: tax_rate?,
            mode: mode?,
            payment_terms_days: days?,
            payment_instructions: self.payment_instructions.clone(),
        })
    }
}

#[derive(Template)]
#[template(path = "admin/billing_settings.html")]
struct SettingsPage {
    chrome: Chrome,
    fields: Fields,
    errors: FieldErrors,
    modes: &'static [BillingMode],
}

impl SettingsPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ShowQuery {
    saved: Option<String>,
}

pub async fn show(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<ShowQuery>,
) -> PageResult<HttpResponse> {
    let current = settings::get(&pool).await?;
    let mut chrome = Chrome::for_session(&session).await?;
    // Set by the redirect after a save.
    if query.saved.is_some() {
        chrome = chrome.with_flash("info", "Billing settings saved. Invoices issued from now on use them.");
    }
    let page = SettingsPage {
        chrome,
        fields: Fields::from_settings(&current),
        errors: FieldErrors::new(),
        modes: BillingMode::ALL,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn update(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let fields = Fields::from_form(&form);
    let mut errors = FieldErrors::new();
    if let Some(input) = fields.to_input(&mut errors)
        && errors.note(settings::update(&pool, &input, &Actor::from(&user)).await, "provider_name")?.is_some()
    {
        return Ok(see_other("/admin/billing/settings?saved=1"));
    }
    let chrome = Chrome::for_session(&session)
        .await?
        .with_flash("error", "The billing settings were not saved: see the highlighted fields.");
    let page = SettingsPage { chrome, fields, errors, modes: BillingMode::ALL };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
