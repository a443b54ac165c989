//! The agent API's boundary error. Core errors answer by the one policy
//! of `tollgate_web::Problem`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_web::Problem;

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

impl ResponseError for AgentApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            AgentApiError::MissingToken | AgentApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            AgentApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AgentApiError::Core(err) => tollgate_web::status_of(err),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let problem = match self {
            AgentApiError::MissingToken => Problem::new(self.status_code(), "missing_token", self.to_string()),
            AgentApiError::InvalidToken => Problem::new(self.status_code(), "invalid_token", self.to_string()),
            AgentApiError::BadRequest(message) => Problem::new(self.status_code(), "bad_request", message.clone()),
            AgentApiError::Core(err) => Problem::from_core(err, "agent API"),
        };
        problem.into_response()
    }
}

/// Bodies are parsed after the token is checked, so an unauthenticated
/// caller learns nothing about the expected shape.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AgentApiError> {
    serde_json::from_slice(body)
        .map_err(|e| AgentApiError::BadRequest(format!("the body is not valid JSON for this endpoint: {e}")))
}
