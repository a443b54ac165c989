//! CSRF-checked forms: a url-encoded body is accepted only with this
//! session's synchronizer token and from this site.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::de::DeserializeOwned;

use tollgate_core::secrets::constant_time_eq;

use crate::page::ErrorPage;
use crate::session::Session;

/// The largest form body accepted, except on the routes that take a [`DocumentForm`].
const FORM_LIMIT: usize = 64 * 1024;

/// Registered (`app_data`) on a route whose form carries a whole document (an OpenAPI file
/// pasted or picked into a text area): its body may be this many bytes, read only for a
/// signed-in admin; anyone else keeps [`FORM_LIMIT`], so a stranger cannot make the server
/// hold megabytes.
#[derive(Clone, Copy, Debug)]
pub struct DocumentForm(pub usize);

/// A url-encoded form that carried this session's CSRF token in the
/// `csrf_token` field. Every state-changing browser route takes one, so a
/// cross-site POST fails before the handler runs.
pub struct CsrfForm<T>(pub T);

/// The form of a button that only carries the CSRF token.
#[derive(serde::Deserialize)]
pub struct EmptyForm {}

#[derive(serde::Deserialize)]
struct TokenOnly {
    csrf_token: Option<String>,
    /// The organisation the page acted for (`Chrome::acting_for`), on forms whose effect
    /// depends on it.
    acting_for: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum FormRejection {
    #[error("the form's security token is missing or out of date")]
    BadToken,
    #[error("the request came from another site")]
    CrossOrigin,
    #[error("the form could not be read: {0}")]
    Malformed(String),
    #[error("the form is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the form was for another organisation than the one the user now acts for")]
    SwitchedOrganisation,
}

impl ResponseError for FormRejection {
    fn status_code(&self) -> StatusCode {
        match self {
            FormRejection::BadToken | FormRejection::CrossOrigin => StatusCode::FORBIDDEN,
            FormRejection::Malformed(_) => StatusCode::BAD_REQUEST,
            FormRejection::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FormRejection::SwitchedOrganisation => StatusCode::CONFLICT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            FormRejection::BadToken => {
                "The form expired or was sent from another page. Go back, reload the page and try again.".to_owned()
            }
            FormRejection::CrossOrigin => "This form was sent from another site, so it was refused.".to_owned(),
            FormRejection::Malformed(why) => format!("The form could not be read: {why}."),
            FormRejection::TooLarge(limit) => format!(
                "The form is larger than this page takes ({}). Nothing was saved; go back and send less.",
                size_in_words(*limit)
            ),
            FormRejection::SwitchedOrganisation => "This page was for another organisation: you switched organisation \
                 in another tab or window since it was shown. Nothing was changed; reload the page to act for the \
                 organisation you are in now."
                .to_owned(),
        };
        let title = match self {
            FormRejection::TooLarge(_) => "Form too large",
            FormRejection::SwitchedOrganisation => "Organisation switched",
            _ => "Form refused",
        };
        ErrorPage::new(self.status_code(), title, &detail).into_response()
    }
}

/// A POST from another site is refused outright. Browsers send `Origin` on
/// cross-site form posts; where a browser or a privacy proxy leaves it out,
/// `Referer` (when present) must name this site instead. `Origin: null`
/// (sandboxed frames, some redirects) is refused. With neither header, the
/// synchronizer token alone decides.
fn same_origin(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_ascii_lowercase();
    let names_this_host = |url: &str| -> bool {
        let Some((scheme, rest)) = url.split_once("://") else { return false };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") && authority.to_ascii_lowercase() == host
    };
    let header_text = |name| req.headers().get(name).map(|v: &header::HeaderValue| v.to_str().unwrap_or("\u{0}"));
    match (header_text(header::ORIGIN), header_text(header::REFERER)) {
        (Some(origin), _) => names_this_host(origin.trim()),
        (None, Some(referer)) => names_this_host(referer.trim()),
        (None, None) => true,
    }
}

/// `bytes` for a person: `64 KiB`, `48 MiB`.
fn size_in_words(bytes: usize) -> String {
    if bytes >= 1 << 20 { format!("{} MiB", bytes >> 20) } else { format!("{} KiB", bytes.div_ceil(1024)) }
}

/// Reads the body up to `limit` bytes, refusing a larger one as soon as it shows (by its
/// `Content-Length`, or once that many bytes arrived).
async fn read_body(req: &HttpRequest, mut payload: Payload, limit: usize) -> Result<web::Bytes, actix_web::Error> {
    use futures_util::StreamExt as _;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(FormRejection::TooLarge(limit).into());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(FormRejection::TooLarge(limit).into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            if !same_origin(&req) {
                return Err(FormRejection::CrossOrigin.into());
            }
            let session = Session::from_request(&req, &mut Payload::None).await?;
            let limit = match req.app_data::<DocumentForm>() {
                Some(DocumentForm(limit)) if session.user().is_some_and(|user| user.is_admin) => *limit,
                _ => FORM_LIMIT,
            };
            let body = read_body(&req, payload, limit).await?;
            let sent = serde_urlencoded::from_bytes::<TokenOnly>(&body)
                .map_err(|e| FormRejection::Malformed(e.to_string()))?;
            let expected = session.existing_csrf_token();
            match (sent.csrf_token, expected) {
                (Some(sent), Some(expected)) if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => {}
                _ => return Err(FormRejection::BadToken.into()),
            }
            // The current organisation is the user's, not the tab's: another tab may have
            // switched it since this page was shown.
            if let Some(acting_for) = sent.acting_for.filter(|a| !a.is_empty()) {
                let now = session.user().and_then(|user| user.account_id).map(|account| account.0.to_string());
                if now.as_deref() != Some(acting_for.as_str()) {
                    return Err(FormRejection::SwitchedOrganisation.into());
                }
            }
            if let Some(field) = crate::text_edge::field_with_nul(&body) {
                return Err(FormRejection::Malformed(format!("the field “{field}” contains a NUL character")).into());
            }
            let form = serde_urlencoded::from_bytes::<T>(&body).map_err(|e| FormRejection::Malformed(e.to_string()))?;
            Ok(CsrfForm(form))
        })
    }
}
