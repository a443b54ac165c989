use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_core::web::ErrorPage;

/// The admin UI's boundary error, rendered as a readable page. Internal
/// causes are logged here, once.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AdminError(#[from] pub tollgate_core::Error);

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        use tollgate_core::Error::*;
        match &self.0 {
            Invalid { .. } | Import(_) => StatusCode::UNPROCESSABLE_ENTITY,
            NotFound => StatusCode::NOT_FOUND,
            Conflict(_) => StatusCode::CONFLICT,
            Database(_) | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match &self.0 {
            tollgate_core::Error::Database(_) | tollgate_core::Error::Internal(_) => {
                tracing::error!(error = ?self.0, "admin request failed");
                "Something went wrong on our side. Please try again in a moment.".to_owned()
            }
            other => other.to_string(),
        };
        ErrorPage::new(status, "That did not work", &detail).into_response()
    }
}

pub type AdminResult<T> = Result<T, AdminError>;
