//! Finding the calling application from the credentials in a request.
//!
//! Keys are read from the query string or a header as the API says (key_location.rs),
//! hashed (SHA-256, as the server stores them) and looked up in the credential table. Key
//! values are never logged or kept.

use hyper::HeaderMap;
use jiff::Timestamp;
use tollgate_protocol::{ApplicationState, KeyHash, KeyKind};

use super::key_location::{Auth, AuthKind};
use crate::config::{AppEntry, Config, CredentialEntry, PlanEntry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// 400: two different values for one credential (see key_location.rs).
    Ambiguous,
    /// 401: no credentials (or only half of app_id + app_key).
    Missing,
    /// 403: unknown, expired or revoked key, or a key of another API.
    Invalid,
    /// 403: the application is pending or suspended.
    NotLive,
}

/// Who is calling: the credential that admitted the request (and its SHA-256), the
/// application it identifies, and that application's plan.
pub(crate) struct Caller<'a> {
    pub hash: [u8; 32],
    pub credential: &'a CredentialEntry,
    pub app: &'a AppEntry,
    pub plan: &'a PlanEntry,
}

/// The live application the request's credentials identify, for the API at `api_index`.
pub(crate) fn authenticate<'a>(
    config: &'a Config,
    api_index: u32,
    auth: &Auth,
    query: Option<&str>,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Caller<'a>, AuthError> {
    let presented = auth.read(query, headers).map_err(|_| AuthError::Ambiguous)?;
    let (hash, credential) = match auth.kind() {
        AuthKind::UserKey => {
            let key = presented.get(0).ok_or(AuthError::Missing)?;
            let hash = KeyHash::of(key).0;
            let entry = config.credentials.get(&hash).ok_or(AuthError::Invalid)?;
            if entry.kind != KeyKind::UserKey || !entry.is_valid_at(now) {
                return Err(AuthError::Invalid);
            }
            (hash, entry)
        }
        AuthKind::AppIdKey => {
            let (Some(app_id), Some(key)) = (presented.get(0), presented.get(1)) else {
                return Err(AuthError::Missing);
            };
            let &slot = config.apps.by_app_id.get(app_id).ok_or(AuthError::Invalid)?;
            let hash = KeyHash::of(key).0;
            let entry = config.credentials.get(&hash).ok_or(AuthError::Invalid)?;
            if entry.kind != KeyKind::AppKey || entry.app != slot || !entry.is_valid_at(now) {
                return Err(AuthError::Invalid);
            }
            (hash, entry)
        }
    };
    let app = config.apps.get(credential.app).ok_or(AuthError::Invalid)?;
    // A key only opens the API its application subscribes to.
    let plan = config.catalog.plan(app.plan).ok_or(AuthError::Invalid)?;
    if plan.api != api_index {
        return Err(AuthError::Invalid);
    }
    if app.state != ApplicationState::Live {
        return Err(AuthError::NotLive);
    }
    Ok(Caller { hash, credential, app, plan })
}
