//! Roots for the control plane: the management server over `https://`
//! (`TOLLGATE_AGENT_SERVER_CA`) and Redis over `rediss://` (`TOLLGATE_AGENT_REDIS_CA`); the
//! system's roots without them.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};

use super::{TlsError, pem, upstream};

/// The client config for the management server. An `http://` server without a CA setting
/// gets an empty root store: it is never used, and the system store is not read for nothing.
pub(crate) fn server_config(
    provider: &Arc<CryptoProvider>,
    https: bool,
    ca: Option<&Path>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match ca {
        Some(ca) => pem::roots(ca)?,
        None if https => pem::system_roots(),
        None => RootCertStore::empty(),
    };
    // No ALPN here: the HTTPS connector sets it from the protocols it enables.
    upstream::client_config(provider, roots, None, &[])
}

/// The PEM bytes of Redis's CA file, checked to hold at least one usable certificate (the
/// Redis client parses them again itself).
pub(crate) fn redis_ca(path: &Path) -> Result<Vec<u8>, TlsError> {
    pem::roots(path)?;
    std::fs::read(path).map_err(|e| TlsError::file(path, e))
}
