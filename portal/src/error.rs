use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_core::web::ErrorPage;

/// The portal's boundary error: every failure becomes a readable page with
/// the right status. Internal causes are logged here, once.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PortalError(#[from] pub tollgate_core::Error);

impl ResponseError for PortalError {
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
        let (title, detail) = match &self.0 {
            tollgate_core::Error::NotFound => {
                ("Not found", "There is nothing here. It may have been removed, or the link is wrong.".to_owned())
            }
            tollgate_core::Error::Database(_) | tollgate_core::Error::Internal(_) => {
                tracing::error!(error = ?self.0, "portal request failed");
                ("Something went wrong", "Something went wrong on our side. Please try again in a moment.".to_owned())
            }
            other => ("That did not work", other.to_string()),
        };
        ErrorPage::new(status, title, &detail).into_response()
    }
}

pub type PortalResult<T> = Result<T, PortalError>;
