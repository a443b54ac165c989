//! An upstream target as the contract names it, and the check of its URL.

use serde::{Deserialize, Serialize};

use crate::validation::ValidationError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// `http://` or `https://` origin plus optional path prefix.
    pub url: String,
}

pub(crate) fn check_upstream_url(url: &str, at: &str) -> Result<(), ValidationError> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(str::is_empty) {
        return Err(ValidationError::new(at, format!("{url:?} is not an http(s) URL")));
    }
    Ok(())
}
