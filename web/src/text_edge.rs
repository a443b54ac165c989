//! Text with a NUL character is refused where it enters: Postgres text cannot hold one, so it
//! would otherwise surface as a database error (a 500) wherever a field or a query parameter
//! is searched or stored. The admin REST API has its own check on JSON
//! (`admin::api::wire`); this one covers the browser pages' paths, query strings and forms.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;

use crate::page::ErrorPage;

/// The first field of url-encoded `pairs` whose name or value holds a NUL, once decoded.
pub fn field_with_nul(encoded: &[u8]) -> Option<String> {
    // Decoded, a NUL comes only from `%00` or a raw NUL: every other form and query (all but
    // an attacker's) is passed without decoding it a second time.
    if !encoded.contains(&0) && !encoded.windows(3).any(|w| w == b"%00") {
        return None;
    }
    let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(encoded).ok()?;
    pairs
        .into_iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', ""))
}

/// Whether a raw request path holds a NUL once decoded (`%00`): actix decodes it into the
/// path's segments (`/apis/%00`), which then reach a query as a slug or a name.
pub fn path_with_nul(path: &str) -> bool {
    path.as_bytes().contains(&0) || path.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"))
}

/// Answers 400 to a page request whose path or query string holds a NUL character.
pub async fn refuse_nul_in_address(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if path_with_nul(req.uri().path()) {
        let detail = "The address contains a NUL character (%00), which no page has.";
        let response = ErrorPage::new(StatusCode::BAD_REQUEST, "Address refused", detail).into_response();
        return Ok(req.into_response(response));
    }
    if let Some(field) = field_with_nul(req.query_string().as_bytes()) {
        let detail = format!("The query parameter “{field}” contains a NUL character, which no field can hold.");
        let response = ErrorPage::new(StatusCode::BAD_REQUEST, "Address refused", &detail).into_response();
        return Ok(req.into_response(response));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_names_and_values_once_decoded() {
        assert_eq!(field_with_nul(b"q=%00"), Some("q".into()));
        assert_eq!(field_with_nul(b"a=1&name=x%00y"), Some("name".into()));
        assert_eq!(field_with_nul(b"a%00=1"), Some("a".into()));
        assert_eq!(field_with_nul(b"q=plain&page=2"), None);
        assert_eq!(field_with_nul(b""), None);
        assert!(path_with_nul("/apis/%00") && path_with_nul("/apis/a%00b/spec"));
        assert!(!path_with_nul("/apis/weather") && !path_with_nul("/apis/%2500"));
    }
}
