//! The admin API's boundary error. Core errors answer by the one policy of
//! `tollgate_web::Problem`.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tollgate_web::Problem;
use utoipa::ToSchema;

/// The body of every error answer, as documented; `Problem` writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code, e.g. `invalid_input`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The offending field or JSON pointer, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The line in an uploaded document, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// On `invalid_input`: every field that failed validation, in order; `field` above is
    /// the first, and `message` sums them up ("2 problems: name: …; limits[1].max: …").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
}

/// One field that failed validation.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The field or JSON pointer, e.g. `limits[1].max`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The admin API's boundary error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "send `Authorization: Bearer <admin token>`; create one in the admin UI or with `tollgate admin token --email E`"
    )]
    Unauthenticated,
    /// A bearer token that is not a live admin token: mistyped, revoked, or its admin gone.
    #[error(
        "the admin token is not valid: it was revoked, mistyped, or its admin no longer exists; \
         create a new one in the admin UI or with `tollgate admin token --email E`"
    )]
    UnknownToken,
    /// A real token whose end has passed.
    #[error(
        "the admin token expired at {}; create a new one in the admin UI or with `tollgate admin token --email E`",
        super::wire::rfc3339(*.0)
    )]
    ExpiredToken(time::OffsetDateTime),
    /// A read token on a request that changes something.
    #[error("this admin token has scope read, which allows GET and HEAD only; use a token with scope write")]
    InsufficientScope,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// A body or query string that does not parse as its type, at `field` when known.
    #[error("{message}")]
    Unparsed { field: Option<String>, message: String },
    #[error("this resource answers only {0}")]
    MethodNotAllowed(&'static str),
    /// An offset page past the rows offset pages reach (`page::DEEPEST_OFFSET_ROW`).
    #[error(
        "`page` starts past row 10,000, the deepest an offset page reaches (an offset reads every row it skips); \
         page by key instead: pass the last `id` of a page as `after_id`, as the answer's `next` link does"
    )]
    PageTooDeep,
    /// A body over the API's limit.
    #[error(
        "the body is over the limit of {0} bytes (one OpenAPI document of 16 MiB and its JSON; a configuration file of 32 MiB)"
    )]
    TooLarge(usize),
    #[error(transparent)]
    Core(#[from] tollgate_core::Error),
}

impl ApiError {
    pub fn into_response(self) -> HttpResponse {
        self.error_response()
    }

    fn problem(&self) -> Problem {
        match self {
            ApiError::Unauthenticated | ApiError::UnknownToken | ApiError::ExpiredToken(_) => {
                Problem::new(self.status_code(), "unauthenticated", self.to_string())
            }
            ApiError::InsufficientScope => Problem::new(self.status_code(), "insufficient_scope", self.to_string()),
            ApiError::NotFound => Problem::from_core(&tollgate_core::Error::NotFound, "admin API"),
            ApiError::BadRequest(message) => Problem::new(self.status_code(), "bad_request", message.clone()),
            ApiError::Unparsed { field, message } => {
                Problem { field: field.clone(), ..Problem::new(self.status_code(), "bad_request", message.clone()) }
            }
            ApiError::MethodNotAllowed(_) => Problem::new(self.status_code(), "method_not_allowed", self.to_string()),
            ApiError::PageTooDeep => Problem {
                field: Some("page".to_owned()),
                ..Problem::new(self.status_code(), "page_too_deep", self.to_string())
            },
            ApiError::TooLarge(_) => Problem::new(self.status_code(), "payload_too_large", self.to_string()),
            ApiError::Core(err) => Problem::from_core(err, "admin API"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::UnknownToken | ApiError::ExpiredToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Unparsed { .. } | ApiError::PageTooDeep => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Core(err) => tollgate_web::status_of(err),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.problem().into_response();
        // RFC 6750: a 401 names the scheme it wants, and says when a token was given but is bad;
        // a 403 names the scope the request needs.
        let challenge = match self {
            ApiError::Unauthenticated => Some(r#"Bearer realm="tollgate-admin""#),
            ApiError::UnknownToken => Some(r#"Bearer realm="tollgate-admin", error="invalid_token""#),
            ApiError::ExpiredToken(_) => {
                Some(r#"Bearer realm="tollgate-admin", error="invalid_token", error_description="The token expired""#)
            }
            ApiError::InsufficientScope => {
                Some(r#"Bearer realm="tollgate-admin", error="insufficient_scope", scope="write""#)
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
