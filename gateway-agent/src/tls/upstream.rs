//! `https://` upstreams: verified against the system roots, or against a CA of their own,
//! optionally presenting a client certificate (upstream mTLS).
//!
//! Both are agent-side settings keyed by upstream host, in the TOML file named by
//! `TOLLGATE_AGENT_UPSTREAM_TLS`, not API settings pushed by the management server: a client
//! certificate's private key belongs on the machine that uses it and never travels through
//! the control plane, and the host is what a certificate vouches for.
//!
//! ```toml
//! [[upstream]]
//! host = "billing.internal:8443"   # as in the API's upstream URL; the port defaults to 443
//! ca = "/etc/tollgate/billing-ca.pem"
//! client_cert = "/etc/tollgate/agent.pem"
//! client_key = "/etc/tollgate/agent.key"
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use hyper::http::uri::Authority;
use metrics::Counter;
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::files::{Stamp, stamp};
use super::{TlsError, pem};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    upstream: Vec<Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    host: String,
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// The TLS client configs of upstreams, shared by the proxy workers, swapped whole when
/// the file or a file it names changes ([`UpstreamTls::watch`]).
pub(crate) struct UpstreamTls {
    provider: Arc<CryptoProvider>,
    /// The TOML file, if any.
    path: Option<PathBuf>,
    current: ArcSwap<Hosts>,
    /// For hosts not listed: the system roots, read on first use.
    default: OnceLock<Arc<ClientConfig>>,
    /// When a failed handshake was last logged at `warn`.
    warned: Mutex<Option<Instant>>,
}

/// One validated set: `host:port` (lowercase, port spelled out) and its config.
type Hosts = Box<[(Box<str>, Arc<ClientConfig>)]>;

/// A failed handshake is logged at `warn` at most this often (the rest at `debug`): a
/// misconfigured upstream fails every request, and the log must stay readable.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl UpstreamTls {
    /// Reads the upstream TLS file, if any, with every file it names.
    pub fn load(path: Option<&Path>, provider: Arc<CryptoProvider>) -> Result<UpstreamTls, TlsError> {
        let hosts = match path {
            Some(path) => read(path, &provider)?,
            None => Hosts::default(),
        };
        Ok(UpstreamTls {
            provider,
            path: path.map(Path::to_owned),
            current: ArcSwap::from_pointee(hosts),
            default: OnceLock::new(),
            warned: Mutex::new(None),
        })
    }

    /// Checks the file and the files it names every `interval` until `stop` changes, and
    /// swaps in a changed set that is valid whole, as the served certificates do
    /// ([`super::termination`]); a set that fails is refused with a `warn` line and the
    /// previous one keeps serving. New connections use the new set; open ones finish with
    /// the one they began with.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        applied: Counter,
        refused: Counter,
        mut stop: watch::Receiver<bool>,
    ) {
        let Some(path) = self.path.clone() else { return };
        let mut seen = stamps(&path);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let now = stamps(&path);
            if now == seen {
                continue;
            }
            // Stamped before reading: a file that changes while it is read is read again.
            seen = now;
            match read(&path, &self.provider) {
                Ok(hosts) => {
                    let count = hosts.len();
                    self.current.store(Arc::new(hosts));
                    applied.increment(1);
                    tracing::info!(file = %path.display(), upstreams = count, "upstream TLS settings reloaded");
                }
                Err(error) => {
                    refused.increment(1);
                    tracing::warn!(%error, "new upstream TLS settings refused: the previous ones keep serving");
                }
            }
        }
    }

    fn config_for(&self, authority: &Authority) -> Result<Arc<ClientConfig>, TlsError> {
        let key = host_key(authority.as_str());
        if let Some((_, config)) = self.current.load().iter().find(|(host, _)| Some(host) == key.as_ref()) {
            return Ok(config.clone());
        }
        if let Some(config) = self.default.get() {
            return Ok(config.clone());
        }
        let config = client_config(&self.provider, pem::system_roots(), None, &[b"http/1.1"])?;
        Ok(self.default.get_or_init(|| config).clone())
    }

    /// Whether a failed handshake now deserves a `warn` line (one per [`WARN_EVERY`]).
    pub fn warn_now(&self) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if warned.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return false;
        }
        *warned = Some(Instant::now());
        true
    }

    /// The TLS handshake with the upstream at `authority` over `stream`, verified as its
    /// settings say. The error says why (an unknown issuer, a name mismatch, …).
    pub async fn connect(&self, authority: &Authority, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("`{host}` is not a TLS server name")))?;
        let config = self.config_for(authority).map_err(io::Error::other)?;
        TlsConnector::from(config).connect(name, stream).await
    }
}

/// Reads the TOML file and every file it names into a set, validated whole.
fn read(path: &Path, provider: &Arc<CryptoProvider>) -> Result<Hosts, TlsError> {
    configs(path, parse(path)?, provider)
}

fn parse(path: &Path) -> Result<File, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|e| TlsError::file(path, e))?;
    toml::from_str(&text).map_err(|e| TlsError::file(path, e.message()))
}

/// The TOML file and the files it names now (it is small: read at each check, so a file it
/// starts to name is watched at once).
fn stamps(path: &Path) -> Vec<Option<Stamp>> {
    let named: Vec<PathBuf> = parse(path)
        .map(|file| file.upstream.iter().flat_map(Entry::files).map(Path::to_owned).collect())
        .unwrap_or_default();
    std::iter::once(path).chain(named.iter().map(PathBuf::as_path)).map(stamp).collect()
}

impl Entry {
    fn files(&self) -> impl Iterator<Item = &Path> {
        [&self.ca, &self.client_cert, &self.client_key].into_iter().flatten().map(PathBuf::as_path)
    }
}

fn configs(path: &Path, file: File, provider: &Arc<CryptoProvider>) -> Result<Hosts, TlsError> {
    let mut hosts: Vec<(Box<str>, Arc<ClientConfig>)> = Vec::new();
    for entry in file.upstream {
        let key = host_key(&entry.host).ok_or_else(|| {
            TlsError::file(path, format!("`{}` is not a host such as billing.internal:8443", entry.host))
        })?;
        if hosts.iter().any(|(known, _)| *known == key) {
            return Err(TlsError::file(path, format!("`{}` is listed twice", entry.host)));
        }
        let roots = match &entry.ca {
            Some(ca) => pem::roots(ca)?,
            None => pem::system_roots(),
        };
        let client = match (&entry.client_cert, &entry.client_key) {
            (Some(cert), Some(key)) => {
                let (chain, private) = (pem::certificates(cert)?, pem::private_key(key)?);
                // A key that is not the certificate's fails every handshake: refused here.
                CertifiedKey::from_der(chain.clone(), private.clone_key(), provider)
                    .map_err(|e| TlsError::Invalid(format!("{} with {}: {e}", cert.display(), key.display())))?;
                Some((chain, private))
            }
            (None, None) => None,
            _ => {
                return Err(TlsError::file(path, format!("`{}`: client_cert and client_key go together", entry.host)));
            }
        };
        let config = client_config(provider, roots, client, &[b"http/1.1"])?;
        hosts.push((key, config));
    }
    Ok(hosts.into())
}

/// A client config verified against `roots`, presenting `client` if given.
pub(crate) fn client_config(
    provider: &Arc<CryptoProvider>,
    roots: rustls::RootCertStore,
    client: Option<(Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Invalid(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `host:port`, lowercase, with the https default port spelled out.
fn host_key(raw: &str) -> Option<Box<str>> {
    let authority: Authority = raw.parse().ok()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some(format!("{}:{}", authority.host().to_ascii_lowercase(), authority.port_u16().unwrap_or(443)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_with_their_port() {
        assert_eq!(host_key("Billing.Internal").as_deref(), Some("billing.internal:443"));
        assert_eq!(host_key("billing.internal:8443").as_deref(), Some("billing.internal:8443"));
        assert_eq!(host_key("[::1]:8443").as_deref(), Some("[::1]:8443"));
        assert_eq!(host_key("user@host"), None);
        assert_eq!(host_key("a b"), None);
    }
}
