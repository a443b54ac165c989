//! Finding the calling application from the credentials in a request.
//!
//! Keys are read from the query string or a header as the API says (key_location.rs),
//! hashed (SHA-256, as the server stores them) and looked up in the credential table. Key
//! values are never logged or kept; only their visible prefix ([`KeyPrefix`]) is, for the
//! failed-call records of the application they identify.

use hyper::HeaderMap;
use jiff::Timestamp;
use tollgate_protocol::usage::MAX_KEY_PREFIX_BYTES;
use tollgate_protocol::{ApplicationState, KeyHash, KeyKind};

use super::key_location::{Absent, Auth, AuthKind};
use crate::config::{AppEntry, Config, CredentialEntry, PlanEntry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// 400: two different values for one credential (see key_location.rs).
    Ambiguous,
    /// 401: no credentials (or only half of app_id + app_key).
    Missing(Absent),
    /// 403: unknown, expired or revoked key, or a key of another API.
    Invalid,
    /// 403: the application is pending approval, or suspended.
    NotLive { suspended: bool },
}

/// Who is calling: the credential that admitted the request (and its SHA-256), the
/// application it identifies, and that application's plan.
pub(crate) struct Caller<'a> {
    pub hash: [u8; 32],
    pub credential: &'a CredentialEntry,
    pub app: &'a AppEntry,
    pub plan: &'a PlanEntry,
    pub prefix: Option<KeyPrefix>,
}

/// The application a request's key belongs to, whether or not the key admits the request:
/// a refusal can then be shown to the key's holder among their failed calls.
#[derive(Clone, Copy)]
pub(crate) struct Identified<'a> {
    pub app: &'a AppEntry,
    pub prefix: Option<KeyPrefix>,
}

/// Why a request was not admitted, and whose key it presented if the agent knows the key.
pub(crate) struct Denied<'a> {
    pub error: AuthError,
    pub identified: Option<Identified<'a>>,
}

/// The visible prefix of a key (`tg_uk_1AbC`, see [`tollgate_protocol::key::display_prefix`]),
/// kept inline so that remembering it costs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyPrefix {
    bytes: [u8; MAX_KEY_PREFIX_BYTES],
    len: u8,
}

impl KeyPrefix {
    /// The prefix of `key`, if it is in Tollgate's key format.
    pub fn of(key: &str) -> Option<KeyPrefix> {
        let prefix = tollgate_protocol::key::display_prefix(key)?;
        let mut bytes = [0; MAX_KEY_PREFIX_BYTES];
        bytes.get_mut(..prefix.len())?.copy_from_slice(prefix.as_bytes());
        Some(KeyPrefix { bytes, len: u8::try_from(prefix.len()).ok()? })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// A key found in the credential table, before it is checked for this request.
struct Found<'a> {
    hash: [u8; 32],
    credential: &'a CredentialEntry,
    app: &'a AppEntry,
    prefix: Option<KeyPrefix>,
}

/// Reads the request's key and looks it up. Errors are `Ambiguous`, `Missing` or `Invalid`
/// (an unknown key, or an app_key of another app_id).
fn find<'a>(config: &'a Config, auth: &Auth, query: Option<&str>, headers: &HeaderMap) -> Result<Found<'a>, AuthError> {
    let presented = auth.read(query, headers).map_err(|_| AuthError::Ambiguous)?;
    let (key, app_id_slot) = match auth.kind() {
        AuthKind::UserKey => (presented.get(0).ok_or(AuthError::Missing(Absent::All))?, None),
        AuthKind::AppIdKey => {
            let (app_id, key) = match (presented.get(0), presented.get(1)) {
                (Some(app_id), Some(key)) => (app_id, key),
                (Some(_), None) => return Err(AuthError::Missing(Absent::AppKey)),
                (None, Some(_)) => return Err(AuthError::Missing(Absent::AppId)),
                (None, None) => return Err(AuthError::Missing(Absent::All)),
            };
            (key, Some(*config.apps.by_app_id.get(app_id).ok_or(AuthError::Invalid)?))
        }
    };
    let hash = KeyHash::of(key).0;
    let credential = config.credentials.get(&hash).ok_or(AuthError::Invalid)?;
    // An app_key identifies only together with its own app_id: a public app_id alone never does.
    if app_id_slot.is_some_and(|slot| slot != credential.app) {
        return Err(AuthError::Invalid);
    }
    let app = config.apps.get(credential.app).ok_or(AuthError::Invalid)?;
    Ok(Found { hash, credential, app, prefix: KeyPrefix::of(key) })
}

/// The application whose key the request presents, if the key is in the table (expired, of
/// another API or of a suspended application included), for requests refused before they
/// are authenticated.
pub(crate) fn identify<'a>(
    config: &'a Config,
    auth: &Auth,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Identified<'a>> {
    find(config, auth, query, headers).ok().map(|found| Identified { app: found.app, prefix: found.prefix })
}

/// The live application the request's credentials identify, for the API at `api_index`.
pub(crate) fn authenticate<'a>(
    config: &'a Config,
    api_index: u32,
    auth: &Auth,
    query: Option<&str>,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Caller<'a>, Denied<'a>> {
    let found = find(config, auth, query, headers).map_err(|error| Denied { error, identified: None })?;
    let deny = |error| Denied { error, identified: Some(Identified { app: found.app, prefix: found.prefix }) };
    let kind = match auth.kind() {
        AuthKind::UserKey => KeyKind::UserKey,
        AuthKind::AppIdKey => KeyKind::AppKey,
    };
    if found.credential.kind != kind || !found.credential.is_valid_at(now) {
        return Err(deny(AuthError::Invalid));
    }
    // A key only opens the API its application subscribes to.
    let plan = config.catalog.plan(found.app.plan).ok_or_else(|| deny(AuthError::Invalid))?;
    if plan.api != api_index {
        return Err(deny(AuthError::Invalid));
    }
    if found.app.state != ApplicationState::Live {
        return Err(deny(AuthError::NotLive { suspended: found.app.state == ApplicationState::Suspended }));
    }
    Ok(Caller { hash: found.hash, credential: found.credential, app: found.app, plan, prefix: found.prefix })
}
