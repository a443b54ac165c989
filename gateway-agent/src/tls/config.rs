//! The agent's TLS settings, read with the others (docs/AGENT.md#tls). Files are only named
//! here; they are read, and refused with their path in the message, when the agent starts.

use std::path::PathBuf;
use std::time::Duration;

/// A certificate chain and its private key, both PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything TLS the agent is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificates the proxy listener serves; empty: plain HTTP. Each handshake gets the
    /// first whose certificate is valid for the name the client asked for (SNI), else the
    /// first (`TOLLGATE_AGENT_TLS_CERT` + `_KEY`, then `TOLLGATE_AGENT_TLS_CERTS`).
    pub certificates: Vec<CertKeyPair>,
    /// How often the certificate files are checked for changes
    /// (`TOLLGATE_AGENT_TLS_RELOAD_INTERVAL_MS`).
    pub reload_interval: Duration,
    /// Roots for an `https://` management server instead of the system's
    /// (`TOLLGATE_AGENT_SERVER_CA`).
    pub server_ca: Option<PathBuf>,
    /// Per-upstream-host CA and client certificate, a TOML file (`TOLLGATE_AGENT_UPSTREAM_TLS`).
    pub upstream: Option<PathBuf>,
    /// Roots for a `rediss://` Redis instead of the system's (`TOLLGATE_AGENT_REDIS_CA`).
    pub redis_ca: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> TlsSettings {
        TlsSettings {
            certificates: Vec::new(),
            reload_interval: TlsSettings::DEFAULT_RELOAD_INTERVAL,
            server_ca: None,
            upstream: None,
            redis_ca: None,
        }
    }
}

impl TlsSettings {
    pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

    /// Reads the settings through `get` (unset and empty are alike); an error names the
    /// setting and says what is wrong.
    pub(crate) fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<TlsSettings, (&'static str, String)> {
        let mut settings = TlsSettings::default();
        match (get("TOLLGATE_AGENT_TLS_CERT"), get("TOLLGATE_AGENT_TLS_KEY")) {
            (Some(cert), Some(key)) => settings.certificates.push(CertKeyPair { cert: cert.into(), key: key.into() }),
            (None, None) => {}
            (Some(_), None) => return Err(("TOLLGATE_AGENT_TLS_KEY", "required with TOLLGATE_AGENT_TLS_CERT".into())),
            (None, Some(_)) => return Err(("TOLLGATE_AGENT_TLS_CERT", "required with TOLLGATE_AGENT_TLS_KEY".into())),
        }
        if let Some(list) = get("TOLLGATE_AGENT_TLS_CERTS") {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let pair = entry.split_once(':').filter(|(cert, key)| !cert.is_empty() && !key.is_empty());
                let Some((cert, key)) = pair else {
                    return Err((
                        "TOLLGATE_AGENT_TLS_CERTS",
                        format!("`{entry}` is not a pair such as /etc/tollgate/a.pem:/etc/tollgate/a.key"),
                    ));
                };
                settings.certificates.push(CertKeyPair { cert: cert.into(), key: key.into() });
            }
        }
        if let Some(v) = get("TOLLGATE_AGENT_TLS_RELOAD_INTERVAL_MS") {
            settings.reload_interval =
                v.parse::<u64>().ok().filter(|ms| (100..=3_600_000).contains(ms)).map(Duration::from_millis).ok_or(
                    ("TOLLGATE_AGENT_TLS_RELOAD_INTERVAL_MS", format!("`{v}` is not a number from 100 to 3600000")),
                )?;
        }
        settings.server_ca = get("TOLLGATE_AGENT_SERVER_CA").map(PathBuf::from);
        settings.upstream = get("TOLLGATE_AGENT_UPSTREAM_TLS").map(PathBuf::from);
        settings.redis_ca = get("TOLLGATE_AGENT_REDIS_CA").map(PathBuf::from);
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<TlsSettings, (&'static str, String)> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        TlsSettings::from_vars(|name| map.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn pairs_come_in_order_the_single_pair_first() {
        let s = parse(&[
            ("TOLLGATE_AGENT_TLS_CERTS", "b.pem:b.key, c.pem:c.key,"),
            ("TOLLGATE_AGENT_TLS_CERT", "a.pem"),
            ("TOLLGATE_AGENT_TLS_KEY", "a.key"),
        ])
        .expect("valid");
        let certs: Vec<_> = s.certificates.iter().map(|p| (p.cert.to_str(), p.key.to_str())).collect();
        assert_eq!(
            certs,
            [(Some("a.pem"), Some("a.key")), (Some("b.pem"), Some("b.key")), (Some("c.pem"), Some("c.key"))]
        );
        assert_eq!(parse(&[]).expect("valid"), TlsSettings::default());
    }

    #[test]
    fn errors_name_the_setting() {
        let err = |vars: &[(&str, &str)]| parse(vars).expect_err("invalid").0;
        assert_eq!(err(&[("TOLLGATE_AGENT_TLS_CERT", "a.pem")]), "TOLLGATE_AGENT_TLS_KEY");
        assert_eq!(err(&[("TOLLGATE_AGENT_TLS_KEY", "a.key")]), "TOLLGATE_AGENT_TLS_CERT");
        assert_eq!(err(&[("TOLLGATE_AGENT_TLS_CERTS", "a.pem")]), "TOLLGATE_AGENT_TLS_CERTS");
        assert_eq!(err(&[("TOLLGATE_AGENT_TLS_CERTS", "a.pem:")]), "TOLLGATE_AGENT_TLS_CERTS");
        assert_eq!(err(&[("TOLLGATE_AGENT_TLS_RELOAD_INTERVAL_MS", "5")]), "TOLLGATE_AGENT_TLS_RELOAD_INTERVAL_MS");
    }
}
