use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// The agent API's boundary error: JSON bodies with a snake_case code.
#[derive(Debug, thiserror::Error)]
pub enum AgentApiError {
    #[error("send `Authorization: Bearer <agent token>`; create one with `tollgate agent create --name NAME`")]
    MissingToken,
    #[error("this agent token is unknown or revoked")]
    InvalidToken,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Core(#[from] tollgate_core::Error),
}

impl AgentApiError {
    fn code(&self) -> &'static str {
        match self {
            AgentApiError::MissingToken => "missing_token",
            AgentApiError::InvalidToken => "invalid_token",
            AgentApiError::BadRequest(_) => "bad_request",
            AgentApiError::Core(tollgate_core::Error::Invalid { .. }) => "invalid",
            AgentApiError::Core(tollgate_core::Error::NotFound) => "not_found",
            AgentApiError::Core(tollgate_core::Error::Conflict(_)) => "conflict",
            AgentApiError::Core(_) => "internal_error",
        }
    }
}

impl ResponseError for AgentApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            AgentApiError::MissingToken | AgentApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            AgentApiError::BadRequest(_) | AgentApiError::Core(tollgate_core::Error::Invalid { .. }) => {
                StatusCode::BAD_REQUEST
            }
            AgentApiError::Core(tollgate_core::Error::NotFound) => StatusCode::NOT_FOUND,
            AgentApiError::Core(tollgate_core::Error::Conflict(_)) => StatusCode::CONFLICT,
            AgentApiError::Core(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            AgentApiError::Core(tollgate_core::Error::Database(_) | tollgate_core::Error::Internal(_)) => {
                tracing::error!(error = ?self, "agent API request failed");
                "internal error; the agent will retry".to_owned()
            }
            other => other.to_string(),
        };
        HttpResponse::build(self.status_code()).json(json!({"error": self.code(), "message": message}))
    }
}

/// Bodies are parsed after the token is checked, so an unauthenticated
/// caller learns nothing about the expected shape.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AgentApiError> {
    serde_json::from_slice(body)
        .map_err(|e| AgentApiError::BadRequest(format!("the body is not valid JSON for this endpoint: {e}")))
}
