//! The provider's billing settings: who issues invoices, tax, mode and payment terms.
//! One row; every change is validated (422 naming the field) and audited.

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

use super::compute::BillingMode;
use crate::audit::{self, Actor, Entry};
use crate::{Error, FieldProblems, Result};

/// The settings as stored, and as a caller sends new ones.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BillingSettings {
    pub provider_name: String,
    pub provider_address: String,
    pub provider_tax_id: String,
    /// A fraction: 0.2 is 20 %.
    pub tax_rate: Decimal,
    pub mode: BillingMode,
    /// Days between issue and due date.
    pub payment_terms_days: i32,
    /// How to pay (bank details, a payment page), printed on invoices that await payment.
    pub payment_instructions: String,
}

impl BillingSettings {
    /// The tax rate as a percent (`0.2` → `20`), exact and without trailing zeros.
    pub fn tax_percent(&self) -> Decimal {
        (self.tax_rate * Decimal::ONE_HUNDRED).normalize()
    }
}

/// A tax rate typed as a percent (`"20"`, `"7.5"`) as the fraction stored, or why not.
/// The column keeps five decimals of the fraction, so three of the percent.
pub fn parse_tax_percent(raw: &str) -> Result<Decimal> {
    let percent: Decimal = raw
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| Error::invalid("tax_rate", "enter a percent such as 20 or 7.5"))?;
    if percent.is_sign_negative() && !percent.is_zero() || percent >= Decimal::ONE_HUNDRED {
        return Err(Error::invalid("tax_rate", "use a percent from 0 up to (not including) 100"));
    }
    if percent.normalize().scale() > 3 {
        return Err(Error::invalid("tax_rate", "use at most 3 decimal places"));
    }
    Ok((percent / Decimal::ONE_HUNDRED).normalize())
}

pub async fn get(pool: &PgPool) -> Result<BillingSettings> {
    get_in(&mut *pool.acquire().await?).await
}

/// [`get`] on the caller's connection (configuration export).
pub async fn get_in(conn: &mut sqlx::PgConnection) -> Result<BillingSettings> {
    let row = sqlx::query_as!(
        BillingSettings,
        r#"SELECT provider_name, provider_address, provider_tax_id, tax_rate, mode AS "mode: BillingMode", payment_terms_days,
                  payment_instructions
           FROM billing_settings"#
    )
    .fetch_one(conn)
    .await?;
    Ok(BillingSettings { tax_rate: row.tax_rate.normalize(), ..row })
}

/// `value` trimmed, or `None` with the problem noted.
fn check_text(problems: &mut FieldProblems, field: &'static str, value: &str, max: usize) -> Option<String> {
    let value = value.trim();
    if value.chars().count() > max {
        problems.add(field, format!("use at most {max} characters"));
        return None;
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        problems.add(field, "use no control characters");
        return None;
    }
    Some(value.to_owned())
}

/// The input checked field by field, in the order a form shows them; every problem is named.
pub fn validate(input: &BillingSettings) -> Result<BillingSettings> {
    let mut problems = FieldProblems::default();
    let provider_name = check_text(&mut problems, "provider_name", &input.provider_name, 200);
    let provider_address = check_text(&mut problems, "provider_address", &input.provider_address, 1000);
    let provider_tax_id = check_text(&mut problems, "provider_tax_id", &input.provider_tax_id, 100);
    // numeric(6, 5): below 1, five decimals at most; an invoice's tax is rounded once anyway.
    let rate = input.tax_rate.normalize();
    if rate.is_sign_negative() || rate >= Decimal::ONE {
        problems.add("tax_rate", "use a fraction from 0 up to (not including) 1, e.g. 0.2 for 20 %");
    } else if rate.scale() > 5 {
        problems.add("tax_rate", "use at most 5 decimals, e.g. 0.19625");
    }
    if !(0..=365).contains(&input.payment_terms_days) {
        problems.add("payment_terms_days", "use 0 to 365 days");
    }
    let payment_instructions = check_text(&mut problems, "payment_instructions", &input.payment_instructions, 2000);
    problems.into_result()?;
    let checked = |text: Option<String>| text.unwrap_or_default();
    Ok(BillingSettings {
        provider_name: checked(provider_name),
        provider_address: checked(provider_address),
        provider_tax_id: checked(provider_tax_id),
        tax_rate: rate,
        mode: input.mode,
        payment_terms_days: input.payment_terms_days,
        payment_instructions: checked(payment_instructions),
    })
}

/// Replaces the settings; audited in the same transaction. Issued invoices keep the
/// details they were issued with; the next run uses these.
pub async fn update(pool: &PgPool, input: &BillingSettings, actor: &Actor) -> Result<BillingSettings> {
    let mut tx = pool.begin().await?;
    let after = update_in(&mut tx, input, actor).await?;
    tx.commit().await?;
    Ok(after)
}

/// [`update`] on the caller's transaction (configuration apply).
pub async fn update_in(tx: &mut sqlx::PgConnection, input: &BillingSettings, actor: &Actor) -> Result<BillingSettings> {
    let input = validate(input)?;
    let before = sqlx::query_as!(
        BillingSettings,
        r#"SELECT provider_name, provider_address, provider_tax_id, tax_rate, mode AS "mode: BillingMode", payment_terms_days,
                  payment_instructions
           FROM billing_settings FOR UPDATE"#
    )
    .fetch_one(&mut *tx)
    .await?;
    let after = sqlx::query_as!(
        BillingSettings,
        r#"UPDATE billing_settings SET provider_name = $1, provider_address = $2, provider_tax_id = $3, tax_rate = $4,
                  mode = $5, payment_terms_days = $6, payment_instructions = $7, updated_at = now()
           RETURNING provider_name, provider_address, provider_tax_id, tax_rate, mode AS "mode: BillingMode", payment_terms_days,
                     payment_instructions"#,
        input.provider_name,
        input.provider_address,
        input.provider_tax_id,
        input.tax_rate,
        input.mode as BillingMode,
        input.payment_terms_days,
        input.payment_instructions
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Entry {
            action: "billing_settings.update",
            entity: "billing_settings",
            entity_id: None,
            before: Some(json!(before)),
            after: Some(json!(after)),
        },
    )
    .await?;
    Ok(after)
}
