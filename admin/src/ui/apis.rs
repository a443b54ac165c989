//! API products in the admin UI: import, settings (the compatibility policy
//! among them), lifecycle, metrics and mapping rules, and staging a new
//! version (its page is `versions`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use time::{Date, OffsetDateTime, Time};
use tollgate_core::UnknownName;
use tollgate_core::apis::detail::{self, ApiChanges, ApiDetail};
use tollgate_core::apis::lifecycle;
use tollgate_core::apis::rules::{self, MetricView, NewRule, RuleView};
use tollgate_core::apis::versions;
use tollgate_core::apis::{ApiId, ApiState, AuthMode, CompatibilityPolicy, KeyLocation, NewApi, create_from_spec};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::plans::{PlanSummary, list_plans};
use tollgate_openapi::ImportError;
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, EmptyForm, FieldErrors, PageResult, PublicUrl, Session, parse_id, render, see_other,
};

#[derive(Template)]
#[template(path = "admin/api_new.html")]
struct NewPage {
    chrome: Chrome,
    name: String,
    base_path: String,
    upstream_url: String,
    spec: String,
    errors: FieldErrors,
    spec_error: Option<ImportError>,
}

pub async fn new_form(_admin: AdminUser, session: Session) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let page = NewPage {
        chrome,
        name: String::new(),
        base_path: String::new(),
        upstream_url: String::new(),
        spec: String::new(),
        errors: FieldErrors::new(),
        spec_error: None,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    base_path: String,
    #[serde(default)]
    upstream_url: String,
    spec: String,
}

fn blank_to_none(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

pub async fn import(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<ImportForm>,
) -> PageResult<HttpResponse> {
    let parsed = tollgate_openapi::parse(&form.spec);
    let outcome = match &parsed {
        Ok(spec) => {
            let new = NewApi {
                name: blank_to_none(&form.name),
                slug: None,
                base_path: blank_to_none(&form.base_path),
                upstream_url: blank_to_none(&form.upstream_url),
            };
            create_from_spec(&pool, &form.spec, spec, new, &Actor::from(&user)).await.map(Some)
        }
        Err(_) => Ok(None),
    };
    let mut errors = FieldErrors::new();
    if let Some(Some(api)) = errors.note(outcome, "base_path")? {
        return Ok(see_other(format!("/admin/apis/{}", api.id.0)));
    }
    let chrome = Chrome::for_session(&session).await?;
    let page = NewPage {
        chrome,
        name: form.name,
        base_path: form.base_path,
        upstream_url: form.upstream_url,
        spec: form.spec,
        errors,
        spec_error: parsed.err(),
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Template)]
#[template(path = "admin/api.html")]
struct ShowPage {
    chrome: Chrome,
    api: ApiDetail,
    plans: Vec<PlanSummary>,
    metrics: Vec<MetricView>,
    rules: Vec<RuleView>,
    methods: &'static [&'static str],
    errors: FieldErrors,
    /// The add-rule form: empty, or as it was sent when it was refused.
    rule_draft: RuleDraft,
    /// The add-metric form, the same way.
    metric_draft: MetricDraft,
    /// The settings form: the stored settings, or as they were sent when they were refused.
    settings: SettingsDraft,
    /// The sunset date as it was typed when deprecating was refused.
    sunset_draft: String,
}

/// What the add-metric form holds.
#[derive(Default)]
struct MetricDraft {
    system_name: String,
    friendly_name: String,
    /// As sent: empty for none, else a top-level metric's system name.
    parent: Option<String>,
}

impl MetricDraft {
    /// Whether the parent list selects `name` (`""` is none): a new form starts at `hits`.
    fn parent_is(&self, name: &str) -> bool {
        self.parent.as_deref().unwrap_or("hits") == name
    }
}

/// What the settings form holds, as text, so a refused change comes back as it was typed.
struct SettingsDraft {
    name: String,
    description: String,
    /// One URL a line.
    upstream_urls: String,
    auth_mode: String,
    key_location: String,
    key_name: String,
    compatibility_policy: String,
}

impl SettingsDraft {
    fn stored(api: &ApiDetail) -> SettingsDraft {
        SettingsDraft {
            name: api.name.clone(),
            description: api.description.clone(),
            upstream_urls: api.upstreams.iter().map(|url| format!("{url}\n")).collect(),
            auth_mode: api.auth_mode.as_str().to_owned(),
            key_location: api.key_location.as_str().to_owned(),
            key_name: api.key_name.clone(),
            compatibility_policy: api.compatibility_policy.as_str().to_owned(),
        }
    }

    /// The form as sent; a field it left out keeps its stored value.
    fn sent(form: &SettingsForm, stored: &SettingsDraft) -> SettingsDraft {
        let or_stored = |sent: &Option<String>, stored: &String| sent.as_ref().unwrap_or(stored).clone();
        SettingsDraft {
            name: form.name.clone(),
            description: form.description.clone(),
            upstream_urls: form.upstream_urls.clone(),
            auth_mode: or_stored(&form.auth_mode, &stored.auth_mode),
            key_location: or_stored(&form.key_location, &stored.key_location),
            key_name: or_stored(&form.key_name, &stored.key_name),
            compatibility_policy: or_stored(&form.compatibility_policy, &stored.compatibility_policy),
        }
    }
}

/// What the add-rule form holds, so a refused rule comes back as it was typed.
struct RuleDraft {
    http_method: String,
    pattern: String,
    metric: String,
    delta: String,
    last: bool,
}

impl Default for RuleDraft {
    fn default() -> RuleDraft {
        RuleDraft {
            http_method: "GET".to_owned(),
            pattern: String::new(),
            metric: "hits".to_owned(),
            delta: "1".to_owned(),
            last: false,
        }
    }
}

async fn show_page(
    session: &Session,
    pool: &PgPool,
    id: ApiId,
    errors: FieldErrors,
    flash: Option<String>,
) -> PageResult<ShowPage> {
    let api = detail::get(pool, id).await?;
    let plans = list_plans(pool, id).await?;
    let metrics = rules::metrics(pool, id).await?;
    let rule_list = rules::rules(pool, id).await?;
    let mut chrome = Chrome::for_session(session).await?;
    if let Some(message) = flash {
        chrome = chrome.with_flash("error", message);
    }
    let settings = SettingsDraft::stored(&api);
    Ok(ShowPage {
        chrome,
        api,
        plans,
        metrics,
        rules: rule_list,
        methods: &rules::RULE_METHODS,
        errors,
        rule_draft: RuleDraft::default(),
        metric_draft: MetricDraft::default(),
        settings,
        sunset_draft: String::new(),
    })
}

pub async fn show(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    Ok(render(StatusCode::OK, &show_page(&session, &pool, id, FieldErrors::new(), None).await?))
}

#[derive(serde::Deserialize)]
pub struct SettingsForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    upstream_urls: String,
    auth_mode: Option<String>,
    key_location: Option<String>,
    key_name: Option<String>,
    compatibility_policy: Option<String>,
}

impl SettingsForm {
    fn changes(&self) -> tollgate_core::Result<ApiChanges> {
        let urls = self.upstream_urls.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        Ok(ApiChanges {
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            upstream_urls: Some(urls),
            auth_mode: self
                .auth_mode
                .as_deref()
                .map(|m| m.parse().map_err(|e: UnknownName| e.at("auth_mode")))
                .transpose()?,
            key_location: self
                .key_location
                .as_deref()
                .map(|l| l.parse().map_err(|e: UnknownName| e.at("key_location")))
                .transpose()?,
            key_name: self.key_name.as_deref().map(|n| n.trim().to_owned()),
            compatibility_policy: self
                .compatibility_policy
                .as_deref()
                .map(|p| p.parse().map_err(|e: UnknownName| e.at("compatibility_policy")))
                .transpose()?,
        })
    }
}

pub async fn update(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    let outcome = match form.changes() {
        Ok(changes) => detail::update(&pool, id, &changes, &Actor::from(&user)).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(()) => Ok(see_other(format!("/admin/apis/{}", id.0))),
        Err(err) => {
            failed(&session, &pool, id, err, |page| page.settings = SettingsDraft::sent(&form, &page.settings)).await
        }
    }
}

#[derive(serde::Deserialize)]
pub struct LifecycleForm {
    state: String,
    /// `YYYY-MM-DD` from a date input.
    #[serde(default)]
    sunset: String,
}

pub async fn lifecycle(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<LifecycleForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let typed = form.sunset.trim();
    let sunset: Result<Option<OffsetDateTime>, _> = match typed {
        "" => Ok(None),
        typed => Date::parse(typed, &format).map(|d| Some(d.with_time(Time::MIDNIGHT).assume_utc())).map_err(|_| {
            tollgate_core::Error::invalid("sunset_at", format!("“{typed}” is not a date: use YYYY-MM-DD"))
        }),
    };
    let outcome = match (form.state.parse::<ApiState>(), sunset) {
        (Ok(state), Ok(sunset)) => {
            lifecycle::set_state(&pool, id, state, sunset, &Actor::from(&user), &public_url.0).await
        }
        (Err(err), _) => Err(err.at("state")),
        (_, Err(err)) => Err(err),
    };
    match outcome {
        Ok(()) => Ok(see_other(format!("/admin/apis/{}", id.0))),
        Err(err) => failed(&session, &pool, id, err, |page| page.sunset_draft = form.sunset).await,
    }
}

/// Deletes the API and goes back to the list; a refusal (applications on it, charges not
/// yet invoiced) is shown at the top of its page.
pub async fn delete(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    match detail::delete(&pool, id, &Actor::from(&user)).await {
        Ok(()) => Ok(see_other("/admin".to_owned())),
        Err(err) => failed(&session, &pool, id, err, |_| {}).await,
    }
}

/// Answers a failed edit on the API page: a conflict (a move the state does
/// not allow, a name taken) at the top, invalid input next to its field and
/// listed above the page. `keep` puts the sent form back as it was typed.
async fn failed(
    session: &Session,
    pool: &PgPool,
    id: ApiId,
    err: tollgate_core::Error,
    keep: impl FnOnce(&mut ShowPage),
) -> PageResult<HttpResponse> {
    let (status, mut errors, flash) = match err {
        tollgate_core::Error::Conflict(message) => (StatusCode::CONFLICT, FieldErrors::new(), Some(message)),
        err => {
            let mut errors = FieldErrors::new();
            errors.absorb(err)?;
            (StatusCode::UNPROCESSABLE_ENTITY, errors, None)
        }
    };
    let mut page = show_page(session, pool, id, FieldErrors::new(), flash).await?;
    keep(&mut page);
    // Core names each refused upstream (`upstream_urls[2]`); the form has one field for them.
    errors.fold_lines("upstream_urls", &page.settings.upstream_urls);
    page.errors = errors;
    Ok(render(status, &page))
}

#[derive(serde::Deserialize)]
pub struct MetricForm {
    system_name: String,
    #[serde(default)]
    friendly_name: String,
    #[serde(default)]
    parent: String,
}

pub async fn add_metric(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<MetricForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    detail::get(&pool, id).await?;
    match rules::add_metric(
        &pool,
        id,
        form.system_name.trim(),
        &form.friendly_name,
        Some(form.parent.trim()),
        &Actor::from(&user),
    )
    .await
    {
        Ok(_) => Ok(see_other(format!("/admin/apis/{}#metrics", id.0))),
        Err(err) => {
            let draft = MetricDraft {
                system_name: form.system_name,
                friendly_name: form.friendly_name,
                parent: Some(form.parent),
            };
            failed(&session, &pool, id, err, |page| page.metric_draft = draft).await
        }
    }
}

pub async fn delete_metric(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (api, metric) = path.into_inner();
    let id = ApiId(parse_id(&api)?);
    rules::delete_metric(&pool, id, parse_id(&metric)?, &Actor::from(&user)).await?;
    Ok(see_other(format!("/admin/apis/{}#metrics", id.0)))
}

#[derive(serde::Deserialize)]
pub struct RuleForm {
    http_method: String,
    pattern: String,
    metric: String,
    #[serde(default)]
    delta: String,
    last: Option<String>,
}

pub async fn add_rule(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RuleForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    detail::get(&pool, id).await?;
    let delta = if form.delta.trim().is_empty() { Ok(1) } else { form.delta.trim().parse::<i32>() };
    let outcome = match delta {
        Ok(delta) => {
            let rule = NewRule {
                http_method: form.http_method.clone(),
                pattern: form.pattern.trim().to_owned(),
                metric: form.metric.clone(),
                delta,
                last: form.last.is_some(),
                position: None,
            };
            rules::add_rule(&pool, id, &rule, &Actor::from(&user)).await
        }
        Err(_) => Err(tollgate_core::Error::invalid("delta", "enter a whole number")),
    };
    match outcome {
        Ok(_) => Ok(see_other(format!("/admin/apis/{}#rules", id.0))),
        Err(err) => {
            let draft = RuleDraft {
                last: form.last.is_some(),
                http_method: form.http_method,
                pattern: form.pattern,
                metric: form.metric,
                delta: form.delta,
            };
            failed(&session, &pool, id, err, |page| page.rule_draft = draft).await
        }
    }
}

pub async fn delete_rule(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (api, rule) = path.into_inner();
    let id = ApiId(parse_id(&api)?);
    rules::delete_rule(&pool, id, parse_id(&rule)?, &Actor::from(&user)).await?;
    Ok(see_other(format!("/admin/apis/{}#rules", id.0)))
}

#[derive(serde::Deserialize)]
pub struct VersionForm {
    spec: String,
}

/// Stages a new version and shows what changed before anything is published.
pub async fn stage_version(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<VersionForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    detail::get(&pool, id).await?;
    let spec = match tollgate_openapi::parse(&form.spec) {
        Ok(spec) => spec,
        Err(err) => {
            let page = show_page(
                &session,
                &pool,
                id,
                FieldErrors::new(),
                Some(format!("The new version could not be imported: {err}")),
            )
            .await?;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let staged = versions::stage(&pool, id, &form.spec, &spec, &Actor::from(&user)).await?;
    Ok(see_other(format!("/admin/apis/{}/versions/{}", id.0, staged.number)))
}
