//! The error type at core's boundary. Web crates map it to status codes.

use std::borrow::Cow;

/// What went wrong in a core operation, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed validation; `field` names where, `message` says what.
    #[error("{field}: {message}")]
    Invalid { field: Cow<'static, str>, message: String },
    /// Input failed validation in more than one place, each in the order found (at least
    /// two; one is `Invalid`), so one answer names them all.
    #[error("{}", list(.0))]
    InvalidFields(Vec<FieldProblem>),
    /// The thing does not exist, or the caller may not know it exists.
    #[error("not found")]
    NotFound,
    /// The change conflicts with the current state (duplicate name, wrong state).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests from one client (or for one address) for now;
    /// the same answer whoever is asked about, so it reveals nothing.
    #[error("too many requests; try again in {}", minutes(retry_after.as_secs()))]
    RateLimited { retry_after: std::time::Duration },
    /// A spec or document could not be imported.
    #[error(transparent)]
    Import(#[from] tollgate_openapi::ImportError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One place where input failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: Cow<'static, str>,
    pub message: String,
}

fn list(problems: &[FieldProblem]) -> String {
    let each: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
    format!("{} problems: {}", problems.len(), each.join("; "))
}

impl Error {
    /// Where and what, for each place the input failed validation; empty for other errors.
    pub fn field_problems(&self) -> Vec<(&str, &str)> {
        match self {
            Error::Invalid { field, message } => vec![(field, message)],
            Error::InvalidFields(problems) => problems.iter().map(|p| (&*p.field, p.message.as_str())).collect(),
            _ => Vec::new(),
        }
    }
}

/// The problems a validation finds, collected so that one answer names them all.
#[derive(Debug, Default)]
pub struct FieldProblems(Vec<FieldProblem>);

impl FieldProblems {
    pub fn add(&mut self, field: impl Into<Cow<'static, str>>, message: impl Into<String>) {
        self.0.push(FieldProblem { field: field.into(), message: message.into() });
    }

    /// The value of a check that may fail validation, or `None` with its problems noted;
    /// other errors pass through.
    pub fn note<T>(&mut self, checked: Result<T>) -> Result<Option<T>> {
        match checked {
            Ok(value) => Ok(Some(value)),
            Err(Error::Invalid { field, message }) => {
                self.add(field, message);
                Ok(None)
            }
            Err(Error::InvalidFields(problems)) => {
                self.0.extend(problems);
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// `Ok` when nothing was found, else the error that names each problem.
    pub fn into_result(mut self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => {
                let FieldProblem { field, message } = self.0.remove(0);
                Err(Error::Invalid { field, message })
            }
            _ => Err(Error::InvalidFields(self.0)),
        }
    }
}

/// Maps unique-constraint violations to a `Conflict` with a readable message.
pub(crate) fn conflict_on_unique(err: sqlx::Error, message: &str) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(message.to_owned()),
        _ => Error::Database(err),
    }
}

/// Maps a violation of the unique index `constraint` to `Invalid` on `field` with `message`,
/// any other unique violation to a `Conflict` saying `otherwise`.
pub(crate) fn taken_or_conflict(
    err: sqlx::Error,
    constraint: &str,
    field: &'static str,
    message: impl FnOnce() -> String,
    otherwise: &str,
) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() && db.constraint() == Some(constraint) => {
            Error::invalid(field, message())
        }
        _ => conflict_on_unique(err, otherwise),
    }
}

/// A wait in whole minutes, rounded up, at least one: `1 minute`, `2 minutes`.
pub fn minutes(seconds: u64) -> String {
    match seconds.div_ceil(60).max(1) {
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, FieldProblems};

    #[test]
    fn problems_are_one_invalid_field_or_all_of_them_in_order() {
        assert!(FieldProblems::default().into_result().is_ok());
        let mut one = FieldProblems::default();
        one.add("name", "use 1 to 200 characters");
        let err = one.into_result().unwrap_err();
        assert!(matches!(&err, Error::Invalid { field, .. } if field == "name"));
        assert_eq!(err.field_problems(), [("name", "use 1 to 200 characters")]);
        let mut two = FieldProblems::default();
        two.add("name", "use 1 to 200 characters");
        two.add("limits[1].max", "cannot be negative");
        let err = two.into_result().unwrap_err();
        assert_eq!(
            err.field_problems(),
            [("name", "use 1 to 200 characters"), ("limits[1].max", "cannot be negative")]
        );
        assert_eq!(err.to_string(), "2 problems: name: use 1 to 200 characters; limits[1].max: cannot be negative");
    }

    #[test]
    fn a_wait_is_whole_minutes_rounded_up_in_words() {
        assert_eq!(super::minutes(0), "1 minute");
        assert_eq!(super::minutes(60), "1 minute");
        assert_eq!(super::minutes(61), "2 minutes");
        assert_eq!(super::minutes(3600), "60 minutes");
    }
}
