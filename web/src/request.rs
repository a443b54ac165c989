//! What handlers read from a request besides forms: bearer tokens and ids.

use actix_web::HttpRequest;
use actix_web::http::header;
use uuid::Uuid;

/// The token of an `Authorization: Bearer <token>` header, if it has a
/// plausible one. The scheme is case-insensitive (RFC 9110 §11.1), so
/// `bearer` and `BEARER` work too. Longer values are no token of ours and
/// are not looked up. This is the one place bearer tokens are read.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim_matches([' ', '\t']);
    let plausible = !token.is_empty() && token.len() <= 256 && !token.contains([' ', '\t']);
    (scheme.eq_ignore_ascii_case("bearer") && plausible).then_some(token)
}

/// An id from a path segment. One that is not a UUID names nothing, so it
/// is not found, like an id that names another account's resource.
pub fn parse_id(raw: &str) -> tollgate_core::Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| tollgate_core::Error::NotFound)
}
