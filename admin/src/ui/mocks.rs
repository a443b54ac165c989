//! An API's mock mode in the admin UI: the whole API or single operations answered by the
//! gateway from the description, and which operations have no example (their answer is
//! generated from the schema) or nothing at all (an empty body), and a draft's preview:
//! opened to developers (all, or chosen accounts) it is tried with their keys against the
//! mocks before its backend exists. See docs/MOCKS.md.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::AccountId;
use tollgate_core::accounts::directory::{self, AccountView};
use tollgate_core::apis::detail::{self, ApiDetail};
use tollgate_core::apis::mocks::{self, ExampleSource, MockChanges, MockMode};
use tollgate_core::apis::preview::{self, Audience, Preview};
use tollgate_core::apis::{ApiId, ApiState};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_web::{AdminUser, Chrome, CsrfForm, PageResult, Session, parse_id, render, see_other};
use uuid::Uuid;

#[derive(Template)]
#[template(path = "admin/api_mocks.html")]
struct MocksPage {
    chrome: Chrome,
    api: ApiDetail,
    mode: MockMode,
    /// Operations whose answer is generated from the schema, and those with no body at all.
    generated: usize,
    empty: usize,
    /// The draft's open preview.
    preview: Option<Preview>,
    /// Developer accounts the preview could be opened to (not chosen yet).
    candidates: Vec<AccountView>,
}

impl MocksPage {
    fn source_label(source: &ExampleSource) -> &'static str {
        match source {
            ExampleSource::Example => "Example",
            ExampleSource::Generated => "No example: generated from the schema",
            ExampleSource::Empty => "No example and no schema: empty body",
        }
    }

    fn is_draft(&self) -> bool {
        self.api.state == ApiState::Draft
    }

    fn for_everyone(&self) -> bool {
        self.preview.as_ref().is_some_and(|p| p.audience == Audience::Everyone)
    }

    fn source_class(source: &ExampleSource) -> &'static str {
        match source {
            ExampleSource::Example => "live",
            ExampleSource::Generated => "pending",
            ExampleSource::Empty => "revoked",
        }
    }
}

async fn page(session: &Session, pool: &PgPool, id: ApiId, flash: Option<String>) -> PageResult<MocksPage> {
    let api = detail::get(pool, id).await?;
    let mode = mocks::get(pool, id).await?;
    let count = |wanted: ExampleSource| mode.operations.iter().filter(|o| o.source == wanted).count();
    let (generated, empty) = (count(ExampleSource::Generated), count(ExampleSource::Empty));
    let preview = preview::get(pool, id).await?;
    let chosen: Vec<AccountId> = preview.iter().flat_map(|p| p.account_names.iter().map(|(id, _)| *id)).collect();
    let candidates = if api.state == ApiState::Draft {
        let accounts = directory::list_page(pool, None, 500).await?;
        accounts.into_iter().filter(|a| !chosen.contains(&a.id)).collect()
    } else {
        Vec::new()
    };
    let mut chrome = Chrome::for_session(session).await?;
    if let Some(message) = flash {
        chrome = chrome.with_flash("error", message);
    }
    Ok(MocksPage { chrome, api, mode, generated, empty, preview, candidates })
}

pub async fn show(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    Ok(render(StatusCode::OK, &page(&session, &pool, id, None).await?))
}

/// One switch: the whole API (no `metric`) or one operation.
#[derive(serde::Deserialize)]
pub struct MockForm {
    #[serde(default)]
    metric: Option<Uuid>,
    /// `on` or `off`.
    mocked: String,
}

pub async fn update(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<MockForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    let on = form.mocked == "on";
    let changes = match form.metric {
        Some(metric) => MockChanges { whole_api: None, operations: [(metric, on)].into_iter().collect() },
        None => MockChanges { whole_api: Some(on), ..MockChanges::default() },
    };
    match mocks::set(&pool, id, &changes, &Actor::from(&user)).await {
        Ok(_) => Ok(see_other(format!("/admin/apis/{}/mocks", id.0))),
        Err(tollgate_core::Error::Conflict(message)) => {
            Ok(render(StatusCode::CONFLICT, &page(&session, &pool, id, Some(message)).await?))
        }
        Err(tollgate_core::Error::Invalid { message, .. }) => {
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page(&session, &pool, id, Some(message)).await?))
        }
        Err(err) => Err(err.into()),
    }
}

/// One change of the preview: open it to `everyone`, `add` or `remove` one account, or `close` it.
#[derive(serde::Deserialize)]
pub struct PreviewForm {
    action: String,
    #[serde(default)]
    account: Option<Uuid>,
}

pub async fn update_preview(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<PreviewForm>,
) -> PageResult<HttpResponse> {
    let id = ApiId(parse_id(&path)?);
    let actor = Actor::from(&user);
    let chosen: Vec<AccountId> = match preview::get(&pool, id).await?.map(|p| p.audience) {
        Some(Audience::Accounts(ids)) => ids,
        _ => Vec::new(),
    };
    let outcome = match (form.action.as_str(), form.account.map(AccountId)) {
        ("everyone", _) => preview::open(&pool, id, &Audience::Everyone, &actor).await.map(drop),
        ("add", Some(account)) => {
            let accounts = chosen.into_iter().chain([account]).collect();
            preview::open(&pool, id, &Audience::Accounts(accounts), &actor).await.map(drop)
        }
        ("remove", Some(account)) => {
            let accounts: Vec<AccountId> = chosen.into_iter().filter(|a| *a != account).collect();
            if accounts.is_empty() {
                preview::close(&pool, id, &actor).await
            } else {
                preview::open(&pool, id, &Audience::Accounts(accounts), &actor).await.map(drop)
            }
        }
        ("close", _) => preview::close(&pool, id, &actor).await,
        _ => Err(tollgate_core::Error::invalid("action", "choose everyone, add, remove or close (with an account)")),
    };
    match outcome {
        Ok(()) => Ok(see_other(format!("/admin/apis/{}/mocks#preview-title", id.0))),
        Err(tollgate_core::Error::Conflict(message)) => {
            Ok(render(StatusCode::CONFLICT, &page(&session, &pool, id, Some(message)).await?))
        }
        Err(tollgate_core::Error::Invalid { message, .. }) => {
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page(&session, &pool, id, Some(message)).await?))
        }
        Err(err) => Err(err.into()),
    }
}
