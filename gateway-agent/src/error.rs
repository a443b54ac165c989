//! The one error type at the crate's boundary.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::settings::SettingsError;

/// Why the agent could not start or stop cleanly. Runtime trouble (the management server or
/// Redis being down, a bad config update) is not an error: the agent keeps serving and says
/// so in its logs, metrics and status reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A listener that cannot be opened, named by the setting that chose its address.
    #[error("{setting}: cannot listen on {addr}: {}", bind_reason(source))]
    Bind { setting: &'static str, addr: SocketAddr, source: io::Error },
    #[error("TOLLGATE_AGENT_STATE_DIR: {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error(
        "TOLLGATE_AGENT_STATE_DIR: {path} is in use by another running agent; give each agent its own directory \
         (it holds the agent's id, saved config and usage spool)"
    )]
    StateDirInUse { path: PathBuf },
    #[error("TOLLGATE_AGENT_ACCESS_LOG_PATH: {path}: {source}")]
    AccessLog { path: PathBuf, source: io::Error },
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("redis: {0}")]
    Redis(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
}

impl Error {
    /// Process exit code: 2 for bad settings (as the docs promise), a certificate, key or CA
    /// file that cannot be used among them; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Settings(_) | Error::Tls(_) => 2,
            _ => 1,
        }
    }
}

/// Why a listener could not be opened, with what to do for the common cases.
fn bind_reason(source: &io::Error) -> String {
    match source.kind() {
        io::ErrorKind::AddrInUse => {
            format!("{source}; another process has this address: stop it or choose another address")
        }
        io::ErrorKind::AddrNotAvailable => format!("{source}; this machine has no such address"),
        io::ErrorKind::PermissionDenied => {
            format!("{source}; ports below 1024 need root or CAP_NET_BIND_SERVICE")
        }
        _ => source.to_string(),
    }
}
