//! Reading PEM files: certificate chains, private keys and CA bundles. Errors name the file
//! and never quote its contents.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Every certificate in `path`, in order (leaf first for a chain).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::file(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(TlsError::file(path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(certs)
}

/// The first private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::file(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::file(path, "holds no PEM private key"))
}

/// A root store of every certificate in `path`.
pub(crate) fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| TlsError::file(path, format!("not a usable CA certificate ({e})")))?;
    }
    Ok(store)
}

/// The operating system's roots (`/etc/ssl/certs` and the like, or `SSL_CERT_FILE`), for
/// peers without a CA of their own. Unreadable entries are skipped with a warning; no roots
/// at all means every such peer fails verification, which is said at start.
pub(crate) fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "reading the system's CA certificates");
    }
    let mut store = RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        tracing::warn!("no system CA certificates found: https peers without a CA setting will fail verification");
    }
    store
}
