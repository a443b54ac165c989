//! The located error every check of the contract answers with.

use std::fmt;

/// A problem with a located value, e.g. `applications[3].plan_id: unknown plan 0190…`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// Path of the offending value, in Rust/JS-like notation.
    pub path: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl fmt::Display) -> ValidationError {
        ValidationError { path: path.into(), message: message.to_string() }
    }
}
