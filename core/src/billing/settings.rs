//! The provider's billing settings: who issues invoices, the tax rate, postpaid or
//! prepaid, and payment terms. One row (`billing_settings`), read by the run and the
//! admin pages, changed here only, with an audit entry.

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

use super::compute::BillingMode;
use crate::audit::{self, Actor, Entry};
use crate::{Error, Result};

/// The settings as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BillingSettings {
    pub provider_name: String,
    pub provider_address: String,
    pub provider_tax_id: String,
    /// A fraction: 0.2 is 20 %.
    pub tax_rate: Decimal,
    pub mode: BillingMode,
    pub payment_terms_days: i32,
}

impl BillingSettings {
    /// The tax rate as a percent (`0.2` → `20`), exact and without trailing zeros.
    pub fn tax_percent(&self) -> Decimal {
        (self.tax_rate * Decimal::ONE_HUNDRED).normalize()
    }
}

/// New settings, already typed; [`update`] checks their ranges.
#[derive(Clone, Debug)]
pub struct BillingSettingsInput {
    pub provider_name: String,
    pub provider_address: String,
    pub provider_tax_id: String,
    /// A fraction in `[0, 1)`.
    pub tax_rate: Decimal,
    pub mode: BillingMode,
    pub payment_terms_days: i32,
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

fn validate(input: &BillingSettingsInput) -> Result<()> {
    if input.provider_name.chars().count() > 200 {
        return Err(Error::invalid("provider_name", "use at most 200 characters"));
    }
    if input.provider_address.chars().count() > 1000 {
        return Err(Error::invalid("provider_address", "use at most 1,000 characters"));
    }
    if input.provider_tax_id.chars().count() > 100 {
        return Err(Error::invalid("provider_tax_id", "use at most 100 characters"));
    }
    let fraction_ok = input.tax_rate >= Decimal::ZERO && input.tax_rate < Decimal::ONE;
    if !fraction_ok {
        return Err(Error::invalid("tax_rate", "use a rate from 0 up to (not including) 100 %"));
    }
    if input.tax_rate.normalize().scale() > 5 {
        return Err(Error::invalid("tax_rate", "use at most 3 decimal places of a percent"));
    }
    if !(0..=365).contains(&input.payment_terms_days) {
        return Err(Error::invalid("payment_terms_days", "use 0 to 365 days"));
    }
    Ok(())
}

pub async fn get(pool: &PgPool) -> Result<BillingSettings> {
    let row = sqlx::query!(
        r#"SELECT provider_name, provider_address, provider_tax_id, tax_rate, mode AS "mode: BillingMode", payment_terms_days
           FROM billing_settings"#
    )
    .fetch_one(pool)
    .await?;
    Ok(BillingSettings {
        provider_name: row.provider_name,
        provider_address: row.provider_address,
        provider_tax_id: row.provider_tax_id,
        tax_rate: row.tax_rate.normalize(),
        mode: row.mode,
        payment_terms_days: row.payment_terms_days,
    })
}

/// Replaces the settings, recording before and after in the audit log. Issued invoices
/// keep the details they were issued with (`invoices.issuer`, `tax_rate`).
pub async fn update(pool: &PgPool, input: &BillingSettingsInput, actor: &Actor) -> Result<BillingSettings> {
    validate(input)?;
    let before = get(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE billing_settings SET provider_name = $1, provider_address = $2, provider_tax_id = $3, tax_rate = $4,
                mode = $5, payment_terms_days = $6, updated_at = now()",
        input.provider_name,
        input.provider_address,
        input.provider_tax_id,
        input.tax_rate,
        input.mode as BillingMode,
        input.payment_terms_days
    )
    .execute(&mut *tx)
    .await?;
    let after = BillingSettings {
        provider_name: input.provider_name.clone(),
        provider_address: input.provider_address.clone(),
        provider_tax_id: input.provider_tax_id.clone(),
        tax_rate: input.tax_rate.normalize(),
        mode: input.mode,
        payment_terms_days: input.payment_terms_days,
    };
    audit::record(
        &mut tx,
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
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents_become_exact_fractions() {
        assert_eq!(parse_tax_percent("20").unwrap(), "0.2".parse::<Decimal>().unwrap());
        assert_eq!(parse_tax_percent(" 7.125 % ").unwrap(), "0.07125".parse::<Decimal>().unwrap());
        assert_eq!(parse_tax_percent("0").unwrap(), Decimal::ZERO);
        for bad in ["150", "100", "-1", "abc", "7.1255", ""] {
            assert!(parse_tax_percent(bad).is_err(), "{bad}");
        }
    }
}
