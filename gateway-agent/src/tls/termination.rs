//! TLS termination on the proxy listener: the certificates served, chosen per handshake by
//! the name the client asked for (SNI), and swapped without a restart when their files
//! change.
//!
//! A handshake gets the first pair whose certificate is valid for the requested name
//! (wildcards included, as clients check it), else the first pair. The files are checked on
//! a timer (size, modification time and inode, so an atomic rename counts); a changed set is
//! read and validated whole (each key must match its certificate) off the request path, then
//! swapped in with one atomic store. A set that fails is refused with a log line and the
//! previous certificates keep serving; it is read again when a file changes again.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::Counter;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::CertKeyPair;
use super::files::{Stamp, stamp};
use super::{TlsError, pem};

/// A client gets this long to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificates a listener serves.
pub(crate) struct ServedCertificates {
    pairs: Box<[CertKeyPair]>,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Served>,
}

/// One validated set, in the order of the settings.
struct Served {
    keys: Box<[Arc<CertifiedKey>]>,
}

impl ServedCertificates {
    /// Reads and validates every pair; `None` for no pairs (the listener stays plain HTTP).
    pub fn load(
        pairs: &[CertKeyPair],
        provider: Arc<CryptoProvider>,
    ) -> Result<Option<Arc<ServedCertificates>>, TlsError> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let served = read(pairs, &provider)?;
        Ok(Some(Arc::new(ServedCertificates { pairs: pairs.into(), provider, current: ArcSwap::from_pointee(served) })))
    }

    /// An acceptor that offers `alpn` (most preferred first) and these certificates.
    pub fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn stamps(&self) -> Vec<Option<Stamp>> {
        self.pairs.iter().flat_map(|pair| [stamp(&pair.cert), stamp(&pair.key)]).collect()
    }

    /// Checks the files every `interval` until `stop` changes, and swaps in a changed set
    /// that is valid; counts each attempt in `applied` or `refused`.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        applied: Counter,
        refused: Counter,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = self.stamps();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let now = self.stamps();
            if now == seen {
                continue;
            }
            // Stamped before reading: a file that changes while it is read is read again.
            seen = now;
            match read(&self.pairs, &self.provider) {
                Ok(served) => {
                    self.current.store(Arc::new(served));
                    applied.increment(1);
                    tracing::info!(certificates = self.pairs.len(), "TLS certificates reloaded");
                }
                Err(error) => {
                    refused.increment(1);
                    tracing::warn!(%error, "new TLS certificates refused: the previous ones keep serving");
                }
            }
        }
    }
}

impl ResolvesServerCert for ServedCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let served = self.current.load();
        let named = hello.server_name().and_then(|name| {
            let name = ServerName::try_from(name).ok()?;
            served.keys.iter().find(|key| valid_for(key, &name))
        });
        named.or_else(|| served.keys.first()).cloned()
    }
}

impl fmt::Debug for ServedCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedCertificates").field("pairs", &self.pairs).finish_non_exhaustive()
    }
}

/// Completes the handshake of an accepted connection; `None` if the client did not (port
/// scanners and clients that distrust the certificate close early: logged at debug).
pub(crate) async fn accept(acceptor: &TlsAcceptor, stream: TcpStream) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

fn read(pairs: &[CertKeyPair], provider: &CryptoProvider) -> Result<Served, TlsError> {
    let mut keys = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let chain = pem::certificates(&pair.cert)?;
        let key = pem::private_key(&pair.key)?;
        let certified = CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| TlsError::Invalid(format!("{} with {}: {e}", pair.cert.display(), pair.key.display())))?;
        keys.push(Arc::new(certified));
    }
    Ok(Served { keys: keys.into() })
}

/// Whether `key`'s certificate names `name` (as a client verifies it).
fn valid_for(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.end_entity_cert()
        .ok()
        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
        .is_some_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}
