//! TLS for every connection the agent makes or accepts: termination of client connections
//! on the proxy listener ([`termination`]), `https://` upstreams with optional client
//! certificates ([`upstream`]), and the roots for the management server and Redis
//! ([`control`]).
//!
//! One crypto backend, `ring`, as everywhere in the workspace (sqlx, lettre, reqwest): it
//! builds with the Rust toolchain alone, where aws-lc-rs needs a C compiler and cmake, and a
//! second backend would mean two implementations of the same primitives to audit and update.

pub(crate) mod config;
pub(crate) mod control;
mod files;
mod pem;
pub(crate) mod termination;
pub(crate) mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// Why a certificate, key or TLS file could not be used. Never holds key material.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl TlsError {
    fn file(path: &Path, reason: impl ToString) -> TlsError {
        TlsError::File { path: path.to_owned(), reason: reason.to_string() }
    }
}

/// The `ring` provider, also installed as the process default for libraries that build
/// their own rustls configs (the Redis client).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    // Already installed (by an earlier agent in this process, or by the embedding program):
    // that one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}
