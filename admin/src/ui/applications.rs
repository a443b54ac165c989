//! Applications of every account in the admin UI: filter by state or name,
//! approve, reject, suspend, resume, move between plans, and decide the plan
//! changes developers asked for.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::apis::ApiId;
use tollgate_core::applications::plan_change::{self, Decision};
use tollgate_core::applications::{
    self, AdminApplicationView, ApplicationFilter, ApplicationId, ApplicationState, Transition,
};
use tollgate_core::audit::Actor;
use tollgate_core::db::{self, PgPool};
use tollgate_core::plans::{PlanId, PlanSummary, list_plans_of};
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, EmptyForm, FieldErrors, PageResult, PublicUrl, Session, parse_id, render, see_other,
};
use uuid::Uuid;

/// The page lists this many rows, newest first; "Older" continues by key (`after`).
/// Each row joins its account: 200 rows cost four times the SQL of 50 and halved
/// the pages served a second at 1M applications.
const SHOWN: i64 = 50;

#[derive(Template)]
#[template(path = "admin/applications.html")]
struct ListPage {
    chrome: Chrome,
    apps: Vec<AdminApplicationView>,
    /// The plans of each API in the list, for the "move to plan" control.
    plans: std::collections::HashMap<ApiId, Vec<PlanSummary>>,
    state: Option<ApplicationState>,
    q: String,
    total: i64,
    /// The list counted up to its limit and there are more.
    more: bool,
    /// How many rows the page shows.
    shown: i64,
    /// Whether this page continues after another (`after`).
    continued: bool,
    /// The query string of the next, older page, when this one is full.
    older: Option<String>,
    /// Filters that are not valid, beside their field; the list is then empty.
    errors: FieldErrors,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    q: Option<String>,
    /// One application only: where a plan change request's mail and notification link.
    id: Option<String>,
    /// The last application of the previous page (keyset paging).
    after: Option<String>,
}

impl ListPage {
    /// The buttons an application's state allows: (action, label, danger).
    fn actions(app: &AdminApplicationView) -> Vec<(&'static str, &'static str, bool)> {
        match app.state {
            ApplicationState::Pending => vec![("approve", "Approve", false), ("reject", "Reject", true)],
            ApplicationState::Live => vec![("suspend", "Suspend", true)],
            ApplicationState::Suspended => vec![("resume", "Resume", false)],
            ApplicationState::Rejected => Vec::new(),
        }
    }

    fn plans_for(&self, app: &AdminApplicationView) -> Vec<PlanSummary> {
        self.plans
            .get(&ApiId(app.api_id))
            .map(|plans| plans.iter().filter(|p| p.id != app.plan_id).cloned().collect())
            .unwrap_or_default()
    }

    fn is_state(&self, state: &ApplicationState) -> bool {
        self.state == Some(*state)
    }

    fn states() -> &'static [ApplicationState] {
        ApplicationState::ALL
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

/// The list's filters, or each bad one with why: an edited URL is refused
/// (422), not quietly widened to every application.
struct Filters {
    state: Option<ApplicationState>,
    q: Option<String>,
    after: Option<Uuid>,
    id: Option<Uuid>,
}

impl ListQuery {
    fn filters(&self) -> Result<Filters, FieldErrors> {
        let mut errors = FieldErrors::new();
        let state = match self.state.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => s
                .parse::<ApplicationState>()
                .map_err(|e| errors.add("state", format!("`{s}` is not a state: {e}")))
                .ok(),
        };
        let mut uuid = |name: &'static str, value: &Option<String>| match value.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Uuid::parse_str(v).map_err(|_| errors.add(name, format!("`{v}` is not an application id"))).ok(),
        };
        let after = uuid("after", &self.after);
        let id = uuid("id", &self.id);
        let q = self.q.as_ref().map(|q| q.chars().take(200).collect::<String>()).filter(|q| !q.trim().is_empty());
        if errors.is_empty() { Ok(Filters { state, q, after, id }) } else { Err(errors) }
    }
}

pub async fn list(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<ListQuery>,
) -> PageResult<HttpResponse> {
    let filters = match query.filters() {
        Ok(filters) => filters,
        Err(errors) => {
            let chrome = Chrome::for_session(&session)
                .await?
                .with_flash("error", "Some filters are not valid: see the highlighted fields.");
            let page = ListPage {
                chrome,
                apps: Vec::new(),
                plans: Default::default(),
                state: None,
                q: query.q.clone().unwrap_or_default(),
                total: 0,
                more: false,
                shown: SHOWN,
                continued: false,
                older: None,
                errors,
            };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let Filters { state, q, after: after_id, id } = filters;
    let filter = ApplicationFilter { state, q: q.clone(), after_id, ..ApplicationFilter::default() };
    let (apps, total) = match id {
        Some(id) => (vec![applications::get_any(&pool, ApplicationId(id)).await?], 1),
        None => applications::list_all(&pool, &filter, SHOWN, 0).await?,
    };
    let older = match apps.last() {
        Some(last) if id.is_none() && apps.len() as i64 == SHOWN => {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            if let Some(state) = state {
                pairs.push(("state", state.to_string()));
            }
            if let Some(q) = &q {
                pairs.push(("q", q.clone()));
            }
            pairs.push(("after", last.id.0.to_string()));
            serde_urlencoded::to_string(&pairs).ok()
        }
        _ => None,
    };
    let mut apis: Vec<ApiId> = apps.iter().map(|app| ApiId(app.api_id)).collect();
    apis.sort_unstable_by_key(|api| api.0);
    apis.dedup();
    let plans = list_plans_of(&pool, &apis).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(
        StatusCode::OK,
        &ListPage {
            chrome,
            apps,
            plans,
            state,
            q: q.unwrap_or_default(),
            total: total.min(db::COUNT_LIMIT),
            more: total > db::COUNT_LIMIT,
            shown: SHOWN,
            continued: after_id.is_some(),
            older,
            errors: FieldErrors::new(),
        },
    ))
}

pub async fn act(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let transition = match action.as_str() {
        "approve" => Transition::Approve,
        "reject" => Transition::Reject,
        "suspend" => Transition::Suspend,
        "resume" => Transition::Resume,
        _ => return Err(tollgate_core::Error::NotFound.into()),
    };
    applications::transition(&pool, ApplicationId(parse_id(&id)?), transition, &Actor::from(&user), &public_url.0)
        .await?;
    Ok(see_other("/admin/applications"))
}

#[derive(serde::Deserialize)]
pub struct PlanForm {
    plan_id: String,
}

pub async fn change_plan(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<PlanForm>,
) -> PageResult<HttpResponse> {
    let id = ApplicationId(parse_id(&path)?);
    // A form field, not an address: a bad one is the form's mistake (422), not a missing page.
    let plan = form.plan_id.trim().parse().map_err(|_| tollgate_core::Error::invalid("plan_id", "choose a plan"))?;
    plan_change::change_by_admin(&pool, id, PlanId(plan), &Actor::from(&user)).await?;
    Ok(see_other("/admin/applications"))
}

/// Approves or rejects the plan change a developer asked for.
pub async fn decide_plan_request(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (id, decision) = path.into_inner();
    let decision = match decision.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        _ => return Err(tollgate_core::Error::NotFound.into()),
    };
    plan_change::decide(&pool, ApplicationId(parse_id(&id)?), decision, &Actor::from(&user)).await?;
    Ok(see_other("/admin/applications"))
}
