//! Sign-in through an operator-configured OAuth2 / OpenID Connect provider.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;
use tollgate_core::identity::{self, Providers};
use tollgate_core::secrets::constant_time_eq;
use tollgate_core::sessions::SessionStore;
use tollgate_web::{CsrfForm, EmptyForm, ErrorPage, PageError, PageResult, PublicUrl, Session, see_other};

const FLOW_KEY: &str = "oauth_flow";

fn redirect_url(public_url: &str, provider: &str) -> String {
    format!("{public_url}/auth/{provider}/callback")
}

fn failed(detail: &str) -> HttpResponse {
    ErrorPage::new(StatusCode::BAD_REQUEST, "Sign-in did not complete", detail).into_response()
}

/// Starts the flow: PKCE verifier and state stay server-side with the session.
pub async fn start(
    session: Session,
    sessions: web::Data<SessionStore>,
    providers: web::Data<Providers>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let provider = providers.get(&path).ok_or(PageError(tollgate_core::Error::NotFound))?;
    let started = identity::start(provider, &redirect_url(&public_url.0, &provider.id))?;
    session.csrf_token().await?;
    let id_hash = session.id_hash().ok_or(PageError(tollgate_core::Error::Internal("no session".into())))?;
    let flow = json!({"provider": provider.id, "state": started.state, "verifier": started.pkce_verifier});
    sessions.put(&id_hash, FLOW_KEY, flow).await?;
    Ok(see_other(started.authorize_url))
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn callback(
    session: Session,
    sessions: web::Data<SessionStore>,
    providers: web::Data<Providers>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> PageResult<HttpResponse> {
    let provider = providers.get(&path).ok_or(PageError(tollgate_core::Error::NotFound))?;
    // The flow is taken (and so forgotten) whatever happens next: one try per start.
    let flow = match session.id_hash() {
        Some(id_hash) => sessions.take(&id_hash, FLOW_KEY).await?,
        None => None,
    };
    if let Some(error) = &query.error {
        // Only the codes of RFC 6749 §4.1.2.1, in our words: anyone can send a link with an
        // `error` of their own text, and this page is the site's.
        let what = match error.as_str() {
            "access_denied" => "the sign-in was declined",
            "temporarily_unavailable" | "server_error" => "it could not sign you in just now",
            _ => "it could not complete the sign-in",
        };
        return Ok(failed(&format!(
            "{} says {what}. Try again, or sign in with your email and password.",
            provider.name
        )));
    }
    let (Some(code), Some(state), Some(flow)) = (&query.code, &query.state, flow) else {
        return Ok(failed(
            "This sign-in link was not started from this browser, or was already used. Start again from the sign-in page.",
        ));
    };
    let expected_state = flow["state"].as_str().unwrap_or_default();
    let same_provider = flow["provider"].as_str() == Some(provider.id.as_str());
    if !same_provider || !constant_time_eq(state.as_bytes(), expected_state.as_bytes()) {
        return Ok(failed(
            "The sign-in answer did not match the request this browser made, so it was refused. Start again from the sign-in page.",
        ));
    }
    let verifier = flow["verifier"].as_str().unwrap_or_default();
    let external =
        match identity::finish(provider, &redirect_url(&public_url.0, &provider.id), code, verifier, &providers.http)
            .await
        {
            Ok(external) => external,
            Err(tollgate_core::Error::Invalid { message, .. }) => return Ok(failed(&message)),
            Err(err) => return Err(err.into()),
        };
    let user = match identity::sign_in_external(sessions.pool(), provider, &external).await {
        Ok(user) => user,
        Err(tollgate_core::Error::Invalid { message, .. }) => return Ok(failed(&message)),
        Err(err) => return Err(err.into()),
    };
    let target = if user.is_admin { "/admin" } else { "/dashboard" };
    session.sign_in(user).await?;
    Ok(see_other(target))
}
