//! Configuration as code (issue 16): `tollgate export` and `tollgate apply`
//! run as an operator would, and the same over the admin API. A configured
//! platform exported, applied to an empty database and exported again is
//! byte for byte the same file, upstream groups, plan routes and mock mode
//! included.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;
use tollgate::cli::dev::{demo_application, seed};
use tollgate_core::apis::detail::{self, ApiChanges};
use tollgate_core::apis::mocks::{self, MockChanges};
use tollgate_core::apis::rules::{self, NewRule};
use tollgate_core::apis::{ApiState, KeyLocation, NewApi, create_from_spec, find_by_slug, lifecycle};
use tollgate_core::audit::Actor;
use tollgate_core::billing::BillingMode;
use tollgate_core::billing::pricing::PricingMode;
use tollgate_core::billing::settings::{self as billing_settings, BillingSettings};
use tollgate_core::plans::{NewLimit, NewPlan, NewPrice, NewPricingMode, Period, create_plan};
use tollgate_core::routing::{self, GroupName};
use tollgate_core::usage::levels::{AlertLevel, set_plan_levels};

use crate::helpers::{TestApp, database_url, spawn_app};

fn tollgate(args: &[&str], database: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE_LOG", "warn")
        .env("TOLLGATE_DATABASE_URL", database)
        .output()
        .expect("run tollgate")
}

fn out(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tollgate-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A second, empty database on the test's server, dropped when the test ends well.
struct EmptyDatabase {
    pool: PgPool,
    name: String,
    url: String,
}

impl EmptyDatabase {
    async fn create(pool: &PgPool) -> EmptyDatabase {
        let url = database_url(pool).await;
        let test = pool.connect_options().get_database().unwrap().to_owned();
        // Test databases' names are already as long as Postgres allows: a short one of its own.
        let name = format!("tollgate_empty_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(pool).await.unwrap();
        let url = url.replacen(&format!("/{test}"), &format!("/{name}"), 1);
        EmptyDatabase { pool: pool.clone(), name, url }
    }

    async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.name)))
            .execute(&self.pool)
            .await
            .unwrap();
    }
}

const PETS_JSON: &str = r#"{"openapi": "3.1.0", "info": {"title": "Pets", "version": "1"},
 "paths": {"/pets": {"get": {"operationId": "listPets", "responses": {"200": {"description": "ok"}}}},
           "/pets/{id}": {"get": {"responses": {"200": {"description": "ok"}}}}}}"#;

/// The demo platform and more: a hand-made method and rule, a header key,
/// a volume-priced plan with its own alert levels, a deprecated API with its
/// sunset, a second draft API from a JSON document; a canary upstream group
/// with a tenth of the calls and the volume-priced plan sent to it; one
/// operation of the draft API in mock mode; billing settings of a provider.
async fn configure(pool: &PgPool) {
    seed(pool).await.unwrap();
    let actor = Actor::system("test");
    let billing = BillingSettings {
        provider_name: "Example Ltd".into(),
        provider_address: "1 Main Street\nSpringfield".into(),
        provider_tax_id: "GB123".into(),
        tax_rate: Decimal::new(2, 1),
        mode: BillingMode::Prepaid,
        payment_terms_days: 30,
        payment_instructions: "IBAN GB33 BUKB 2020 1555 5555 55".into(),
    };
    billing_settings::update(pool, &billing, &actor).await.unwrap();
    let weather = find_by_slug(pool, "weather").await.unwrap().unwrap();
    rules::add_metric(pool, weather.id, "premium", "Premium calls", Some("hits"), &actor).await.unwrap();
    let rule = NewRule {
        http_method: "POST".into(),
        pattern: "/premium/{x}".into(),
        metric: "premium".into(),
        delta: 5,
        last: true,
        position: Some(10),
    };
    rules::add_rule(pool, weather.id, &rule, &actor).await.unwrap();
    let changes = ApiChanges {
        key_location: Some(KeyLocation::Header),
        key_name: Some("X-Api-Key".into()),
        upstream_urls: Some(vec!["https://b.example.test".into(), "https://a.example.test".into()]),
        ..ApiChanges::default()
    };
    detail::update(pool, weather.id, &changes, &actor).await.unwrap();
    let enterprise = NewPlan {
        system_name: "enterprise".into(),
        name: "Enterprise".into(),
        description: "Volume pricing.".into(),
        published: false,
        approval_required: true,
        setup_fee: Decimal::new(12_550, 2),
        monthly_fee: Decimal::new(999, 1),
        trial_days: 30,
        currency: "EUR".into(),
        time_zone: "Europe/Paris".into(),
        limits: vec![NewLimit { metric: "premium".into(), period: Period::Hour, max: 50 }],
        pricing: vec![
            NewPrice { metric: "premium".into(), from: 1, to: Some(100), price_per_unit: Decimal::new(25, 3) },
            NewPrice { metric: "premium".into(), from: 101, to: None, price_per_unit: Decimal::new(1, 2) },
        ],
        pricing_modes: vec![NewPricingMode { metric: "premium".into(), mode: PricingMode::Volume }],
    };
    let plan = create_plan(pool, weather.id, &enterprise, &actor).await.unwrap();
    set_plan_levels(pool, plan.0, &[AlertLevel::new(50).unwrap(), AlertLevel::new(120).unwrap()], &actor)
        .await
        .unwrap();
    let sunset = time::macros::datetime!(2099-01-31 12:00 UTC);
    lifecycle::set_state(pool, weather.id, ApiState::Deprecated, Some(sunset), &actor, "http://localhost")
        .await
        .unwrap();
    let canary = GroupName::parse("name", "canary").unwrap();
    let urls = vec!["https://canary.example.test".into()];
    routing::put_group(pool, &actor, weather.id, &canary, 10, Some(urls)).await.unwrap();
    let default = GroupName::parse("name", "default").unwrap();
    routing::put_group(pool, &actor, weather.id, &default, 90, None).await.unwrap();
    routing::set_plan_route(pool, &actor, plan, Some(&canary), None).await.unwrap();
    let spec = tollgate_openapi::parse(PETS_JSON).unwrap();
    let new = NewApi { name: Some("Pets".into()), slug: Some("pets".into()), ..NewApi::default() };
    let pets = create_from_spec(pool, PETS_JSON, &spec, new, &actor).await.unwrap();
    let list_pets: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM metrics WHERE api_id = $1 AND system_name = 'listPets'")
            .bind(pets.id.0)
            .fetch_one(pool)
            .await
            .unwrap();
    let changes = MockChanges { whole_api: None, operations: [(list_pets, true)].into() };
    mocks::set(pool, pets.id, &changes, &actor).await.unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn export_apply_to_an_empty_database_and_export_again_is_byte_identical(pool: PgPool) {
    configure(&pool).await;
    // A deprecated API whose sunset has passed (nothing retires it by itself) is copied as it
    // is: its date was refused as "not in the future" on the empty platform.
    sqlx::query("UPDATE api_products SET sunset_at = '2020-01-31T12:00:00Z' WHERE sunset_at IS NOT NULL")
        .execute(&pool)
        .await
        .unwrap();
    let source = database_url(&pool).await;
    let dir = TempDir::new("roundtrip");
    let first = dir.file("first.yaml");
    let exported = tollgate(&["export", "--output", path_str(&first)], &source);
    assert!(exported.status.success(), "{}", err(&exported));
    let text = std::fs::read_to_string(&first).unwrap();
    for expected in [
        "key_location: header",
        "key_name: X-Api-Key",
        "  - https://a.example.test\n  - https://b.example.test\n",
        "sunset_at: 2020-01-31T12:00:00Z",
        "- method: POST\n    pattern: /premium/{x}\n    metric: premium\n    delta: 5\n    position: 10\n    last: true\n    origin: manual",
        "alert_levels:\n    - 50\n    - 120",
        "pricing_modes:\n    - metric: premium\n      mode: volume",
        "setup_fee: '125.5'",
        "  routing:\n    groups:\n    - name: default\n      weight: 90\n    - name: canary\n      weight: 10\n      urls:\n      - https://canary.example.test\n",
        "    upstream_group: canary\n",
        "  mocks:\n    operations:\n    - listPets\n",
        "version: 1\nbilling:\n  provider_name: Example Ltd\n  provider_address: |-\n    1 Main Street\n    Springfield\n  provider_tax_id: GB123\n  tax_rate: '0.2'\n  mode: prepaid\n  payment_terms_days: 30\n  payment_instructions: IBAN GB33 BUKB 2020 1555 5555 55\napis:\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    for secret in ["tg_", "password", "$argon2", "_at: 2026"] {
        assert!(!text.contains(secret), "{secret} in the export");
    }

    let empty = EmptyDatabase::create(&pool).await;
    assert!(tollgate(&["migrate"], &empty.url).status.success());
    let dry = tollgate(&["apply", "-f", path_str(&first), "--dry-run"], &empty.url);
    assert!(dry.status.success(), "{}", err(&dry));
    assert!(out(&dry).ends_with("23 created, 1 changed, 0 removed\ndry run: nothing was applied\n"), "{}", out(&dry));
    assert!(
        out(&dry).starts_with("~ billing_settings billing\n    provider_name: \"\" -> \"Example Ltd\"\n"),
        "{}",
        out(&dry)
    );
    let nothing = tollgate(&["export"], &empty.url);
    assert!(out(&nothing).ends_with("  payment_terms_days: 14\napis: []\n"), "{}", out(&nothing));

    let applied = tollgate(&["apply", "-f", path_str(&first)], &empty.url);
    assert!(applied.status.success(), "{}", err(&applied));
    for line in [
        "+ api pets",
        "+ api weather",
        "+ plan weather/enterprise",
        "+ mapping_rule weather/POST /premium/{x}",
        "+ upstream_group weather/canary",
        "+ upstream_group weather/default",
    ] {
        assert!(out(&applied).lines().any(|l| l == line), "{line} in\n{}", out(&applied));
    }
    let second = dir.file("second.yaml");
    assert!(tollgate(&["export", "-o", path_str(&second)], &empty.url).status.success());
    assert_eq!(std::fs::read_to_string(&second).unwrap(), text, "the second export differs from the first");

    let again = tollgate(&["apply", "-f", path_str(&first)], &empty.url);
    assert!(again.status.success(), "{}", err(&again));
    assert_eq!(out(&again), "no changes\n");

    // A malformed file names the file, line and column; nothing changes.
    let bad = dir.file("bad.yaml");
    std::fs::write(&bad, text.replacen("trial_days: 30", "trial_days: thirty", 1)).unwrap();
    let line = text.lines().position(|l| l.contains("trial_days: 30")).unwrap() + 1;
    let refused = tollgate(&["apply", "-f", path_str(&bad)], &empty.url);
    assert_eq!(refused.status.code(), Some(1));
    let expected = format!("{}:{line}:17: apis[", bad.display());
    assert!(err(&refused).contains(&expected), "{expected} in {}", err(&refused));
    assert!(err(&refused).contains("trial_days: invalid type"), "{}", err(&refused));
    assert_eq!(out(&tollgate(&["apply", "-f", path_str(&first), "--dry-run"], &empty.url)), "no changes\n");
    empty.drop().await;
}

struct Admin {
    app: TestApp,
    token: String,
}

async fn admin_app(pool: PgPool) -> Admin {
    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    Admin { app: spawn_app(pool).await, token: token.as_str().to_owned() }
}

impl Admin {
    async fn export(&self) -> String {
        let res =
            self.app.client.get(self.app.url("/admin/api/v1/config")).bearer_auth(&self.token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/yaml; charset=utf-8");
        res.text().await.unwrap()
    }

    async fn apply(&self, query: &str, yaml: &str) -> (u16, Value) {
        let res = self
            .app
            .client
            .post(self.app.url(&format!("/admin/api/v1/config/apply{query}")))
            .bearer_auth(&self.token)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

/// The text of a plan's block (from its `- system_name:` line to the next plan or the spec).
fn without_plan(yaml: &str, system_name: &str) -> String {
    let start = yaml.find(&format!("  - system_name: {system_name}\n")).unwrap();
    let rest = &yaml[start + 1..];
    let end = rest.find("  - system_name: ").into_iter().chain(rest.find("  spec: ")).min().unwrap() + start + 1;
    format!("{}{}", &yaml[..start], &yaml[end..])
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_dry_run_answers_the_field_level_diff_and_a_second_apply_changes_nothing(pool: PgPool) {
    let admin = admin_app(pool).await;
    let before = admin.export().await;
    let changed = before
        .replacen("    name: Basic\n", "    name: Basic plan\n", 1)
        .replacen("    monthly_fee: '49'\n", "    monthly_fee: '59.50'\n", 1)
        .replacen("      max: 1000000\n", "      max: 2000000\n", 1)
        .replacen("  unmatched: not_found\n", "  unmatched: pass\n", 1);
    let (status, body) = admin.apply("?dry_run=true", &changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["text"],
        "~ api weather\n    unmatched: not_found -> pass\n\
         ~ plan weather/basic\n    name: \"Basic\" -> \"Basic plan\"\n\
         ~ plan weather/pro\n    monthly_fee: 49 -> 59.5\n    limits.hits.month: 1000000 -> 2000000\n\
         0 created, 3 changed, 0 removed\n"
    );
    assert_eq!(body["applied"], false);
    assert_eq!(body["summary"]["changed"], 3);
    assert_eq!(
        body["changes"][2]["fields"][0],
        serde_json::json!({"field": "monthly_fee", "before": "49", "after": "59.5"})
    );
    assert_eq!(admin.export().await, before, "a dry run changed something");

    let revision = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT coalesce(max(revision), 0) FROM config_changes")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let head = revision(admin.app.pool.clone()).await;
    let (status, body) = admin.apply("", &changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], true);
    // Agents hear of it as of a click in the UI, and the audit log says who.
    assert!(revision(admin.app.pool.clone()).await > head);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('config.apply', 'plan.update', 'api.routing')",
    )
    .fetch_one(&admin.app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 4);
    let after = admin.export().await;
    assert!(after.contains("monthly_fee: '59.5'") && after.contains("unmatched: pass"), "{after}");

    let (status, body) = admin.apply("?dry_run=false&prune=false", &changed).await;
    assert_eq!(status, 200);
    assert_eq!(body["text"], "no changes\n");
    assert_eq!(body["applied"], false);
    assert_eq!(admin.export().await, after);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn prune_removes_an_unused_plan_and_refuses_a_plan_in_use(pool: PgPool) {
    let admin = admin_app(pool).await;
    demo_application(&admin.app.pool).await.unwrap();
    let before = admin.export().await;

    // Without prune, a plan the file leaves out stays.
    let no_pro = without_plan(&before, "pro");
    let (status, body) = admin.apply("", &no_pro).await;
    assert_eq!((status, body["text"].as_str()), (200, Some("no changes\n")), "{body}");

    let (status, body) = admin.apply("?prune=true", &no_pro).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "- plan weather/pro\n0 created, 0 changed, 1 removed\n");
    let after = admin.export().await;
    assert_eq!(after, no_pro);

    // Basic has the demo application: the whole apply is refused, naming it.
    let no_basic = without_plan(&after, "basic").replacen("    name: Weather API\n", "    name: Weather\n", 1);
    let (status, body) = admin.apply("?prune=true", &no_basic).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "conflict");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("cannot remove the plan weather/basic") && message.contains("1 application(s)"),
        "{message}"
    );
    assert_eq!(admin.export().await, after, "a refused apply changed something");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_malformed_document_is_refused_with_its_line_and_column(pool: PgPool) {
    let admin = admin_app(pool).await;
    let before = admin.export().await;
    let line_of = |needle: &str| before.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let (status, body) = admin.apply("", "version: 1\napis:\n  - slug: [unclosed\n").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_config");
    assert!(body["line"].as_u64().is_some(), "{body}");

    // A reference the document cannot resolve is located at the reference.
    let bad = before.replacen(
        "    - metric: hits\n      period: minute\n      max: 10\n",
        "    - metric: nohits\n      period: minute\n      max: 10\n",
        1,
    );
    let (status, body) = admin.apply("", &bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["path"], "apis[0].plans[0].limits[0].metric");
    assert_eq!(body["line"], line_of("period: minute") - 1);
    assert_eq!(body["column"], 15);
    assert!(body["message"].as_str().unwrap().ends_with("nohits is not a metric of this API"), "{body}");

    // Every problem the checks find is named at once, in the file's order.
    let bad = before.replace("    - metric: hits\n      period:", "    - metric: nohits\n      period:");
    let wrong = bad.matches("metric: nohits").count();
    assert!(wrong >= 2, "the demo's plans have several limits on hits: {before}");
    let (status, body) = admin.apply("", &bad).await;
    assert_eq!(status, 422, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), wrong, "{body}");
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{body}");
    assert!(errors.iter().all(|e| e["path"].as_str().unwrap().ends_with(".metric")), "{body}");
    assert_eq!((body["path"].clone(), body["line"].clone()), (errors[0]["path"].clone(), errors[0]["line"].clone()));
    assert!(body["message"].as_str().unwrap().starts_with(&format!("{wrong} problems; the first: line ")), "{body}");

    // What only the platform refuses (a time zone) is located too.
    let bad = before.replacen("time_zone: UTC", "time_zone: Mars/Olympus", 1);
    let (status, body) = admin.apply("?dry_run=true", &bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["path"], "apis[0].plans[0].time_zone");
    assert_eq!(body["line"], line_of("time_zone: UTC"));

    // Billing settings are located too, at the field the platform refuses.
    let bad = before.replacen("  tax_rate: '0'\n", "  tax_rate: '1.5'\n", 1);
    let (status, body) = admin.apply("", &bad).await;
    assert_eq!((status, body["path"].as_str()), (422, Some("billing.tax_rate")), "{body}");
    assert_eq!(body["line"], line_of("  tax_rate: '0'"));

    let (status, body) = admin.apply("", "version: 2\n").await;
    assert_eq!((status, body["line"].as_u64()), (422, Some(1)), "{body}");
    let (status, _) = admin.apply("", "").await;
    assert_eq!(status, 422);
    assert_eq!(admin.export().await, before);

    let res =
        admin.app.client.post(admin.app.url("/admin/api/v1/config/apply")).body("version: 1\n").send().await.unwrap();
    assert_eq!(res.status(), 401);
}

/// Routing and mock mode from the file: a new split, a plan and an application sent to a
/// group and mocked operations show in a dry run field by field and apply as clicks would
/// (agents hear of both); bad references are located; prune removes what the file drops.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn routing_and_mocks_in_the_file_show_in_the_diff_apply_and_prune(pool: PgPool) {
    let admin = admin_app(pool).await;
    let (_, app) = demo_application(&admin.app.pool).await.unwrap();
    let before = admin.export().await;
    assert!(!before.contains("  routing:") && !before.contains("  mocks:"), "{before}");
    let routing = format!(
        "  routing:\n    groups:\n    - name: default\n      weight: 80\n    - name: canary\n      weight: 20\n      \
         urls:\n      - https://canary.example.test\n    applications:\n    - application: {}\n      group: canary\n  \
         mocks:\n    operations:\n    - listCities\n    - getForecast\n",
        app.0
    );
    let changed = before.replacen("  auth:\n", &format!("{routing}  auth:\n"), 1).replacen(
        "    name: Basic\n",
        "    name: Basic\n    upstream_group: canary\n",
        1,
    );
    let (status, body) = admin.apply("?dry_run=true", &changed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["text"].as_str().unwrap(),
        format!(
            "~ api weather\n    mocks.operations: [] -> [getForecast, listCities]\n\
             ~ plan weather/basic\n    upstream_group: (split) -> canary\n\
             + upstream_group weather/canary\n\
             ~ upstream_group weather/default\n    weight: 100 -> 80\n\
             + application_route weather/{}\n\
             2 created, 3 changed, 0 removed\n",
            app.0
        )
    );
    assert_eq!(admin.export().await, before, "a dry run changed something");

    let (status, body) = admin.apply("", &changed).await;
    assert_eq!((status, body["applied"].as_bool()), (200, Some(true)), "{body}");
    let after = admin.export().await;
    for expected in [
        "  routing:\n    groups:\n    - name: default\n      weight: 80\n    - name: canary\n      weight: 20\n",
        &format!("    applications:\n    - application: {}\n      group: canary\n", app.0),
        "  mocks:\n    operations:\n    - getForecast\n    - listCities\n",
        "    upstream_group: canary\n",
    ] {
        assert!(after.contains(expected), "missing {expected:?} in\n{after}");
    }
    let entities: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT entity FROM config_changes WHERE entity IN ('routing', 'mocks') ORDER BY entity",
    )
    .fetch_all(&admin.app.pool)
    .await
    .unwrap();
    assert_eq!(entities, ["mocks", "routing"], "agents hear of routing and mocks");
    let (status, body) = admin.apply("", &after).await;
    assert_eq!((status, body["text"].as_str()), (200, Some("no changes\n")), "{body}");

    // Bad references are refused where they are, and nothing changes.
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        (
            "    upstream_group: canary\n",
            "    upstream_group: blue\n",
            "apis[0].plans[0].upstream_group",
            "blue is not an upstream group",
        ),
        (
            &app.0.to_string(),
            "0190e4d2-0000-7000-8000-000000000000",
            "apis[0].routing.applications[0].application",
            "there is no application",
        ),
        (
            "      - https://canary.example.test\n",
            "      - ftp://canary.example.test\n",
            "apis[0].routing.groups[1].urls[0]",
            "http:// or https://",
        ),
        (
            "    - listCities\n",
            "    - hits\n",
            "apis[0].mocks.operations[1]",
            "hits is not the method metric of an imported operation",
        ),
        (
            "      weight: 20\n",
            "      weight: 2000000\n",
            "apis[0].routing.groups[1].weight",
            "a weight is an integer from 0 to 1000000",
        ),
        ("    - name: canary\n", "    - name: Canary!\n", "apis[0].routing.groups[1].name", "a group name is"),
    ];
    for (from, to, path, message) in cases {
        let bad = after.replacen(from, to, 1);
        let (status, body) = admin.apply("", &bad).await;
        assert_eq!((status, body["path"].as_str()), (422, Some(path)), "{body}");
        assert!(body["message"].as_str().unwrap().contains(message), "{body}");
        assert_eq!(body["line"].as_u64(), Some(line_of(&bad, to.trim_end()) as u64), "{body}");
    }
    // A split of nothing is the platform's refusal, located at the weight that made it.
    let nothing = after.replacen("      weight: 80\n", "      weight: 0\n", 1).replacen(
        "      weight: 20\n",
        "      weight: 0\n",
        1,
    );
    let (status, body) = admin.apply("", &nothing).await;
    assert_eq!((status, body["path"].as_str()), (422, Some("apis[0].routing.groups[1].weight")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("sum to more than 0"), "{body}");
    assert_eq!(admin.export().await, after, "a refused apply changed something");

    // A file without the routing: the plan goes back to the split; the group and the
    // application's route stay until prune removes them and sets default back to 100.
    let start = after.find("  routing:\n").unwrap();
    let end = after.find("  mocks:\n").unwrap();
    let dropped = format!("{}{}", &after[..start], &after[end..]).replacen("    upstream_group: canary\n", "", 1);
    let (status, body) = admin.apply("?dry_run=true", &dropped).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["text"],
        "~ plan weather/basic\n    upstream_group: canary -> (split)\n0 created, 1 changed, 0 removed\n"
    );
    let (status, body) = admin.apply("?prune=true", &dropped).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["text"].as_str().unwrap(),
        format!(
            "~ plan weather/basic\n    upstream_group: canary -> (split)\n\
             - upstream_group weather/canary\n\
             ~ upstream_group weather/default\n    weight: 80 -> 100\n\
             - application_route weather/{}\n\
             0 created, 2 changed, 2 removed\n",
            app.0
        )
    );
    assert_eq!(admin.export().await, dropped);
}

/// What gateways cannot use is refused by the file too, located: a published API left with
/// no upstream and no mock, and a public host with a port. Either, stored, made every agent
/// refuse the whole config (and with it every later revocation).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_file_that_would_freeze_every_gateway_is_refused_where_it_goes_wrong(pool: PgPool) {
    let admin = admin_app(pool).await;
    let before = admin.export().await;
    let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let start = before.find("\n  upstreams:\n").expect("the demo API has upstreams") + 1;
    let end = before[start..].find("\n").unwrap() + start + 1;
    let targets = before[end..].lines().take_while(|l| l.starts_with("  - ")).map(|l| l.len() + 1).sum::<usize>();
    let without_upstreams = format!("{}{}", &before[..start], &before[end + targets..]);
    assert!(!without_upstreams.contains("\n  upstreams:"), "{without_upstreams}");
    let (status, body) = admin.apply("", &without_upstreams).await;
    assert_eq!((status, body["path"].as_str()), (422, Some("apis[0].upstreams")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("no upstream and no mocked operation"), "{body}");

    let with_port = before.replacen("  base_path: ", "  public_host: api.example.com:8443\n  base_path: ", 1);
    let (status, body) = admin.apply("", &with_port).await;
    assert_eq!((status, body["path"].as_str()), (422, Some("apis[0].public_host")), "{body}");
    assert_eq!(body["line"], line_of(&with_port, "public_host:"));

    let bad_target = before.replacen("  upstreams:\n  - http", "  upstreams:\n  - HTTP", 1);
    let (status, body) = admin.apply("", &bad_target).await;
    assert_eq!((status, body["path"].as_str()), (422, Some("apis[0].upstreams[0]")), "{body}");
    assert_eq!(admin.export().await, before, "nothing of it was stored");
}

/// Export lists metrics, limits and prices in byte order whatever the database sorts text
/// by: on a database with a language collation (the official Postgres image's `en_US.utf8`),
/// the platform's own export, applied back, was refused because the orders differed.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_platforms_own_export_applies_back_on_a_database_with_a_language_collation(pool: PgPool) {
    let admin = admin_app(pool.clone()).await;
    for statement in [
        r#"ALTER TABLE metrics ALTER COLUMN system_name TYPE text COLLATE "en-x-icu""#,
        r#"ALTER TABLE plans ALTER COLUMN system_name TYPE text COLLATE "en-x-icu""#,
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let weather = find_by_slug(&pool, "weather").await.unwrap().unwrap();
    let actor = Actor::system("test");
    // Byte order puts upper case first; a language collation does not.
    for name in ["ListPets", "a-b", "ab"] {
        rules::add_metric(&pool, weather.id, name, name, Some("hits"), &actor).await.unwrap();
    }
    let before = admin.export().await;
    let (status, body) = admin.apply("", &before).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["applied"].as_bool(), body["summary"]["changed"].as_u64()), (Some(false), Some(0)), "{body}");
}

/// Refusals name the file's own words and places: a NUL in a text (Postgres cannot store
/// one: it was a 500), a rule's `method`, and a file larger than a spec but within the
/// file limit reaches the checks rather than the server's body limit.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_nul_a_bad_method_and_a_big_file_are_answered_in_the_files_terms(pool: PgPool) {
    let admin = admin_app(pool).await;
    let before = admin.export().await;
    let with_nul = before.replacen("  name: ", "  name: \"Weather\\0\"\n  x_was_name: ", 1);
    let with_nul = with_nul.replacen("  x_was_name: ", "  description_was: ", 1);
    let start = with_nul.find("  description_was: ").unwrap();
    let end = with_nul[start..].find('\n').unwrap() + start + 1;
    let with_nul = format!("{}{}", &with_nul[..start], &with_nul[end..]);
    let (status, body) = admin.apply("", &with_nul).await;
    assert_eq!((status, body["path"].as_str()), (422, Some("apis[0].name")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("NUL"), "{body}");

    assert!(before.contains("- method: GET\n"), "{before}");
    let bad_method = before.replacen("- method: GET\n", "- method: FETCH\n", 1);
    let (status, body) = admin.apply("", &bad_method).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["path"].as_str().unwrap().ends_with(".method"), "{body}");

    // 20 MiB: over a spec's 16, under the file's 32. A comment keeps it valid YAML.
    let big = format!("{before}#{}\n", "x".repeat(20 << 20));
    let (status, body) = admin.apply("?dry_run=true", &big).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(admin.export().await, before);
}
