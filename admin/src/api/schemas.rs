//! OpenAPI schemas of the domain's enums, listed from the enums' own names
//! so that the document and the code cannot disagree.

use tollgate_core::accounts::directory::AccountState;
use tollgate_core::admin_tokens::{TokenScope, TokenState};
use tollgate_core::apis::{ApiState, AuthMode, CompatibilityPolicy, KeyLocation, ReportState};
use tollgate_core::applications::ApplicationState;
use tollgate_core::billing::payments::PaymentOutcome;
use tollgate_core::billing::{BillingMode, InvoiceAction, InvoiceState, LineKind};
use tollgate_core::plans::Period;
use tollgate_core::usage::levels::AlertLevel;
use utoipa::openapi::schema::{Array, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type};

fn one_of(names: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)).build()
}

/// A limit's calendar period in the plan's time zone.
pub fn period() -> Object {
    one_of(Period::ALL.map(Period::as_str))
}

pub fn admin_token_scope() -> Object {
    one_of(TokenScope::ALL.iter().map(|s| s.as_str()))
}

pub fn admin_token_state() -> Object {
    one_of(TokenState::ALL.map(TokenState::as_str))
}

pub fn api_state() -> Object {
    one_of(ApiState::ALL.iter().map(|s| s.as_str()))
}

pub fn application_state() -> Object {
    one_of(ApplicationState::ALL.iter().map(|s| s.as_str()))
}

pub fn account_state() -> Object {
    one_of(AccountState::ALL.iter().map(|s| s.as_str()))
}

pub fn auth_mode() -> Object {
    one_of(AuthMode::ALL.iter().map(|m| m.as_str()))
}

pub fn key_location() -> Object {
    one_of(KeyLocation::ALL.iter().map(|l| l.as_str()))
}

pub fn compatibility_policy() -> Object {
    one_of(CompatibilityPolicy::ALL.iter().map(|p| p.as_str()))
}

pub fn report_state() -> Object {
    one_of(ReportState::ALL.iter().map(|s| s.as_str()))
}

/// The kinds of change a change report names.
pub fn change_kind() -> Object {
    one_of(tollgate_openapi::ChangeKind::ALL.iter().map(|k| k.as_str()))
}

/// How a metric's price tiers apply.
pub fn pricing_mode() -> Object {
    one_of(tollgate_core::billing::PricingMode::ALL.iter().map(|m| m.as_str()))
}

/// A plan's alert levels: each of the eight percentages at most once.
/// The most levels a request may list, repeats included.
pub const MAX_ALERT_LEVELS_SENT: usize = 64;

pub fn alert_levels() -> Array {
    let level = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some(AlertLevel::ALL.iter().map(|l| i64::from(l.pct()))))
        .build();
    // A repeated level counts once (the handler sorts and deduplicates), so repeats are
    // valid input; the handler's cap is the limit.
    ArrayBuilder::new().items(level).max_items(Some(MAX_ALERT_LEVELS_SENT)).build()
}

pub fn invoice_state() -> Object {
    one_of(InvoiceState::ALL.iter().map(|s| s.as_str()))
}

pub fn invoice_action() -> Object {
    one_of(InvoiceAction::ALL.iter().map(|a| a.as_str()))
}

pub fn billing_mode() -> Object {
    one_of(BillingMode::ALL.iter().map(|m| m.as_str()))
}

pub fn line_kind() -> Object {
    one_of(LineKind::ALL.iter().map(|k| k.as_str()))
}

pub fn payment_outcome() -> Object {
    one_of(PaymentOutcome::ALL.iter().map(|o| o.as_str()))
}

pub fn credential_kind() -> Object {
    one_of(tollgate_core::credentials::CredentialKind::ALL.iter().map(|k| k.as_str()))
}

pub fn member_role() -> Object {
    one_of(tollgate_core::accounts::teams::MemberRole::ALL.iter().map(|r| r.as_str()))
}

/// A decimal as the document writes money and rates, a string, or a JSON number (read as its
/// shortest decimal text; the same checks follow).
fn decimal_text(pattern: &str, example: &str, number: ObjectBuilder) -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).examples([example]).build())
            .item(number.schema_type(Type::Number).build())
            .build(),
    )
}

/// The billing settings' tax rate: a fraction below 1 with at most 5 decimals.
pub fn tax_rate() -> Schema {
    decimal_text("^0(\\.[0-9]{1,5})?$", "0.2", ObjectBuilder::new().minimum(Some(0)).exclusive_maximum(Some(1)))
}

/// A manual payment's amount: the invoice's total.
pub fn payment_amount() -> Schema {
    decimal_text("^[0-9]{1,20}(\\.[0-9]{1,4})?$", "49.00", ObjectBuilder::new().minimum(Some(0)))
}

/// A plan's setup or monthly fee.
pub fn plan_fee() -> Schema {
    decimal_text("^[0-9]{1,10}(\\.[0-9]{1,4})?$", "49.00", ObjectBuilder::new().minimum(Some(0)))
}

/// A price tier's price per unit.
pub fn unit_price() -> Schema {
    decimal_text("^[0-9]{1,8}(\\.[0-9]{1,6})?$", "0.0010", ObjectBuilder::new().minimum(Some(0)))
}
