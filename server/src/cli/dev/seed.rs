//! Demo data for `tollgate dev`. Idempotent: a second run changes nothing.

use rust_decimal::Decimal;
use tollgate_core::accounts::{Email, Password, PasswordHasher, create_admin, create_developer};
use tollgate_core::apis::lifecycle::publish;
use tollgate_core::apis::{NewApi, create_from_spec, find_by_slug};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::plans::{NewLimit, NewPlan, NewPrice, Period, create_plan};

use crate::cli::error::CliError;

pub const DEMO_ADMIN_EMAIL: &str = "admin@tollgate.local";
pub const DEMO_ADMIN_PASSWORD: &str = "tollgate-admin-demo";
pub const DEMO_DEVELOPER_EMAIL: &str = "dev@example.com";
pub const DEMO_DEVELOPER_PASSWORD: &str = "tollgate-developer-demo";
const DEMO_SPEC: &str = include_str!("../../../demo/weather.openapi.yaml");

fn limit(metric: &str, period: Period, max: i64) -> NewLimit {
    NewLimit { metric: metric.to_owned(), period, max }
}

fn ignore_conflict(result: Result<impl Sized, tollgate_core::Error>) -> Result<(), CliError> {
    match result {
        Ok(_) | Err(tollgate_core::Error::Conflict(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

pub async fn seed(pool: &PgPool) -> Result<(), CliError> {
    let hasher = PasswordHasher::new(2);
    let actor = Actor::system("tollgate dev");

    let admin_hash = hasher.hash(&Password::parse(DEMO_ADMIN_PASSWORD)?).await?;
    ignore_conflict(create_admin(pool, &Email::parse(DEMO_ADMIN_EMAIL)?, &admin_hash).await)?;
    let dev_hash = hasher.hash(&Password::parse(DEMO_DEVELOPER_PASSWORD)?).await?;
    ignore_conflict(
        create_developer(pool, "Demo Developer Co", &Email::parse(DEMO_DEVELOPER_EMAIL)?, &dev_hash, true).await,
    )?;

    if find_by_slug(pool, "weather").await?.is_some() {
        return Ok(());
    }
    let spec = tollgate_openapi::parse(DEMO_SPEC).map_err(tollgate_core::Error::from)?;
    let new = NewApi {
        name: Some("Weather API".into()),
        slug: Some("weather".into()),
        base_path: Some("/weather".into()),
        upstream_url: Some("http://127.0.0.1:8090".into()),
    };
    let api = create_from_spec(pool, DEMO_SPEC, &spec, new, &actor).await?;
    let basic = NewPlan {
        system_name: "basic".into(),
        name: "Basic".into(),
        description: "The first 10,000 calls a month free, then 0.001 USD a call; 10 calls a minute, 1,000 a day."
            .into(),
        published: true,
        approval_required: false,
        setup_fee: Decimal::ZERO,
        monthly_fee: Decimal::ZERO,
        trial_days: 0,
        currency: "USD".into(),
        time_zone: "UTC".into(),
        limits: vec![limit("hits", Period::Minute, 10), limit("hits", Period::Day, 1000)],
        pricing: vec![
            NewPrice { metric: "hits".into(), from: 1, to: Some(10_000), price_per_unit: Decimal::ZERO },
            NewPrice { metric: "hits".into(), from: 10_001, to: None, price_per_unit: Decimal::new(1, 3) },
        ],
        pricing_modes: Vec::new(),
    };
    create_plan(pool, api.id, &basic, &actor).await?;
    let pro = NewPlan {
        system_name: "pro".into(),
        name: "Pro".into(),
        description: "600 calls a minute, 1M a month; forecasts included.".into(),
        published: true,
        approval_required: true,
        setup_fee: Decimal::new(1000, 2),
        monthly_fee: Decimal::new(4900, 2),
        trial_days: 14,
        currency: "USD".into(),
        time_zone: "UTC".into(),
        limits: vec![limit("hits", Period::Minute, 600), limit("hits", Period::Month, 1_000_000)],
        pricing: vec![
            NewPrice { metric: "hits".into(), from: 1, to: Some(100_000), price_per_unit: Decimal::ZERO },
            NewPrice { metric: "hits".into(), from: 100_001, to: None, price_per_unit: Decimal::new(1, 4) },
        ],
        pricing_modes: Vec::new(),
    };
    create_plan(pool, api.id, &pro, &actor).await?;
    publish(pool, api.id, &actor).await?;
    Ok(())
}

const DEMO_APP: &str = "Demo app";

/// Calls the demo app made in the month it is billed for: 10,000 free, 15,000 at 0.001 USD.
const DEMO_MONTH_HITS: i64 = 25_000;

/// The demo developer's app gets a month of usage and that month is billed, so a new
/// user sees an issued invoice at once: the latest month the run may bill (with the
/// default postpaid settings, the month that has ended everywhere). Idempotent: the
/// run skips an account that has its invoice. Returns the invoice's number.
pub async fn demo_invoice(pool: &PgPool, public_url: &str) -> Result<Option<String>, CliError> {
    use tollgate_core::billing::{RunOptions, demo, run, settings};

    let (account, app) = demo_application(pool).await?;
    let mode = settings::get(pool).await?.mode;
    let month = run::default_month(mode, jiff::Timestamp::now());
    let (_, usage_month) = mode.main_months(month);
    demo::seed_month_usage(pool, app.0, "hits", usage_month, DEMO_MONTH_HITS).await?;
    let options = RunOptions {
        month: Some(month),
        account: Some(account.0),
        public_url: public_url.into(),
        ..RunOptions::default()
    };
    run::run(pool, &options, |_, _| {}).await?;
    let number = tollgate_core::billing::invoices::list_for_account(pool, account.0)
        .await?
        .into_iter()
        .find(|i| i.period == month.to_string())
        .map(|i| i.number);
    Ok(number)
}

/// The demo developer's app on the Basic plan gets a new key on every run,
/// since keys are stored only as hashes and cannot be shown again.
pub async fn fresh_demo_key(pool: &PgPool) -> Result<String, CliError> {
    use tollgate_core::credentials;

    let actor = Actor::system("tollgate dev");
    let (account, app) = demo_application(pool).await?;
    for key in credentials::list(pool, account, app).await? {
        if key.revoked_at.is_none() {
            credentials::revoke(pool, account, app, key.id, &actor).await?;
        }
    }
    let key = credentials::issue(pool, account, app, &actor).await?;
    Ok(key.secret.as_str().to_owned())
}

/// The demo developer's account and its demo app (made on the Basic plan if missing).
pub async fn demo_application(
    pool: &PgPool,
) -> Result<(tollgate_core::accounts::AccountId, tollgate_core::applications::ApplicationId), CliError> {
    use tollgate_core::applications::{self, NewApplication};

    let actor = Actor::system("tollgate dev");
    let Some(user) = tollgate_core::accounts::authenticate(
        pool,
        &PasswordHasher::new(1),
        DEMO_DEVELOPER_EMAIL,
        DEMO_DEVELOPER_PASSWORD,
        &tollgate_core::accounts::ClientAddress::new(std::net::Ipv4Addr::LOCALHOST.into()),
        None,
    )
    .await
    .ok()
    .and_then(|o| match o {
        tollgate_core::accounts::SignInOutcome::SignedIn(user) => Some(user),
        _ => None,
    }) else {
        return Err(CliError::Other("the demo developer cannot sign in; was its password changed?".into()));
    };
    let account = user.account_id.ok_or_else(|| CliError::Other("the demo developer has no account".into()))?;
    let apps = applications::list_for_account(pool, account).await?;
    let app = match apps.into_iter().find(|a| a.name == DEMO_APP) {
        Some(app) => app,
        None => {
            let api = find_by_slug(pool, "weather")
                .await?
                .ok_or_else(|| CliError::Other("the demo API is missing".into()))?;
            let plans = tollgate_core::plans::list_plans(pool, api.id).await?;
            let basic = plans
                .into_iter()
                .find(|p| p.system_name == "basic")
                .ok_or_else(|| CliError::Other("the Basic plan is missing".into()))?;
            applications::create(
                pool,
                account,
                &NewApplication {
                    plan_id: basic.id,
                    name: DEMO_APP.into(),
                    description: "Made by tollgate dev".into(),
                },
                &actor,
            )
            .await?
        }
    };
    Ok((account, app.id))
}
