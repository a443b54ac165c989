//! The API catalog: search, each API's docs (rendered from the stored
//! spec by the vendored Swagger UI), a plan comparison, try-it against the
//! gateway and copy-paste samples.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::apis::ApiSummary;
use tollgate_core::apis::catalog;
use tollgate_core::apis::detail::{self, ApiDetail};
use tollgate_core::apis::{ApiState, KeyLocation};
use tollgate_core::db::PgPool;
use tollgate_core::plans::{Period, PlanDetail, get_plan, list_plans};
use tollgate_openapi::Operation;
use tollgate_web::{Chrome, GatewayUrl, PageError, PageResult, Session, render};

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    chrome: Chrome,
    apis: Vec<ApiSummary>,
    q: String,
}

#[derive(serde::Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

/// The start page lists the APIs developers can subscribe to, with search.
pub async fn home(
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<SearchQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::without_forms(&session);
    let q: String = query.into_inner().q.unwrap_or_default().chars().take(200).collect();
    let apis = catalog::search(&pool, Some(&q)).await?;
    Ok(render(StatusCode::OK, &HomePage { chrome, apis, q }))
}

/// One operation with ready-to-paste calls.
struct Sample {
    operation: Operation,
    curl: String,
    python: String,
    javascript: String,
}

fn samples(gateway: &str, base_path: &str, operations: Vec<Operation>) -> Vec<Sample> {
    operations
        .into_iter()
        .map(|operation| {
            let url = format!("{}{}{}?user_key=YOUR_KEY", gateway.trim_end_matches('/'), base_path.trim_end_matches('/'), operation.path);
            let method = operation.method.clone();
            let has_body = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
            let curl = if has_body {
                format!("curl -X {method} '{url}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{{}}'")
            } else if method == "GET" {
                format!("curl '{url}'")
            } else {
                format!("curl -X {method} '{url}'")
            };
            let python = if has_body {
                format!("import requests\n\nresponse = requests.request(\"{method}\", \"{url}\", json={{}})\nprint(response.status_code, response.json())")
            } else {
                format!("import requests\n\nresponse = requests.request(\"{method}\", \"{url}\")\nprint(response.status_code, response.json())")
            };
            let javascript = if has_body {
                format!("const response = await fetch(\"{url}\", {{\n  method: \"{method}\",\n  headers: {{ \"Content-Type\": \"application/json\" }},\n  body: JSON.stringify({{}}),\n}});\nconsole.log(response.status, await response.json());")
            } else {
                format!("const response = await fetch(\"{url}\", {{ method: \"{method}\" }});\nconsole.log(response.status, await response.json());")
            };
            Sample { operation, curl, python, javascript }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal/api.html")]
struct ApiPage {
    chrome: Chrome,
    api: ApiDetail,
    plans: Vec<PlanDetail>,
    samples: Vec<Sample>,
    gateway: String,
    /// The limit rows of the comparison table: (metric, period).
    limit_rows: Vec<(String, Period)>,
}

impl ApiPage {
    fn limit_of(&self, plan: &PlanDetail, metric: &str, period: &Period) -> String {
        plan.limits
            .iter()
            .find(|l| l.metric == metric && l.period == *period)
            .map(|l| l.max.to_string())
            .unwrap_or_else(|| "—".into())
    }

    fn price_of(plan: &PlanDetail) -> String {
        if plan.monthly_fee.is_zero() {
            "Free".into()
        } else {
            format!("{} {}", plan.monthly_fee.normalize(), plan.currency)
        }
    }
}

pub async fn api(
    session: Session,
    pool: web::Data<PgPool>,
    gateway: web::Data<GatewayUrl>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = catalog::published(&pool, &path).await?.ok_or(PageError(tollgate_core::Error::NotFound))?;
    let api = detail::get(&pool, id).await?;
    let mut plans = Vec::new();
    for plan in list_plans(&pool, id).await?.into_iter().filter(|p| p.published) {
        plans.push(get_plan(&pool, plan.id).await?);
    }
    let mut limit_rows: Vec<(String, Period)> =
        plans.iter().flat_map(|p| p.limits.iter().map(|l| (l.metric.clone(), l.period))).collect();
    limit_rows.sort();
    limit_rows.dedup();
    let (source, _) = detail::latest_spec(&pool, id).await?;
    let operations = tollgate_openapi::parse(&source).map(|s| s.operations).unwrap_or_default();
    let samples = samples(&gateway.0, &api.base_path, operations);
    let chrome = Chrome::without_forms(&session);
    Ok(render(StatusCode::OK, &ApiPage { chrome, api, plans, samples, gateway: gateway.0.clone(), limit_rows }))
}

/// The stored document, byte for byte, for the docs viewer. It is text an
/// admin uploaded, so no browser may render it as a page: a data type (with
/// `nosniff` and a sandboxing policy from the security headers) and a
/// download when opened directly.
pub async fn spec(pool: web::Data<PgPool>, path: web::Path<String>) -> PageResult<HttpResponse> {
    let id = catalog::published(&pool, &path).await?.ok_or(PageError(tollgate_core::Error::NotFound))?;
    let (source, format) = detail::latest_spec(&pool, id).await?;
    let (content_type, extension) =
        if format == "json" { ("application/json", "json") } else { ("application/yaml; charset=utf-8", "yaml") };
    // The slug is [a-z0-9-], so it is safe inside the quoted file name.
    let disposition = format!("attachment; filename=\"{}-openapi.{extension}\"", path.as_str());
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, disposition))
        .body(source))
}
