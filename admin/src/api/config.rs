//! Configuration as code over HTTP: the provider's configuration as YAML
//! (`GET /admin/api/v1/config`, what `tollgate export` writes) and applying
//! such a document (`POST /admin/api/v1/config/apply`, what `tollgate apply`
//! does), so a CI job needs only an admin token. A bad document is 422 with
//! the line, column and path of what is wrong; nothing is applied.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::config_code::{self, Action, ApplyError, Change, Located, Options};
use tollgate_core::db::PgPool;
use tollgate_web::PublicUrl;
use utoipa::{IntoParams, ToSchema};

use super::auth::admin;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::wire::parse_query;

/// The YAML media type both endpoints document.
const YAML: &str = "application/yaml";

/// The provider's configuration as one YAML document: billing settings, APIs
/// with their specs, upstreams, upstream groups and routes, mock mode and auth,
/// metrics, mapping rules, plans with limits and prices, lifecycle states.
/// Stable in order, free of secrets and of ids but application routes'.
#[utoipa::path(get, operation_id = "export_config", path = "/admin/api/v1/config", tag = "config",
    responses((status = 200, description = "The configuration (format: docs/CONFIG-AS-CODE.md)", body = ConfigDocument, content_type = "application/yaml"),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let text = config_code::export(&pool).await?;
    Ok(HttpResponse::Ok().content_type(format!("{YAML}; charset=utf-8")).body(text))
}

/// The configuration document, written as YAML (its fields:
/// docs/CONFIG-AS-CODE.md). For the document only: the server reads it with
/// `tollgate_core::config_code::parse`, which locates every error.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConfigDocument {
    /// The format's version.
    #[schema(minimum = 1, maximum = 1)]
    version: u32,
    /// Who issues invoices, tax, mode and payment terms (unchanged when left out).
    #[schema(value_type = Option<Object>, required = false)]
    billing: Option<serde_json::Value>,
    /// API products by slug, each with its spec, upstreams, routing (upstream groups, application routes),
    /// mocks, auth, lifecycle, metrics, mapping rules and plans (none when left out).
    #[schema(value_type = Vec<Object>, required = false)]
    apis: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// Work out the diff and change nothing.
    pub dry_run: Option<bool>,
    /// Also remove APIs, plans, metrics, rules, upstream groups and application routes the document does not
    /// name (a plan in use is refused, 409).
    pub prune: Option<bool>,
}

/// One field of a changed object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigFieldChangeOut {
    pub field: String,
    /// Null when the field had no value.
    pub before: Option<String>,
    /// Null when the field has no value any more.
    pub after: Option<String>,
}

/// One object created, changed or removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigChangeOut {
    #[schema(value_type = String, pattern = "^(created|changed|removed)$")]
    pub action: Action,
    /// `billing_settings`, `api`, `metric`, `mapping_rule`, `plan`, `upstream_group` or `application_route`.
    pub kind: String,
    /// The API's slug, then the object's name, e.g. `weather/basic`.
    pub name: String,
    /// The fields that differ, for `changed`.
    pub fields: Vec<ConfigFieldChangeOut>,
}

impl From<Change> for ConfigChangeOut {
    fn from(c: Change) -> ConfigChangeOut {
        ConfigChangeOut {
            action: c.action,
            kind: c.kind.to_owned(),
            name: c.name,
            fields: c
                .fields
                .into_iter()
                .map(|f| ConfigFieldChangeOut { field: f.field, before: f.before, after: f.after })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigSummaryOut {
    pub created: usize,
    pub changed: usize,
    pub removed: usize,
}

/// What an apply did, or would do in a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigApplyOut {
    pub dry_run: bool,
    /// Whether changes were committed (false for a dry run or when there were none).
    pub applied: bool,
    pub summary: ConfigSummaryOut,
    pub changes: Vec<ConfigChangeOut>,
    /// The diff as `tollgate apply` prints it (`no changes` when there are none).
    pub text: String,
}

/// A document that cannot be applied, and where.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigErrorBody {
    /// `invalid_config` (422) or `conflict` (409).
    pub error: String,
    /// Where and what, e.g. `line 12, column 9: apis[0].plans[1].limits[0].metric: …`.
    pub message: String,
    /// The node, e.g. `apis[0].plans[1].limits[0].metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// From 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// From 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Every problem found, in the file's order (at most 50); the fields above are the first's.
    pub errors: Vec<ConfigProblemOut>,
}

/// One problem in a configuration document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigProblemOut {
    /// What is wrong, without where.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

fn refused(status: StatusCode, error: &str, problems: Vec<Located>) -> HttpResponse {
    let first = problems.first().cloned().unwrap_or_else(|| Located {
        line: None,
        column: None,
        path: None,
        message: "the document is not valid".into(),
    });
    let message = match problems.len() {
        0 | 1 => first.to_string(),
        config_code::MAX_PROBLEMS => {
            format!("{} problems or more (the check stops there); the first: {first}", config_code::MAX_PROBLEMS)
        }
        n => format!("{n} problems; the first: {first}"),
    };
    HttpResponse::build(status).json(ConfigErrorBody {
        error: error.to_owned(),
        message,
        path: first.path,
        line: first.line,
        column: first.column,
        errors: problems
            .into_iter()
            .map(|p| ConfigProblemOut { message: p.message, path: p.path, line: p.line, column: p.column })
            .collect(),
    })
}

/// Make the platform match a configuration document (YAML, as `GET /config`
/// writes it) in one transaction, and answer the diff. Idempotent: the same
/// document again answers no changes.
#[utoipa::path(post, operation_id = "apply_config", path = "/admin/api/v1/config/apply", tag = "config",
    params(ApplyQuery),
    request_body(content = ConfigDocument, content_type = "application/yaml", description = "The configuration document (format: docs/CONFIG-AS-CODE.md)"),
    responses((status = 200, body = ConfigApplyOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ConfigErrorBody, description = "The document asks to remove something in use (a plan with applications)"),
              (status = 422, body = ConfigErrorBody, description = "The document is invalid: `line`, `column` and `path` say where")),
    security(("bearer" = [])))]
pub async fn apply(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let query: ApplyQuery = parse_query(&req)?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the body must be UTF-8 YAML text".into()))?;
    let options = Options { dry_run: query.dry_run.unwrap_or(false), prune: query.prune.unwrap_or(false) };
    let outcome = match config_code::apply(&pool, text, options, &actor, &public_url.0).await {
        Ok(outcome) => outcome,
        Err(ApplyError::Invalid(problems)) => {
            return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", problems));
        }
        Err(ApplyError::Conflict(at)) => return Ok(refused(StatusCode::CONFLICT, "conflict", vec![at])),
        Err(ApplyError::Core(e)) => return Err(e.into()),
    };
    let summary = config_code::summary(&outcome.changes);
    Ok(HttpResponse::Ok().json(ConfigApplyOut {
        dry_run: options.dry_run,
        applied: outcome.applied,
        summary: ConfigSummaryOut { created: summary.created, changed: summary.changed, removed: summary.removed },
        text: config_code::render(&outcome.changes),
        changes: outcome.changes.into_iter().map(ConfigChangeOut::from).collect(),
    }))
}
