use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
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
}

/// The admin API's boundary error, mapped to statuses in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "send `Authorization: Bearer <admin token>`; create one in the admin UI or with `tollgate admin token --email E`"
    )]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("this resource answers only {0}")]
    MethodNotAllowed(&'static str),
    #[error(transparent)]
    Core(#[from] tollgate_core::Error),
}

impl ApiError {
    pub fn into_response(self) -> HttpResponse {
        self.error_response()
    }

    fn body(&self) -> ErrorBody {
        use tollgate_core::Error as E;
        let plain = |error: &str, message: String| ErrorBody { error: error.into(), message, field: None, line: None };
        match self {
            ApiError::Unauthenticated => plain("unauthenticated", self.to_string()),
            ApiError::NotFound | ApiError::Core(E::NotFound) => plain("not_found", "there is no such resource".into()),
            ApiError::BadRequest(message) => plain("bad_request", message.clone()),
            ApiError::MethodNotAllowed(_) => plain("method_not_allowed", self.to_string()),
            ApiError::Core(E::Invalid { field, message }) => ErrorBody {
                error: "invalid_input".into(),
                message: format!("{field}: {message}"),
                field: Some(field.to_string()),
                line: None,
            },
            ApiError::Core(E::Import(err)) => ErrorBody {
                error: "invalid_spec".into(),
                message: err.to_string(),
                field: Some(err.pointer.clone()),
                line: err.line,
            },
            ApiError::Core(E::Conflict(message)) => plain("conflict", message.clone()),
            ApiError::Core(E::Database(_) | E::Internal(_)) => {
                tracing::error!(error = ?self, "admin API request failed");
                plain("internal_error", "something went wrong on our side; try again".into())
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use tollgate_core::Error as E;
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::NotFound | ApiError::Core(E::NotFound) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Core(E::Invalid { .. } | E::Import(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Core(E::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Core(E::Database(_) | E::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body after authentication, rejecting unknown fields where
/// the type says so, with the serde message (which names the field).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("the JSON body is not valid: {e}")))?;
    integral_floats_to_integers(&mut value);
    if let Some(path) = nul_in(&value, String::new()) {
        return Err(tollgate_core::Error::invalid(path, "text cannot contain NUL characters").into());
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("the JSON body is not valid: {e}")))
}

/// JSON Schema counts `670.0` as an integer, so clients may send it where an
/// integer is documented; serde would refuse it.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Postgres text cannot hold NUL, so such input is refused at the edge.
fn nul_in(value: &serde_json::Value, here: String) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if here.is_empty() { "/".into() } else { here }),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_in(v, format!("{here}/{i}"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(format!("{here}/{k}"));
            }
            nul_in(v, format!("{here}/{k}"))
        }),
        _ => None,
    }
}

/// Path ids that are not UUIDs name nothing.
pub fn parse_id(raw: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// Parses the query string after authentication, so an unauthenticated
/// caller always gets 401 first.
pub fn parse_query<T: serde::de::DeserializeOwned>(req: &actix_web::HttpRequest) -> ApiResult<T> {
    if req.query_string().to_ascii_lowercase().contains("%00") {
        return Err(ApiError::BadRequest("query parameters cannot contain NUL characters".into()));
    }
    actix_web::web::Query::<T>::from_query(req.query_string())
        .map(actix_web::web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("the query string is not valid: {e}")))
}

/// Refuses a query parameter longer than its documented maximum.
pub fn check_len(name: &str, value: Option<&str>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(ApiError::BadRequest(format!("{name}: use at most {max} characters")))
        }
        _ => Ok(()),
    }
}
