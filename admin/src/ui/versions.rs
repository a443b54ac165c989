//! The page of a staged or published version: its change report, breaking
//! first, grouped by kind or by where the change happens (a component or an
//! operation), each group collapsible (`<details>`, no script), paged; or,
//! while a large comparison runs in the background, its progress (the page
//! asks the browser to reload it with a `Refresh` header).

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::apis::detail::{self, ApiDetail};
use tollgate_core::apis::versions::{self, VersionReport};
use tollgate_core::apis::{ApiId, ReportState};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_openapi::{Change, ChangeReport};
use tollgate_web::chart::escape;
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, EmptyForm, PageResult, PublicUrl, Session, parse_id, render, see_other,
};

/// Changes on one page: a real release's report stays far below 1 MB.
pub const CHANGES_PER_PAGE: usize = 100;

/// Operations listed under a change; the admin API lists them all.
const OPERATIONS_SHOWN: usize = 25;

/// Top changes above the groups.
const TOP_CHANGES: usize = 10;

/// Seconds between reloads while the report is being made.
const REFRESH_SECONDS: u32 = 2;

/// One change as the page shows it.
struct Row {
    id: usize,
    breaking: bool,
    kind: &'static str,
    subject: String,
    /// The change belongs to an operation (so its one operation need not be repeated).
    own: bool,
    message: String,
    operation_count: usize,
    operations: Vec<String>,
    more: usize,
}

impl Row {
    /// The message as HTML: escaped, with its `backticked` names as code, as the report
    /// writes them for a reader of Markdown.
    fn message_html(&self) -> String {
        let mut html = String::with_capacity(self.message.len() + 16);
        let backticks = self.message.matches('`').count();
        for (index, piece) in self.message.split('`').enumerate() {
            // Odd pieces sat between two backticks; a lone last backtick stays text.
            let closed = index % 2 == 1 && index < backticks;
            match (index % 2 == 1, closed) {
                (true, true) => {
                    html.push_str("<code>");
                    html.push_str(&escape(piece));
                    html.push_str("</code>");
                }
                (true, false) => {
                    html.push('`');
                    html.push_str(&escape(piece));
                }
                _ => html.push_str(&escape(piece)),
            }
        }
        html
    }

    fn of(report: &ChangeReport, id: usize, change: &Change) -> Row {
        let operations: Vec<String> = report.operations_of(change).take(OPERATIONS_SHOWN).map(str::to_owned).collect();
        Row {
            id,
            breaking: change.breaking,
            kind: change.kind.title(),
            subject: change.subject.describe(),
            own: change.subject.is_operation(),
            message: change.message.clone(),
            operation_count: change.operations.len(),
            more: change.operations.len().saturating_sub(operations.len()),
            operations,
        }
    }
}

/// Changes of one kind, or of one component or operation, on this page.
struct Group {
    title: String,
    breaking: bool,
    rows: Vec<Row>,
    /// The group began on an earlier page.
    continued: bool,
}

/// How the page groups changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Kind,
    Place,
}

impl View {
    /// The `view` parameter: absent or empty is by kind; another word is refused, not ignored.
    fn parse(raw: Option<&str>) -> tollgate_core::Result<View> {
        match raw.map(str::trim) {
            None | Some("" | "kind") => Ok(View::Kind),
            Some("where") => Ok(View::Place),
            Some(other) => {
                Err(tollgate_core::Error::invalid("view", format!("`{other}` is not a view; use kind or where")))
            }
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            View::Kind => "kind",
            View::Place => "where",
        }
    }
}

#[derive(Template)]
#[template(path = "admin/version.html")]
struct VersionPage {
    chrome: Chrome,
    api: ApiDetail,
    version: VersionReport,
    headline: String,
    top: Vec<Row>,
    groups: Vec<Group>,
    view: &'static str,
    breaking_only: bool,
    page: usize,
    pages: usize,
    /// Changes this view lists (all pages).
    listed: usize,
    policy_label: &'static str,
}

impl VersionPage {
    /// The query string of another page of this view.
    fn link(&self, page: usize, view: &str, breaking_only: impl std::borrow::Borrow<bool>) -> String {
        let mut query = format!("?view={view}&page={page}");
        if *breaking_only.borrow() {
            query.push_str("&breaking=only");
        }
        query
    }

    fn progress_percent(&self) -> i32 {
        match &self.version.progress {
            Some(p) if p.total > 0 => (i64::from(p.done) * 100 / i64::from(p.total)) as i32,
            _ => 0,
        }
    }
}

/// The page's parameters as text, so a bad one is a 422 naming it.
#[derive(serde::Deserialize)]
pub struct VersionQuery {
    view: Option<String>,
    breaking: Option<String>,
    page: Option<String>,
}

impl VersionQuery {
    /// `breaking=only` shows breaking changes only; absent or empty shows all.
    fn breaking_only(&self) -> tollgate_core::Result<bool> {
        match self.breaking.as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some("only") => Ok(true),
            Some(other) => Err(tollgate_core::Error::invalid(
                "breaking",
                format!("`{other}` is not a choice; use only, or leave it out for all changes"),
            )),
        }
    }

    /// The 1-based page asked for. One past the last shows the last: a link
    /// outlives a report that shrank.
    fn page(&self) -> tollgate_core::Result<usize> {
        match self.page.as_deref().map(str::trim) {
            None | Some("") => Ok(1),
            Some(raw) => raw.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                tollgate_core::Error::invalid(
                    "page",
                    format!("`{raw}` is not a page number; use a whole number from 1"),
                )
            }),
        }
    }
}

pub async fn show_version(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i32)>,
    query: web::Query<VersionQuery>,
) -> PageResult<HttpResponse> {
    let (api, number) = path.into_inner();
    let api = detail::get(&pool, ApiId(parse_id(&api)?)).await?;
    let version = versions::get(&pool, api.id, number).await?;
    let view = View::parse(query.view.as_deref())?;
    let breaking_only = query.breaking_only()?;
    let page = query.page()?;
    let chrome = Chrome::for_session(&session).await?;
    let report = &version.report;

    let mut chosen: Vec<(usize, &Change)> =
        report.changes.iter().enumerate().filter(|(_, c)| c.breaking || !breaking_only).collect();
    if view == View::Place {
        // Breaking first, then by component or operation.
        chosen.sort_by(|(_, a), (_, b)| (!a.breaking, &a.subject, a.kind).cmp(&(!b.breaking, &b.subject, b.kind)));
    }
    let listed = chosen.len();
    let pages = listed.div_ceil(CHANGES_PER_PAGE).max(1);
    let page = page.min(pages);
    let start = (page - 1) * CHANGES_PER_PAGE;
    let key = |c: &Change| match view {
        View::Kind => (c.breaking, c.kind.title().to_owned()),
        View::Place => (c.breaking, c.subject.describe()),
    };
    let mut groups: Vec<Group> = Vec::new();
    for (i, (id, change)) in chosen.iter().enumerate().skip(start).take(CHANGES_PER_PAGE) {
        let (breaking, title) = key(change);
        match groups.last_mut() {
            Some(g) if g.breaking == breaking && g.title == title => g.rows.push(Row::of(report, *id, change)),
            _ => {
                let continued = i == start && i > 0 && key(chosen[i - 1].1) == (breaking, title.clone());
                groups.push(Group { title, breaking, rows: vec![Row::of(report, *id, change)], continued });
            }
        }
    }
    let index = |c: &Change| report.changes.iter().position(|x| std::ptr::eq(x, c)).unwrap_or_default();
    let top = report.top(TOP_CHANGES).into_iter().map(|c| Row::of(report, index(c), c)).collect();
    let policy_label = match report.policy {
        tollgate_openapi::CompatibilityPolicy::Strict => "strict",
        tollgate_openapi::CompatibilityPolicy::AdditiveEnums => "additive enums allowed",
    };
    let pending = matches!(version.state, ReportState::Queued | ReportState::Running);
    let page = VersionPage {
        chrome,
        api,
        headline: report.headline(),
        version,
        top,
        groups,
        view: view.as_str(),
        breaking_only,
        page,
        pages,
        listed,
        policy_label,
    };
    let mut answer = render(StatusCode::OK, &page);
    if pending {
        // Reloads until the report is ready, without script.
        answer.headers_mut().insert(HeaderName::from_static("refresh"), HeaderValue::from(REFRESH_SECONDS));
    }
    Ok(answer)
}

pub async fn publish_version(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<(String, i32)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (api, number) = path.into_inner();
    let id = ApiId(parse_id(&api)?);
    versions::publish(&pool, id, number, &Actor::from(&user), &public_url.0).await?;
    Ok(see_other(format!("/admin/apis/{}", id.0)))
}
