//! Server-side sessions: the middleware that loads a browser's session
//! before the handler and writes its cookie after, and the `Session`
//! extractor handlers use to sign in, sign out and get a CSRF token.

use std::cell::RefCell;
use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use time::OffsetDateTime;

use tollgate_core::accounts::{UserId, UserSummary, find_user};
use tollgate_core::sessions::{SessionRecord, SessionStore};

pub const SESSION_COOKIE: &str = "tg_session";

/// Where a message for the next page waits in the session's data.
const FLASH_KEY: &str = "flash";

/// How session cookies are issued. `secure` is on whenever the public URL is HTTPS.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub secure: bool,
}

enum CookieChange {
    Keep,
    Set { raw: String, expires: OffsetDateTime },
    Clear,
}

struct SessionState {
    record: Option<SessionRecord>,
    user: Option<UserSummary>,
    change: CookieChange,
    user_agent: Option<String>,
}

/// The request's session. Cheap to clone; lives for one request.
#[derive(Clone)]
pub struct Session {
    state: Rc<RefCell<SessionState>>,
    store: web::Data<SessionStore>,
}

impl Session {
    pub fn user(&self) -> Option<UserSummary> {
        self.state.borrow().user.clone()
    }

    /// The CSRF token for forms on this page, starting an anonymous session
    /// if the browser has none yet.
    pub async fn csrf_token(&self) -> tollgate_core::Result<String> {
        if let Some(record) = &self.state.borrow().record {
            return Ok(record.csrf_token.clone());
        }
        let user_agent = self.state.borrow().user_agent.clone();
        let (raw, record) = self.store.create(None, user_agent.as_deref()).await?;
        let token = record.csrf_token.clone();
        let mut state = self.state.borrow_mut();
        state.change = CookieChange::Set { raw, expires: record.expires_at };
        state.record = Some(record);
        Ok(token)
    }

    /// The current token if a session exists; forms submitted without one fail.
    pub(crate) fn existing_csrf_token(&self) -> Option<String> {
        self.state.borrow().record.as_ref().map(|r| r.csrf_token.clone())
    }

    /// Signs a user in under a brand-new session id (the old one is
    /// destroyed), so a fixated or leaked pre-login id is worthless.
    pub async fn sign_in(&self, user: UserSummary) -> tollgate_core::Result<()> {
        let old = self.state.borrow_mut().record.take();
        if let Some(old) = old {
            self.store.destroy(&old.id_hash).await?;
        }
        let user_agent = self.state.borrow().user_agent.clone();
        let (raw, record) = self.store.create(Some(user.id), user_agent.as_deref()).await?;
        let mut state = self.state.borrow_mut();
        state.change = CookieChange::Set { raw, expires: record.expires_at };
        state.record = Some(record);
        state.user = Some(user);
        Ok(())
    }

    /// Ends the session on the server and clears the cookie.
    pub async fn sign_out(&self) -> tollgate_core::Result<()> {
        let old = self.state.borrow_mut().record.take();
        if let Some(old) = old {
            self.store.destroy(&old.id_hash).await?;
        }
        let mut state = self.state.borrow_mut();
        state.user = None;
        state.change = CookieChange::Clear;
        Ok(())
    }

    /// Keeps a one-line message for the next page this browser loads (after a
    /// redirect); `kind` is `success` or `error`. Without a session it is dropped.
    pub async fn flash(&self, kind: &str, text: &str) -> tollgate_core::Result<()> {
        let Some(id_hash) = self.id_hash() else { return Ok(()) };
        let value = serde_json::json!({"kind": kind, "text": text});
        self.store.put(&id_hash, FLASH_KEY, value).await
    }

    /// The message kept by [`Session::flash`], once; only sessions that hold one ask the database.
    pub(crate) async fn take_flash(&self) -> tollgate_core::Result<Option<(String, String)>> {
        let id_hash = match &self.state.borrow().record {
            Some(record) if record.has_flash => record.id_hash.clone(),
            _ => return Ok(None),
        };
        let value = self.store.take(&id_hash, FLASH_KEY).await?;
        if let Some(record) = self.state.borrow_mut().record.as_mut() {
            record.has_flash = false;
        }
        let text = |key: &str| value.as_ref().and_then(|v| v.get(key)).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(text("kind").zip(text("text")))
    }

    /// The stored hash of the current session id, to keep it when ending others.
    pub fn id_hash(&self) -> Option<Vec<u8>> {
        self.state.borrow().record.as_ref().map(|r| r.id_hash.clone())
    }

    /// The database, for what every page shows besides the session (the unread count).
    pub fn pool(&self) -> &tollgate_core::db::PgPool {
        self.store.pool()
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.state.borrow().user.as_ref().map(|u| u.id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the session layer is not installed on this route")]
struct SessionLayerMissing;

impl ResponseError for SessionLayerMissing {}

impl FromRequest for Session {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Session>().cloned().ok_or_else(|| SessionLayerMissing.into()))
    }
}

/// Loads the session before the handler and writes the cookie after it.
pub async fn session_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let store = req.app_data::<web::Data<SessionStore>>().cloned().ok_or(SessionLayerMissing)?;
    let policy = req.app_data::<web::Data<CookiePolicy>>().cloned().ok_or(SessionLayerMissing)?;
    let raw = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let record = match raw {
        Some(raw) if raw.len() <= 128 => match store.load(&raw).await {
            Ok(record) => record,
            Err(err) => return Ok(unavailable(req, err)),
        },
        _ => None,
    };
    let user = match record.as_ref().and_then(|r| r.user_id) {
        Some(id) => match find_user(store.pool(), id).await {
            Ok(user) => user,
            Err(err) => return Ok(unavailable(req, err)),
        },
        None => None,
    };
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let state = Rc::new(RefCell::new(SessionState { record, user, change: CookieChange::Keep, user_agent }));
    req.extensions_mut().insert(Session { state: state.clone(), store });

    let mut res = next.call(req).await?;
    let change = std::mem::replace(&mut state.borrow_mut().change, CookieChange::Keep);
    match change {
        CookieChange::Keep => {}
        CookieChange::Set { raw, expires } => {
            let cookie = Cookie::build(SESSION_COOKIE, raw)
                .path("/")
                .http_only(true)
                .secure(policy.secure)
                .same_site(SameSite::Lax)
                .expires(expires)
                .finish();
            res.response_mut().add_cookie(&cookie).map_err(internal)?;
        }
        CookieChange::Clear => {
            let mut cookie = Cookie::build(SESSION_COOKIE, "")
                .path("/")
                .http_only(true)
                .secure(policy.secure)
                .same_site(SameSite::Lax)
                .finish();
            cookie.make_removal();
            res.response_mut().add_cookie(&cookie).map_err(internal)?;
        }
    }
    // Pages behind a session are personal: never cache them in shared caches.
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(res.map_into_boxed_body())
}

/// The session could not be read (the database is unreachable): the readable error page, as
/// an answer rather than an error, so that it gets the security headers like any page.
fn unavailable(req: ServiceRequest, err: impl std::fmt::Display) -> ServiceResponse<BoxBody> {
    tracing::error!(error = %err, "session layer failed");
    let page = crate::page::ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong",
        "Something went wrong on our side. Please try again in a moment.",
    );
    req.into_response(page.into_response())
}

fn internal(err: impl std::fmt::Display) -> actix_web::Error {
    tracing::error!(error = %err, "session layer failed");
    actix_web::error::ErrorInternalServerError("internal error")
}
