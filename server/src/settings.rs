//! Settings from an optional TOML file, overridden by `TOLLGATE_*`
//! environment variables, validated once at startup. Every error names the
//! setting it is about. See docs/CONFIG.md.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use tollgate_core::accounts::MailLimits;
use tollgate_core::billing::payments::ProviderName;
use tollgate_core::identity::ProviderConfig;
use tollgate_core::usage::Granularity;
use tollgate_core::usage::retention::Retention;
use tollgate_web::TrustedProxies;

pub use crate::setting_error::SettingError;
use crate::trace::TraceExport;

fn setting_error(setting: &str, message: impl Into<String>) -> SettingError {
    SettingError { setting: setting.to_owned(), message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// A database URL whose Debug and Display never show the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    raw: String,
    options: PgConnectOptions,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<DatabaseUrl, SettingError> {
        if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
            return Err(setting_error(
                "TOLLGATE_DATABASE_URL",
                "must start with postgres:// (for example postgres://user@127.0.0.1:5432/tollgate)",
            ));
        }
        let options = PgConnectOptions::from_str(raw)
            .map_err(|e| setting_error("TOLLGATE_DATABASE_URL", format!("not a valid Postgres URL: {e}")))?;
        Ok(DatabaseUrl { raw: raw.to_owned(), options })
    }

    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// `host:port/database`, safe to print.
    pub fn redacted(&self) -> String {
        format!("{}:{}/{}", self.options.get_host(), self.options.get_port(), self.options.get_database().unwrap_or(""))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// The log filter when `TOLLGATE_LOG` is unset. Postgres notices (`relation … already exists,
/// skipping` from every `migrate`) are routine, so only their warnings show.
const DEFAULT_LOG: &str = "info,sqlx::postgres::notice=warn";

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<DatabaseUrl>,
    pub database_max_connections: u32,
    pub listen: SocketAddr,
    /// The URL people use to reach the server; decides Secure cookies.
    pub public_url: String,
    pub log: String,
    pub log_format: LogFormat,
    pub session_idle_minutes: u32,
    pub session_absolute_hours: u32,
    pub static_dir: PathBuf,
    pub password_hash_concurrency: u32,
    /// SMTP server for outgoing mail; secrets in it are never printed.
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    /// Development: write mail as .eml files here instead of sending it.
    pub mail_outbox_dir: Option<PathBuf>,
    /// OAuth2 / OpenID Connect providers offered on the sign-in page.
    pub oauth_providers: Vec<ProviderConfig>,
    /// Where API consumers reach the gateway, for docs, samples and try-it.
    pub gateway_url: String,
    /// How long a request's body may take to arrive, in seconds.
    pub body_timeout_seconds: u32,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Requests that mail an address someone typed, per client address and hour.
    pub mail_requests_per_client_hour: u32,
    /// After a mail to an address, seconds before another goes to it.
    pub mail_address_cooldown_seconds: u32,
    /// How many days usage is kept per resolution (unset: for ever).
    pub usage_retention: Retention,
    /// Who takes invoice payments: `manual` (admins record them) or `test`.
    pub payment_provider: ProviderName,
    /// Whether webhooks may go to private, loopback and link-local addresses.
    pub webhooks_allow_private: bool,
    /// OpenTelemetry trace export; `None`: off (docs/OBSERVABILITY.md).
    pub traces: Option<TraceExport>,
}

/// A setting that may hold a password; Debug never shows it.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    listen: Option<String>,
    public_url: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    session_idle_minutes: Option<u32>,
    session_absolute_hours: Option<u32>,
    static_dir: Option<String>,
    password_hash_concurrency: Option<u32>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    mail_outbox_dir: Option<String>,
    oauth_providers: Option<Vec<ProviderConfig>>,
    gateway_url: Option<String>,
    body_timeout_seconds: Option<u32>,
    trusted_proxies: Option<String>,
    mail_requests_per_client_hour: Option<u32>,
    mail_address_cooldown_seconds: Option<u32>,
    usage_minute_retention_days: Option<u32>,
    usage_hour_retention_days: Option<u32>,
    usage_day_retention_days: Option<u32>,
    usage_month_retention_days: Option<u32>,
    payment_provider: Option<String>,
    webhooks_allow_private: Option<bool>,
    otlp_endpoint: Option<String>,
}

/// The server's variables among `names` that are not in `asked`, sorted. `TOLLGATE_AGENT_*`
/// are the agent's; `tollgate dev` and the scripts read a few of their own.
fn unread(names: impl Iterator<Item = String>, asked: &std::collections::HashSet<String>) -> Vec<String> {
    const NOT_SETTINGS: [&str; 5] =
        ["TOLLGATE_DEV_DIR", "TOLLGATE_E2E", "TOLLGATE_SQLX_SCRATCH", "TOLLGATE_BIN", "TOLLGATE_RELEASES_DIR"];
    let mut unread: Vec<String> = names
        .filter(|name| {
            name.starts_with("TOLLGATE_")
                && !name.starts_with("TOLLGATE_AGENT_")
                && !NOT_SETTINGS.contains(&name.as_str())
                && !asked.contains(name)
        })
        .collect();
    unread.sort();
    unread
}

/// Where a value came from, for error messages.
struct Source<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: FileSettings,
    file_path: Option<PathBuf>,
}

impl Source<'_> {
    /// The env var wins over the file; the returned name is what to blame.
    fn get(&self, key: &str, from_file: Option<String>) -> Option<(String, String)> {
        let env_name = format!("TOLLGATE_{}", key.to_ascii_uppercase());
        if let Some(v) = (self.env)(&env_name).filter(|v| !v.is_empty()) {
            return Some((env_name, v));
        }
        let file = self.file_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        from_file.map(|v| (format!("{key} (in {file})"), v))
    }
}

/// A base URL links are built on (the portal's, the gateway's): http or https with a host,
/// and nothing a URL cannot hold (`https://exa mple.com`); without its trailing `/`.
fn base_url(name: &str, raw: &str) -> Result<String, SettingError> {
    let trimmed = raw.trim().trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&trimmed)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|host| !host.is_empty()));
    if parsed.is_none() || trimmed.contains(char::is_whitespace) {
        return Err(setting_error(
            name,
            format!("`{raw}` is not an http:// or https:// URL with a host, such as https://api.example.com"),
        ));
    }
    Ok(trimmed)
}

fn parse_number(name: &str, raw: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, SettingError> {
    let n: u32 = raw.trim().parse().map_err(|_| setting_error(name, format!("`{raw}` is not a whole number")))?;
    if !range.contains(&n) {
        return Err(setting_error(name, format!("{n} is out of range; use {} to {}", range.start(), range.end())));
    }
    Ok(n)
}

fn default_static_dir() -> PathBuf {
    let local = Path::new("static");
    if local.join("css").is_dir() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../static")
}

/// Where in the settings file `error` is, and what: the line, and the key written on it
/// (`session_idle_minutes = "20"` → `line 3 (session_idle_minutes)`), on one line.
fn file_error(path: &std::path::Path, text: &str, error: &toml::de::Error) -> String {
    let place = error.span().map(|span| {
        let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count());
        let key = text
            .lines()
            .nth(line)
            .and_then(|written| written.split_once('='))
            .map(|(key, _)| key.trim())
            .filter(|key| !key.is_empty() && !key.starts_with('['));
        match key {
            Some(key) => format!(" line {} ({key})", line + 1),
            None => format!(" line {}", line + 1),
        }
    });
    format!("{}{}: {}", path.display(), place.unwrap_or_default(), error.message().trim())
}

impl Settings {
    /// Reads the process environment and the file named by `TOLLGATE_CONFIG`; also names the
    /// server's `TOLLGATE_*` variables that are set but were not read (a typo such as
    /// `TOLLGATE_LISTN` would otherwise be ignored). The agent's `TOLLGATE_AGENT_*` are its own.
    pub fn load() -> Result<(Settings, Vec<String>), SettingError> {
        let asked = std::cell::RefCell::new(std::collections::HashSet::new());
        let settings = Settings::load_from(&|name| {
            asked.borrow_mut().insert(name.to_owned());
            std::env::var(name).ok()
        })?;
        let asked = asked.into_inner();
        let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        Ok((settings, unread(names, &asked)))
    }

    /// Reads settings through `env`, so tests need not touch the process environment.
    pub fn load_from(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let file_path = env("TOLLGATE_CONFIG").filter(|p| !p.is_empty()).map(PathBuf::from);
        let file = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| setting_error("TOLLGATE_CONFIG", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<FileSettings>(&text)
                    .map_err(|e| setting_error("TOLLGATE_CONFIG", file_error(path, &text, &e)))?
            }
            None => FileSettings::default(),
        };
        let src = Source { env, file, file_path };
        let f = &src.file;

        let database_url = match src.get("database_url", f.database_url.clone()) {
            Some((name, raw)) => Some(DatabaseUrl::parse(&raw).map_err(|e| SettingError { setting: name, ..e })?),
            None => None,
        };
        let database_max_connections =
            match src.get("database_max_connections", f.database_max_connections.map(|n| n.to_string())) {
                // One connection is held for change notifications (LISTEN); the rest serve.
                Some((name, raw)) => parse_number(&name, &raw, 2..=1000)?,
                None => 10,
            };
        let listen = match src.get("listen", f.listen.clone()) {
            Some((name, raw)) => raw
                .trim()
                .parse::<SocketAddr>()
                .map_err(|_| setting_error(&name, format!("`{raw}` is not an address such as 127.0.0.1:8080")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let public_url = match src.get("public_url", f.public_url.clone()) {
            Some((name, raw)) => base_url(&name, &raw)?,
            None => format!("http://{listen}"),
        };
        let log = match src.get("log", f.log.clone()) {
            Some((name, raw)) => {
                if tracing_subscriber::EnvFilter::try_new(&raw).is_err() {
                    return Err(setting_error(
                        &name,
                        format!("`{raw}` is not a log filter such as info or info,tollgate=debug"),
                    ));
                }
                raw
            }
            None => DEFAULT_LOG.to_owned(),
        };
        let log_format = match src.get("log_format", f.log_format.clone()) {
            Some((name, raw)) => match raw.trim() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => return Err(setting_error(&name, format!("`{raw}` is not a log format; use human or json"))),
            },
            None => LogFormat::Human,
        };
        let session_idle_minutes = match src.get("session_idle_minutes", f.session_idle_minutes.map(|n| n.to_string()))
        {
            Some((name, raw)) => parse_number(&name, &raw, 1..=24 * 60)?,
            None => 30,
        };
        let session_absolute_hours =
            match src.get("session_absolute_hours", f.session_absolute_hours.map(|n| n.to_string())) {
                Some((name, raw)) => parse_number(&name, &raw, 1..=24 * 30)?,
                None => 12,
            };
        let static_dir = match src.get("static_dir", f.static_dir.clone()) {
            Some((name, raw)) => {
                let dir = PathBuf::from(raw.trim());
                if !dir.is_dir() {
                    return Err(setting_error(&name, format!("{} is not a directory", dir.display())));
                }
                dir
            }
            None => default_static_dir(),
        };
        let password_hash_concurrency =
            match src.get("password_hash_concurrency", f.password_hash_concurrency.map(|n| n.to_string())) {
                Some((name, raw)) => parse_number(&name, &raw, 1..=64)?,
                None => 4,
            };
        let smtp_url = match src.get("smtp_url", f.smtp_url.clone()) {
            Some((name, raw)) => {
                let raw = raw.trim().to_owned();
                if !(raw.starts_with("smtp://") || raw.starts_with("smtps://")) {
                    return Err(setting_error(
                        &name,
                        "must start with smtp:// or smtps://, e.g. smtp://mail.example.com:587?tls=required",
                    ));
                }
                Some(SecretString(raw))
            }
            None => None,
        };
        let mail_from = src
            .get("mail_from", f.mail_from.clone())
            .map(|(_, v)| v)
            .unwrap_or_else(|| "Tollgate <no-reply@localhost>".to_owned());
        let mail_outbox_dir = src.get("mail_outbox_dir", f.mail_outbox_dir.clone()).map(|(_, v)| PathBuf::from(v));
        // Problems are named by where the providers came from: the variable, or the file's key.
        let (oauth_providers, providers_setting) =
            match (env("TOLLGATE_OAUTH_PROVIDERS").filter(|v| !v.is_empty()), f.oauth_providers.clone()) {
                (Some(json), _) => (
                    serde_json::from_str::<Vec<ProviderConfig>>(&json).map_err(|e| {
                        setting_error("TOLLGATE_OAUTH_PROVIDERS", format!("not a JSON array of providers: {e}"))
                    })?,
                    "TOLLGATE_OAUTH_PROVIDERS",
                ),
                (None, Some(list)) => (list, "oauth_providers"),
                (None, None) => (Vec::new(), "oauth_providers"),
            };
        for provider in &oauth_providers {
            provider.validate().map_err(|message| setting_error(providers_setting, message))?;
        }
        let gateway_url = match src.get("gateway_url", f.gateway_url.clone()) {
            Some((name, raw)) => base_url(&name, &raw)?,
            None => "http://127.0.0.1:8081".to_owned(),
        };
        let body_timeout_seconds = match src.get("body_timeout_seconds", f.body_timeout_seconds.map(|n| n.to_string()))
        {
            Some((name, raw)) => parse_number(&name, &raw, 1..=3600)?,
            None => 30,
        };
        let trusted_proxies = match src.get("trusted_proxies", f.trusted_proxies.clone()) {
            Some((name, raw)) => TrustedProxies::parse(&raw).map_err(|message| setting_error(&name, message))?,
            None => TrustedProxies::default(),
        };
        let mail_requests_per_client_hour =
            match src.get("mail_requests_per_client_hour", f.mail_requests_per_client_hour.map(|n| n.to_string())) {
                Some((name, raw)) => parse_number(&name, &raw, 1..=1_000_000)?,
                None => 20,
            };
        let mail_address_cooldown_seconds =
            match src.get("mail_address_cooldown_seconds", f.mail_address_cooldown_seconds.map(|n| n.to_string())) {
                Some((name, raw)) => parse_number(&name, &raw, 0..=86_400)?,
                None => 120,
            };
        let retention_days = |key: &str, from_file: Option<u32>, granularity: Granularity, default: Option<u32>| {
            match src.get(key, from_file.map(|n| n.to_string())) {
                // Unset keeps the resolution for ever; so does an empty file value.
                Some((name, raw)) => {
                    parse_number(&name, &raw, Retention::minimum_days(granularity)..=365_000).map(Some)
                }
                None => Ok(default),
            }
        };
        let defaults = Retention::default();
        let usage_retention = Retention {
            minute_days: retention_days(
                "usage_minute_retention_days",
                f.usage_minute_retention_days,
                Granularity::Minute,
                defaults.minute_days,
            )?,
            hour_days: retention_days(
                "usage_hour_retention_days",
                f.usage_hour_retention_days,
                Granularity::Hour,
                defaults.hour_days,
            )?,
            day_days: retention_days("usage_day_retention_days", f.usage_day_retention_days, Granularity::Day, None)?,
            month_days: retention_days(
                "usage_month_retention_days",
                f.usage_month_retention_days,
                Granularity::Month,
                None,
            )?,
        };
        let payment_provider = match src.get("payment_provider", f.payment_provider.clone()) {
            Some((name, raw)) => raw
                .trim()
                .parse::<ProviderName>()
                .map_err(|e| setting_error(&name, format!("`{raw}` is not a payment provider; {e}")))?,
            None => ProviderName::Manual,
        };
        let webhooks_allow_private =
            match src.get("webhooks_allow_private", f.webhooks_allow_private.map(|b| b.to_string())) {
                Some((name, raw)) => match raw.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(setting_error(&name, format!("`{raw}` is not true or false"))),
                },
                None => false,
            };
        let traces = TraceExport::load(env, src.get("otlp_endpoint", f.otlp_endpoint.clone()))?;
        Ok(Settings {
            database_url,
            database_max_connections,
            listen,
            public_url,
            log,
            log_format,
            session_idle_minutes,
            session_absolute_hours,
            static_dir,
            password_hash_concurrency,
            smtp_url,
            mail_from,
            mail_outbox_dir,
            oauth_providers,
            gateway_url,
            body_timeout_seconds,
            trusted_proxies,
            mail_requests_per_client_hour,
            mail_address_cooldown_seconds,
            usage_retention,
            payment_provider,
            webhooks_allow_private,
            traces,
        })
    }

    /// The mail throttles' settings.
    pub fn mail_limits(&self) -> MailLimits {
        MailLimits {
            per_client_per_hour: self.mail_requests_per_client_hour,
            address_cooldown: std::time::Duration::from_secs(u64::from(self.mail_address_cooldown_seconds)),
        }
    }

    /// The database URL, required by every command that touches data.
    pub fn require_database(&self) -> Result<&DatabaseUrl, SettingError> {
        self.database_url.as_ref().ok_or_else(|| {
            setting_error(
                "TOLLGATE_DATABASE_URL",
                "not set; point it at Postgres, or run `tollgate dev` for a private database",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::load_from(&move |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let s = load(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert!(s.database_url.is_none());
        assert_eq!(s.payment_provider, ProviderName::Manual);
        assert!(!s.webhooks_allow_private, "private webhook targets are refused by default");
        assert!(load(&[("TOLLGATE_WEBHOOKS_ALLOW_PRIVATE", "true")]).unwrap().webhooks_allow_private);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = load(&[("TOLLGATE_LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_LISTEN");
        let err = load(&[("TOLLGATE_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_DATABASE_URL");
        let err = load(&[("TOLLGATE_DATABASE_URL", "postgres://a:b@host:notaport/db")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_DATABASE_URL");
        let err = load(&[("TOLLGATE_LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_LOG_FORMAT");
        let err = load(&[("TOLLGATE_PAYMENT_PROVIDER", "stripe")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_PAYMENT_PROVIDER");
        assert!(err.message.contains("manual or test"), "{err}");
        let err = load(&[("TOLLGATE_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_TRUSTED_PROXIES");
        assert!(err.message.contains("proxy.internal"), "{err}");
        let err = load(&[("TOLLGATE_WEBHOOKS_ALLOW_PRIVATE", "yes")]).unwrap_err();
        assert_eq!(err.setting, "TOLLGATE_WEBHOOKS_ALLOW_PRIVATE");
    }

    #[test]
    fn database_url_never_prints_its_password() {
        let s = load(&[("TOLLGATE_DATABASE_URL", "postgres://app:s3cret@db.internal:5433/tg")]).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("db.internal:5433/tg"), "{printed}");
    }

    #[test]
    fn a_misspelt_variable_is_named_as_unread() {
        let asked: std::collections::HashSet<String> = ["TOLLGATE_LISTEN".to_owned()].into();
        let names = ["TOLLGATE_LISTN", "TOLLGATE_LISTEN", "TOLLGATE_AGENT_LISTEN", "TOLLGATE_E2E", "HOME"];
        assert_eq!(unread(names.iter().map(|n| (*n).to_owned()), &asked), ["TOLLGATE_LISTN"]);
    }

    #[test]
    fn env_overrides_file_and_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("tollgate-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tollgate.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\n").unwrap();
        let path = file.to_str().unwrap();
        let s = load(&[("TOLLGATE_CONFIG", path), ("TOLLGATE_LISTEN", "127.0.0.1:9100")]).unwrap();
        assert_eq!(s.listen.port(), 9100);
        assert_eq!(s.log_format, LogFormat::Json);
        std::fs::write(&file, "listen = \"bad\"\n").unwrap();
        let err = load(&[("TOLLGATE_CONFIG", path)]).unwrap_err();
        assert!(err.setting.starts_with("listen (in "), "{err}");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let err = load(&[("TOLLGATE_CONFIG", path)]).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        // A value of the wrong type names its line and key, on one line.
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n\nsession_idle_minutes = \"20\"\n").unwrap();
        let err = load(&[("TOLLGATE_CONFIG", path)]).unwrap_err().to_string();
        assert!(err.contains("line 3 (session_idle_minutes): invalid type: string \"20\""), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
