//! The one policy that turns `tollgate_core::Error` into HTTP: its status,
//! the stable snake_case code of JSON answers, and the words people may
//! see. Internal causes (database, bugs) are logged here, once, and never
//! shown. Pages use `PageError`; JSON APIs build a `Problem`.

use actix_web::error::QueryPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use tollgate_core::Error;

use crate::page::ErrorPage;

/// The status of a core error, wherever it is answered.
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::Invalid { .. } | Error::InvalidFields(_) | Error::Import(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn retry_minutes(err: &Error) -> String {
    match err {
        Error::RateLimited { retry_after } => tollgate_core::minutes(retry_after.as_secs()),
        _ => tollgate_core::minutes(60),
    }
}

/// The seconds of a rate-limited answer's `Retry-After`.
fn retry_after_seconds(err: &Error) -> Option<u64> {
    match err {
        Error::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
        _ => None,
    }
}

/// `Retry-After` on a rate-limited answer.
fn add_retry_after(err: &Error, res: &mut HttpResponse) {
    if let Some(seconds) = retry_after_seconds(err) {
        res.headers_mut().insert(actix_web::http::header::RETRY_AFTER, seconds.into());
    }
}

const INTERNAL_MESSAGE: &str = "something went wrong on our side; try again";

/// A page's boundary error: every failure becomes a readable page with the
/// right status.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub Error);

pub type PageResult<T> = Result<T, PageError>;

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        let (title, detail) = match &self.0 {
            Error::NotFound => {
                ("Not found", "There is nothing here. It may have been removed, or the link is wrong.".to_owned())
            }
            Error::Database(_) | Error::Internal(_) => {
                tracing::error!(error = ?self.0, "page request failed");
                ("Something went wrong", "Something went wrong on our side. Please try again in a moment.".to_owned())
            }
            Error::RateLimited { .. } => (
                "Too many requests",
                format!(
                    "We have had many requests like this one from your network, so we are pausing them to protect people's mailboxes. Try again in {}.",
                    retry_minutes(&self.0)
                ),
            ),
            other => ("That did not work", other.to_string()),
        };
        let mut res = ErrorPage::new(self.status_code(), title, &detail).into_response();
        add_retry_after(&self.0, &mut res);
        res
    }
}

/// Registers, on the scope of the HTML pages, how their `web::Path` and
/// `web::Query` extractors fail: as a `PageError`, so a bad segment or
/// parameter gets the error page, not actix's plain-text 404 or 400. The
/// JSON APIs keep their own scopes and answers.
pub fn page_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|_, _| PageError(Error::NotFound).into()))
        .app_data(web::QueryConfig::default().error_handler(|err, _| PageError(query_error(&err)).into()));
}

/// A segment that does not parse (`/versions/abc`) names nothing, so it is
/// not found; a query that does not parse is invalid input, named when serde
/// names it. Handlers read values as text and name their own bad values, so
/// what reaches here is mostly a parameter given twice.
fn query_error(err: &QueryPayloadError) -> Error {
    let QueryPayloadError::Deserialize(cause) = err else {
        return Error::invalid("query", "the address's query string does not parse");
    };
    let text = cause.to_string();
    let named = |prefix: &str| text.strip_prefix(prefix)?.strip_prefix('`')?.strip_suffix('`').map(str::to_owned);
    if let Some(name) = named("duplicate field ") {
        Error::invalid(name, "given more than once; give each parameter once")
    } else if let Some(name) = named("missing field ") {
        Error::invalid(name, "missing; the page needs it")
    } else {
        Error::invalid("query", format!("{text}; use the page's own links and forms"))
    }
}

/// The body of every JSON error answer:
/// `{"error": "<snake_case_code>", "message": "…"}`, with the offending
/// field or JSON pointer and the line of an uploaded document when known.
#[derive(Debug, serde::Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Every place the input failed validation, in order (`field` and `message` name the
    /// first); on `invalid_input` answers only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds for `Retry-After`, on a rate-limited answer.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// One place where input failed validation, in a JSON error answer.
#[derive(Debug, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            error,
            message: message.into(),
            field: None,
            line: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// The answer to a core error; `api` names the API in the log line of
    /// an internal error.
    pub fn from_core(err: &Error, api: &str) -> Problem {
        let status = status_of(err);
        match err {
            Error::Invalid { .. } | Error::InvalidFields(_) => {
                let errors: Vec<FieldError> = err
                    .field_problems()
                    .into_iter()
                    .map(|(field, message)| FieldError { field: field.to_owned(), message: message.to_owned() })
                    .collect();
                Problem {
                    field: errors.first().map(|e| e.field.clone()),
                    errors,
                    ..Problem::new(status, "invalid_input", err.to_string())
                }
            }
            Error::Import(import) => Problem {
                field: Some(import.pointer.clone()),
                line: import.line,
                ..Problem::new(status, "invalid_spec", import.to_string())
            },
            Error::NotFound => Problem::new(status, "not_found", "there is no such resource"),
            Error::Conflict(message) => Problem::new(status, "conflict", message.clone()),
            Error::RateLimited { .. } => Problem {
                retry_after: retry_after_seconds(err),
                ..Problem::new(status, "rate_limited", err.to_string())
            },
            Error::Database(_) | Error::Internal(_) => {
                tracing::error!(error = ?err, "{api} request failed");
                Problem::new(status, "internal_error", INTERNAL_MESSAGE)
            }
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        response.json(&self)
    }
}
