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

/// The largest form body accepted; specs are uploaded elsewhere.
const FORM_LIMIT: usize = 64 * 1024;

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
}

#[derive(Debug, thiserror::Error)]
enum FormRejection {
    #[error("the form's security token is missing or out of date")]
    BadToken,
    #[error("the request came from another site")]
    CrossOrigin,
    #[error("the form could not be read: {0}")]
    Malformed(String),
}

impl ResponseError for FormRejection {
    fn status_code(&self) -> StatusCode {
        match self {
            FormRejection::BadToken | FormRejection::CrossOrigin => StatusCode::FORBIDDEN,
            FormRejection::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            FormRejection::BadToken => {
                "The form expired or was sent from another page. Go back, reload the page and try again.".to_owned()
            }
            FormRejection::CrossOrigin => "This form was sent from another site, so it was refused.".to_owned(),
            FormRejection::Malformed(why) => format!("The form could not be read: {why}."),
        };
        ErrorPage::new(self.status_code(), "Form refused", &detail).into_response()
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

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            if !same_origin(&req) {
                return Err(FormRejection::CrossOrigin.into());
            }
            let session = Session::from_request(&req, &mut Payload::None).await?;
            let body = body.await?;
            if body.len() > FORM_LIMIT {
                return Err(FormRejection::Malformed("it is too large".into()).into());
            }
            let sent = serde_urlencoded::from_bytes::<TokenOnly>(&body)
                .map_err(|e| FormRejection::Malformed(e.to_string()))?
                .csrf_token;
            let expected = session.existing_csrf_token();
            match (sent, expected) {
                (Some(sent), Some(expected)) if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => {}
                _ => return Err(FormRejection::BadToken.into()),
            }
            if let Some(field) = crate::text_edge::field_with_nul(&body) {
                return Err(FormRejection::Malformed(format!("the field “{field}” contains a NUL character")).into());
            }
            let form = serde_urlencoded::from_bytes::<T>(&body).map_err(|e| FormRejection::Malformed(e.to_string()))?;
            Ok(CsrfForm(form))
        })
    }
}
