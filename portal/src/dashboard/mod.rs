//! The developer's start page after sign-in: their applications.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::directory::{self, AccountState};
use tollgate_core::applications::{ApplicationView, list_for_account};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, PageResult, Session, SignedInUser, render};

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    apps: Vec<ApplicationView>,
    /// The provider suspended the account: every key is refused at the gateway, which the
    /// applications' own states do not show.
    suspended: bool,
    /// Left or removed from every organisation: nothing to show but the way to a new one.
    in_organisation: bool,
}

pub async fn show(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    let in_organisation = user.account_id.is_some();
    let (apps, suspended) = match user.account_id {
        Some(account) => (
            list_for_account(&pool, account).await?,
            directory::get(&pool, account).await?.state == AccountState::Suspended,
        ),
        None => (Vec::new(), false),
    };
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &DashboardPage { chrome, apps, suspended, in_organisation }))
}
