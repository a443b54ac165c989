//! What handlers read from a request besides forms: bearer tokens and ids.

use actix_web::HttpRequest;
use actix_web::http::header;
use uuid::Uuid;

/// The token of an `Authorization: Bearer <token>` header, if it has a
/// plausible one. Longer values are no token of ours and are not looked up.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

/// An id from a path segment. One that is not a UUID names nothing, so it
/// is not found, like an id that names another account's resource.
pub fn parse_id(raw: &str) -> tollgate_core::Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| tollgate_core::Error::NotFound)
}
