//! Settings from `TOLLGATE_AGENT_*` environment variables, validated once at startup.
//! Every error names the setting it is about; the binary exits 2 on one. See docs/AGENT.md.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::Uri;
use hyper::header::HeaderValue;

use crate::clock::Clock;
use crate::tls::config::TlsSettings;
use crate::trace::TraceExport;

/// A problem with one setting, phrased for the operator. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingsError {
    pub setting: &'static str,
    pub message: String,
}

fn invalid(setting: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError { setting, message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The management server's base URL: `http[s]://host[:port][/prefix]`, kept without a
/// trailing slash so endpoint paths can be appended.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: String,
}

impl ServerUrl {
    pub fn parse(raw: &str) -> Result<ServerUrl, String> {
        let uri: Uri = raw.parse().map_err(|_| format!("`{raw}` is not a URL such as http://127.0.0.1:8080"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(format!("`{raw}` is not an http:// or https:// URL")),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(format!("`{raw}` has no host"));
        }
        if uri.query().is_some() {
            return Err(format!("`{raw}` must not have a query string"));
        }
        // The agent authenticates with its token; a password in the URL would only be logged.
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(
                "the URL must not carry a user name or password; the agent's token is TOLLGATE_AGENT_TOKEN".to_owned()
            );
        }
        Ok(ServerUrl { base: raw.trim_end_matches('/').to_owned() })
    }

    /// The URI of an endpoint path such as `/agent/v1/status` (with optional query).
    pub fn endpoint(&self, path_and_query: &str) -> Result<Uri, hyper::http::uri::InvalidUri> {
        format!("{}{path_and_query}", self.base).parse()
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }

    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({})", self.base)
    }
}

/// The agent's bearer token. `Debug` is redacted and there is no `Display`, so it cannot
/// end up in a log line by accident.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    fn parse(raw: &str) -> Result<Token, String> {
        if raw.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err("contains spaces or control characters".to_owned());
        }
        Ok(Token(raw.to_owned()))
    }

    /// `Bearer <token>`, marked sensitive so HTTP tooling does not print it.
    pub(crate) fn authorization(&self) -> Option<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(redacted)")
    }
}

/// A `redis://` or `rediss://` (TLS) URL. Its `Display` hides any password.
#[derive(Clone)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn parse(raw: &str) -> Result<RedisUrl, String> {
        if !raw.starts_with("redis://") && !raw.starts_with("rediss://") {
            return Err("must start with redis:// or rediss:// (TLS)".to_owned());
        }
        ::redis::Client::open(raw).map_err(|e| format!("not a valid Redis URL ({e})"))?;
        Ok(RedisUrl(raw.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_tls(&self) -> bool {
        self.0.starts_with("rediss://")
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("redis", &self.0));
        match rest.rsplit_once('@') {
            Some((_, host)) => write!(f, "{scheme}://***@{host}"),
            None => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// Browser origins allowed to call the proxy cross-origin (CORS), as exact
/// `scheme://host[:port]` values. Parsed once at startup into header values the request path
/// compares byte-wise with a request's `Origin`. Empty (the default) turns CORS off.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins(Box<[HeaderValue]>);

impl CorsOrigins {
    /// A comma-separated list of origins such as `http://127.0.0.1:8080,https://portal.example.com`.
    /// Scheme and host are lowercased and a default port (`:80` for http, `:443` for https)
    /// dropped, as browsers write them in `Origin`. `*` is refused: origins must be listed.
    pub fn parse(raw: &str) -> Result<CorsOrigins, String> {
        let mut origins: Vec<HeaderValue> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = origin(entry)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(CorsOrigins(origins.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The listed origins, normalised.
    pub fn as_slice(&self) -> &[HeaderValue] {
        &self.0
    }

    /// The listed origin equal to `origin`, byte for byte.
    pub(crate) fn find(&self, origin: &HeaderValue) -> Option<&HeaderValue> {
        self.0.iter().find(|o| o.as_bytes() == origin.as_bytes())
    }
}

impl fmt::Debug for CorsOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|o| o.to_str().unwrap_or("?"))).finish()
    }
}

/// One origin, normalised to what a browser sends in `Origin`.
fn origin(entry: &str) -> Result<HeaderValue, String> {
    let example = "an origin such as http://127.0.0.1:8080 (scheme://host[:port], no path)";
    if entry == "*" {
        return Err("`*` is not allowed: list each origin, such as http://127.0.0.1:8080".to_owned());
    }
    let not_an_origin = || format!("`{entry}` is not {example}");
    let uri: Uri = entry.parse().map_err(|_| not_an_origin())?;
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => "http",
        Some("https") => "https",
        _ => return Err(not_an_origin()),
    };
    let authority = uri.authority().ok_or_else(not_an_origin)?;
    // Nothing but `scheme://authority`: no path (not even `/`), query or user.
    let bare = entry.split_once("://").is_some_and(|(_, rest)| rest == authority.as_str());
    if !bare || authority.as_str().contains('@') {
        return Err(not_an_origin());
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return Err(not_an_origin());
    }
    let port = match (scheme, authority.port_u16()) {
        (_, None) | ("http", Some(80)) | ("https", Some(443)) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    HeaderValue::try_from(format!("{scheme}://{host}{port}")).map_err(|_| not_an_origin())
}

/// A path prefix such as `/authz`: starts with `/`, does not end with one, and holds only
/// path characters (no query, no `%`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzPathPrefix(String);

impl AuthzPathPrefix {
    pub fn parse(raw: &str) -> Result<AuthzPathPrefix, String> {
        let plain = raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'));
        if !raw.starts_with('/') || raw.ends_with('/') || !plain || raw.contains("//") {
            return Err(format!(
                "`{raw}` is not a path prefix such as /authz (starts with `/`, no trailing `/`, letters, digits and -_.~ only)"
            ));
        }
        Ok(AuthzPathPrefix(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The access log's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogMode {
    Off,
    /// A tracing event per request, in the agent's own log.
    On,
    /// A JSON object per request, one a line, for log shippers.
    Json,
}

/// Everything the agent is configured with. Build it with [`Settings::from_env`] in the
/// binary, or [`Settings::new`] plus field assignments in tests.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Management server base URL (`TOLLGATE_AGENT_SERVER`).
    pub server: ServerUrl,
    /// Bearer token for the management server (`TOLLGATE_AGENT_TOKEN`).
    pub token: Token,
    /// Proxy listener (`TOLLGATE_AGENT_LISTEN`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// `/healthz`, `/ready`, `/metrics` (`TOLLGATE_AGENT_ADMIN_LISTEN`).
    pub admin_listen: SocketAddr,
    /// The decision endpoint for nginx `auth_request`, Traefik `forwardAuth`, APISIX
    /// `forward-auth` and Envoy's HTTP `ext_authz` (`TOLLGATE_AGENT_AUTHZ_LISTEN`); `None`: off.
    pub authz_listen: Option<SocketAddr>,
    /// What an Envoy `ext_authz` filter puts before the original path (its `path_prefix`),
    /// stripped by the decision endpoint (`TOLLGATE_AGENT_AUTHZ_PATH_PREFIX`).
    pub authz_path_prefix: Option<AuthzPathPrefix>,
    /// Envoy's gRPC `ext_authz` (`Authorization/Check`) and access-log service
    /// (`TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN`); `None`: off.
    pub authz_grpc_listen: Option<SocketAddr>,
    /// Allowed decisions wait for the proxy's report of the response code before their usage
    /// is counted (`TOLLGATE_AGENT_AUTHZ_REPORTS=on`; default off).
    pub authz_reports: bool,
    /// Reports as UDP datagrams, e.g. nginx's syslog access log
    /// (`TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN`); `None`: off.
    pub authz_report_listen: Option<SocketAddr>,
    /// Last good config, agent id and usage spool (`TOLLGATE_AGENT_STATE_DIR`).
    pub state_dir: PathBuf,
    /// Shared counters for cluster-exact limits (`TOLLGATE_AGENT_REDIS_URL`).
    pub redis_url: Option<RedisUrl>,
    /// How often usage is sealed into a batch and sent (`TOLLGATE_AGENT_FLUSH_INTERVAL_MS`).
    pub flush_interval: Duration,
    pub upstream_connect_timeout: Duration,
    /// Until the upstream's response head (`TOLLGATE_AGENT_UPSTREAM_TIMEOUT_MS`).
    pub upstream_timeout: Duration,
    /// An upgraded connection (WebSocket) with no bytes either way for this long is closed
    /// (`TOLLGATE_AGENT_UPGRADE_IDLE_TIMEOUT_MS`).
    pub upgrade_idle_timeout: Duration,
    /// The access log (`TOLLGATE_AGENT_ACCESS_LOG`).
    pub access_log: AccessLogMode,
    /// Where the JSON access log goes (`TOLLGATE_AGENT_ACCESS_LOG_PATH`); `None`: stdout.
    pub access_log_path: Option<PathBuf>,
    /// tracing filter (`TOLLGATE_AGENT_LOG`), used by the binary.
    pub log: String,
    pub log_format: LogFormat,
    /// Beyond this the spool stops taking new batches (`TOLLGATE_AGENT_SPOOL_MAX_BYTES`).
    pub spool_max_bytes: u64,
    /// Browser origins allowed to call the proxy (`TOLLGATE_AGENT_CORS_ORIGINS`); empty: CORS off.
    pub cors_origins: CorsOrigins,
    /// Largest request line plus headers the proxy accepts, in bytes; beyond, 431
    /// (`TOLLGATE_AGENT_MAX_HEADER_BYTES`).
    pub max_header_bytes: usize,
    /// Open client connections the proxy accepts at most; beyond, 503
    /// (`TOLLGATE_AGENT_MAX_CONNECTIONS`). `None`: the default, lowered at start to what the
    /// process's open-files limit allows (see `agent::connection_limit`).
    pub max_connections: Option<usize>,
    /// A client connection is closed when it takes longer than this to send a request head
    /// (HTTP/1.1, a new connection or between requests) or has had no open stream for this
    /// long (HTTP/2) (`TOLLGATE_AGENT_CLIENT_IDLE_TIMEOUT_MS`).
    pub client_idle_timeout: Duration,
    /// Proxy worker threads, each a single-threaded runtime with its own listener socket
    /// (`SO_REUSEPORT`) and upstream connections (`TOLLGATE_AGENT_WORKERS`; default: the
    /// number of available cores).
    pub workers: usize,
    /// OpenTelemetry trace export (`OTEL_EXPORTER_OTLP_ENDPOINT` and friends); `None`: off.
    pub traces: Option<TraceExport>,
    /// Source of "now" for windows, expiry and usage minutes. Not settable from the
    /// environment: tests inject a [`crate::ManualClock`].
    pub clock: Clock,
    /// Certificates to serve, and the roots and client certificates of the agent's own
    /// connections (`TOLLGATE_AGENT_TLS_*`, `_SERVER_CA`, `_UPSTREAM_TLS`, `_REDIS_CA`).
    pub tls: TlsSettings,
}

impl Settings {
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
    pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9081";
    pub const DEFAULT_STATE_DIR: &str = "./tollgate-agent-state";
    pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

    /// Defaults for everything but the server, token and state directory.
    pub fn new(server: ServerUrl, token: Token, state_dir: PathBuf) -> Settings {
        Settings {
            server,
            token,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9081)),
            authz_listen: None,
            authz_path_prefix: None,
            authz_grpc_listen: None,
            authz_reports: false,
            authz_report_listen: None,
            state_dir,
            redis_url: None,
            flush_interval: Duration::from_millis(1000),
            upstream_connect_timeout: Duration::from_millis(2000),
            upstream_timeout: Duration::from_millis(30_000),
            upgrade_idle_timeout: Duration::from_millis(300_000),
            access_log: AccessLogMode::Off,
            access_log_path: None,
            log: "info".to_owned(),
            log_format: LogFormat::Human,
            spool_max_bytes: Self::DEFAULT_SPOOL_MAX_BYTES,
            cors_origins: CorsOrigins::default(),
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_connections: None,
            client_idle_timeout: Self::DEFAULT_CLIENT_IDLE_TIMEOUT,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            traces: None,
            clock: Clock::system(),
            tls: TlsSettings::default(),
        }
    }

    /// Reads the process environment, and names the `TOLLGATE_AGENT_*` variables that are set
    /// but were not read (a typo such as `TOLLGATE_AGENT_LISTN` would otherwise be ignored).
    pub fn from_env() -> Result<(Settings, Vec<String>), SettingsError> {
        let asked = std::cell::RefCell::new(std::collections::HashSet::new());
        let settings = Settings::from_vars(|name| {
            asked.borrow_mut().insert(name.to_owned());
            std::env::var(name).ok()
        })?;
        let asked = asked.into_inner();
        let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        Ok((settings, unread(names, &asked)))
    }

    /// Reads settings through `var`; empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());

        let server = get("TOLLGATE_AGENT_SERVER").ok_or_else(|| {
            invalid("TOLLGATE_AGENT_SERVER", "required: the management server URL, e.g. http://127.0.0.1:8080")
        })?;
        let server = ServerUrl::parse(&server).map_err(|m| invalid("TOLLGATE_AGENT_SERVER", m))?;
        let token = get("TOLLGATE_AGENT_TOKEN").ok_or_else(|| {
            invalid("TOLLGATE_AGENT_TOKEN", "required: the agent token shown when the gateway was registered")
        })?;
        let token = Token::parse(&token).map_err(|m| invalid("TOLLGATE_AGENT_TOKEN", m))?;
        let state_dir = get("TOLLGATE_AGENT_STATE_DIR").unwrap_or_else(|| Self::DEFAULT_STATE_DIR.to_owned());
        let mut settings = Settings::new(server, token, PathBuf::from(state_dir));

        if let Some(v) = get("TOLLGATE_AGENT_LISTEN") {
            settings.listen = address("TOLLGATE_AGENT_LISTEN", &v)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_ADMIN_LISTEN") {
            settings.admin_listen = address("TOLLGATE_AGENT_ADMIN_LISTEN", &v)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_AUTHZ_LISTEN") {
            settings.authz_listen = Some(address("TOLLGATE_AGENT_AUTHZ_LISTEN", &v)?);
        }
        if let Some(v) = get("TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN") {
            settings.authz_grpc_listen = Some(address("TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN", &v)?);
        }
        if let Some(v) = get("TOLLGATE_AGENT_AUTHZ_REPORTS") {
            settings.authz_reports = match v.as_str() {
                "on" => true,
                "off" => false,
                other => return Err(invalid("TOLLGATE_AGENT_AUTHZ_REPORTS", format!("`{other}` is not on or off"))),
            };
        }
        if let Some(v) = get("TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN") {
            if !settings.authz_reports {
                return Err(invalid(
                    "TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN",
                    "reports are counted only with TOLLGATE_AGENT_AUTHZ_REPORTS=on",
                ));
            }
            settings.authz_report_listen = Some(address("TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN", &v)?);
        }
        if let Some(v) = get("TOLLGATE_AGENT_AUTHZ_PATH_PREFIX") {
            settings.authz_path_prefix =
                Some(AuthzPathPrefix::parse(&v).map_err(|m| invalid("TOLLGATE_AGENT_AUTHZ_PATH_PREFIX", m))?);
        }
        if let Some(v) = get("TOLLGATE_AGENT_REDIS_URL") {
            settings.redis_url = Some(RedisUrl::parse(&v).map_err(|m| invalid("TOLLGATE_AGENT_REDIS_URL", m))?);
        }
        if let Some(v) = get("TOLLGATE_AGENT_FLUSH_INTERVAL_MS") {
            settings.flush_interval = millis("TOLLGATE_AGENT_FLUSH_INTERVAL_MS", &v, 10, 3_600_000)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_UPSTREAM_CONNECT_TIMEOUT_MS") {
            settings.upstream_connect_timeout = millis("TOLLGATE_AGENT_UPSTREAM_CONNECT_TIMEOUT_MS", &v, 1, 600_000)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_UPSTREAM_TIMEOUT_MS") {
            settings.upstream_timeout = millis("TOLLGATE_AGENT_UPSTREAM_TIMEOUT_MS", &v, 1, 3_600_000)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_CLIENT_IDLE_TIMEOUT_MS") {
            settings.client_idle_timeout = millis("TOLLGATE_AGENT_CLIENT_IDLE_TIMEOUT_MS", &v, 100, 3_600_000)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_UPGRADE_IDLE_TIMEOUT_MS") {
            settings.upgrade_idle_timeout = millis("TOLLGATE_AGENT_UPGRADE_IDLE_TIMEOUT_MS", &v, 1, 86_400_000)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_ACCESS_LOG") {
            settings.access_log = match v.as_str() {
                "on" => AccessLogMode::On,
                "json" => AccessLogMode::Json,
                "off" => AccessLogMode::Off,
                _ => {
                    return Err(invalid("TOLLGATE_AGENT_ACCESS_LOG", format!("`{v}` is not on, json or off")));
                }
            };
        }
        if let Some(v) = get("TOLLGATE_AGENT_ACCESS_LOG_PATH") {
            // The path is the JSON log's: it turns the JSON log on, and with another mode it
            // would be silently unused.
            match get("TOLLGATE_AGENT_ACCESS_LOG").as_deref() {
                None => settings.access_log = AccessLogMode::Json,
                Some("json") => {}
                Some(mode) => {
                    return Err(invalid(
                        "TOLLGATE_AGENT_ACCESS_LOG_PATH",
                        format!(
                            "names the JSON access log's file, but TOLLGATE_AGENT_ACCESS_LOG is `{mode}`; set it to \
                             json, or unset the path"
                        ),
                    ));
                }
            }
            settings.access_log_path = Some(PathBuf::from(v));
        }
        if let Some(v) = get("TOLLGATE_AGENT_LOG") {
            if tracing_subscriber::EnvFilter::try_new(&v).is_err() {
                return Err(invalid(
                    "TOLLGATE_AGENT_LOG",
                    format!("`{v}` is not a log filter such as info or info,tollgate_agent=debug"),
                ));
            }
            settings.log = v;
        }
        if let Some(v) = get("TOLLGATE_AGENT_LOG_FORMAT") {
            settings.log_format = match v.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => {
                    return Err(invalid("TOLLGATE_AGENT_LOG_FORMAT", format!("`{v}` is not human or json")));
                }
            };
        }
        if let Some(v) = get("TOLLGATE_AGENT_SPOOL_MAX_BYTES") {
            settings.spool_max_bytes = bytes("TOLLGATE_AGENT_SPOOL_MAX_BYTES", &v)?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_MAX_HEADER_BYTES") {
            let limit = bytes("TOLLGATE_AGENT_MAX_HEADER_BYTES", &v)?;
            settings.max_header_bytes = usize::try_from(limit)
                .ok()
                .filter(|&n| n <= 1 << 20)
                .ok_or_else(|| invalid("TOLLGATE_AGENT_MAX_HEADER_BYTES", format!("`{v}` is more than 1MiB")))?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_MAX_CONNECTIONS") {
            let limit = v.parse().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(|| {
                invalid("TOLLGATE_AGENT_MAX_CONNECTIONS", format!("`{v}` is not a number from 1 to 1000000"))
            })?;
            settings.max_connections = Some(limit);
        }
        if let Some(v) = get("TOLLGATE_AGENT_WORKERS") {
            settings.workers =
                v.parse().ok().filter(|n| (1..=1024).contains(n)).ok_or_else(|| {
                    invalid("TOLLGATE_AGENT_WORKERS", format!("`{v}` is not a number from 1 to 1024"))
                })?;
        }
        if let Some(v) = get("TOLLGATE_AGENT_CORS_ORIGINS") {
            settings.cors_origins = CorsOrigins::parse(&v).map_err(|m| invalid("TOLLGATE_AGENT_CORS_ORIGINS", m))?;
        }
        settings.traces = TraceExport::from_vars(get)?;
        settings.tls = TlsSettings::from_vars(get).map_err(|(setting, message)| invalid(setting, message))?;
        if settings.tls.redis_ca.is_some() && !settings.redis_url.as_ref().is_some_and(RedisUrl::is_tls) {
            return Err(invalid("TOLLGATE_AGENT_REDIS_CA", "needs a rediss:// TOLLGATE_AGENT_REDIS_URL"));
        }
        Ok(settings)
    }
}

fn address(setting: &'static str, value: &str) -> Result<SocketAddr, SettingsError> {
    value.parse().map_err(|_| invalid(setting, format!("`{value}` is not an address such as 127.0.0.1:8081")))
}

fn millis(setting: &'static str, value: &str, min: u64, max: u64) -> Result<Duration, SettingsError> {
    match value.parse::<u64>() {
        Ok(ms) if (min..=max).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(invalid(setting, format!("`{value}` is not a number of milliseconds from {min} to {max}"))),
    }
}

/// Bytes, optionally with a KiB/MiB/GiB suffix.
fn bytes(setting: &'static str, value: &str) -> Result<u64, SettingsError> {
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, ""),
    };
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => 0,
    };
    number.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)).filter(|&n| n >= 4096).ok_or_else(|| {
        invalid(setting, format!("`{value}` is not a size of at least 4096 bytes, such as 268435456 or 256MiB"))
    })
}

/// The agent's variables among `names` that are not in `asked`, sorted.
fn unread(names: impl Iterator<Item = String>, asked: &std::collections::HashSet<String>) -> Vec<String> {
    let mut unread: Vec<String> =
        names.filter(|name| name.starts_with("TOLLGATE_AGENT_") && !asked.contains(name)).collect();
    unread.sort();
    unread
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut map: HashMap<String, String> = HashMap::new();
        map.insert("TOLLGATE_AGENT_SERVER".into(), "http://127.0.0.1:8080/".into());
        map.insert("TOLLGATE_AGENT_TOKEN".into(), "tg_agt_secret".into());
        for (k, v) in vars {
            map.insert((*k).into(), (*v).into());
        }
        Settings::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).expect("valid");
        assert_eq!(s.server.as_str(), "http://127.0.0.1:8080");
        assert_eq!(s.listen.to_string(), Settings::DEFAULT_LISTEN);
        assert_eq!(s.admin_listen.to_string(), Settings::DEFAULT_ADMIN_LISTEN);
        assert_eq!(s.flush_interval, Duration::from_secs(1));
        assert_eq!(s.spool_max_bytes, 256 << 20);
        assert_eq!(s.access_log, AccessLogMode::Off);
        assert!(s.cors_origins.is_empty());
        assert_eq!((s.max_header_bytes, s.max_connections), (32 * 1024, None));
        assert!(!format!("{s:?}").contains("tg_agt_secret"));
        assert_eq!((s.authz_listen, s.authz_path_prefix, s.authz_grpc_listen), (None, None, None));
        assert_eq!(s.upgrade_idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn the_access_log() {
        let s = parse(&[("TOLLGATE_AGENT_ACCESS_LOG", "json"), ("TOLLGATE_AGENT_ACCESS_LOG_PATH", "/var/log/a.jsonl")])
            .expect("valid");
        assert_eq!((s.access_log, s.access_log_path), (AccessLogMode::Json, Some(PathBuf::from("/var/log/a.jsonl"))));
        assert_eq!(parse(&[("TOLLGATE_AGENT_ACCESS_LOG", "on")]).expect("valid").access_log, AccessLogMode::On);
        let err = parse(&[("TOLLGATE_AGENT_ACCESS_LOG", "JSON")]).expect_err("case matters");
        assert!(err.message.contains("not on, json or off"), "{}", err.message);
        // A path alone turns the JSON log on; with another mode it would go unused.
        let s = parse(&[("TOLLGATE_AGENT_ACCESS_LOG_PATH", "/var/log/a.jsonl")]).expect("valid");
        assert_eq!(s.access_log, AccessLogMode::Json);
        for mode in ["on", "off"] {
            let err =
                parse(&[("TOLLGATE_AGENT_ACCESS_LOG", mode), ("TOLLGATE_AGENT_ACCESS_LOG_PATH", "/var/log/a.jsonl")])
                    .expect_err("a path with another mode");
            assert_eq!(err.setting, "TOLLGATE_AGENT_ACCESS_LOG_PATH");
            assert!(err.message.contains(&format!("is `{mode}`")), "{}", err.message);
        }
    }

    #[test]
    fn the_decision_endpoint() {
        let s =
            parse(&[("TOLLGATE_AGENT_AUTHZ_LISTEN", "127.0.0.1:8090"), ("TOLLGATE_AGENT_AUTHZ_PATH_PREFIX", "/authz")])
                .expect("valid");
        assert_eq!(s.authz_listen, Some("127.0.0.1:8090".parse().expect("address")));
        assert_eq!(s.authz_path_prefix.as_ref().map(AuthzPathPrefix::as_str), Some("/authz"));
        for bad in ["authz", "/authz/", "/a?b", "/a%2f", "/", "//a"] {
            let err = parse(&[("TOLLGATE_AGENT_AUTHZ_PATH_PREFIX", bad)]).expect_err(bad);
            assert_eq!(err.setting, "TOLLGATE_AGENT_AUTHZ_PATH_PREFIX");
        }
        let err = parse(&[("TOLLGATE_AGENT_AUTHZ_LISTEN", "8090")]).expect_err("no host");
        assert_eq!(err.setting, "TOLLGATE_AGENT_AUTHZ_LISTEN");
        let s = parse(&[("TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN", "127.0.0.1:8091")]).expect("valid");
        assert_eq!(s.authz_grpc_listen, Some("127.0.0.1:8091".parse().expect("address")));
        let err = parse(&[("TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN", "localhost")]).expect_err("no port");
        assert_eq!(err.setting, "TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN");
        assert!(!parse(&[]).expect("valid").authz_reports);
        let s =
            parse(&[("TOLLGATE_AGENT_AUTHZ_REPORTS", "on"), ("TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN", "127.0.0.1:8092")])
                .expect("valid");
        assert_eq!((s.authz_reports, s.authz_report_listen), (true, Some("127.0.0.1:8092".parse().expect("address"))));
        let err = parse(&[("TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN", "127.0.0.1:8092")]).expect_err("reports off");
        assert_eq!(err.setting, "TOLLGATE_AGENT_AUTHZ_REPORT_LISTEN");
        let err = parse(&[("TOLLGATE_AGENT_AUTHZ_REPORTS", "yes")]).expect_err("on or off");
        assert_eq!(err.setting, "TOLLGATE_AGENT_AUTHZ_REPORTS");
    }

    #[test]
    fn cors_origins_are_normalised_as_browsers_send_them() {
        let s = parse(&[(
            "TOLLGATE_AGENT_CORS_ORIGINS",
            " http://127.0.0.1:8080 , HTTPS://Portal.Example.COM:443,http://a.test:80,,\
             http://[::1]:3000,http://127.0.0.1:8080",
        )])
        .expect("valid");
        let origins: Vec<&str> = s.cors_origins.as_slice().iter().map(|o| o.to_str().expect("ascii")).collect();
        assert_eq!(
            origins,
            ["http://127.0.0.1:8080", "https://portal.example.com", "http://a.test", "http://[::1]:3000"]
        );
        let wanted = HeaderValue::from_static("http://127.0.0.1:8080");
        assert!(s.cors_origins.find(&wanted).is_some());
        assert!(s.cors_origins.find(&HeaderValue::from_static("http://127.0.0.1:8081")).is_none());
        let e = parse(&[("TOLLGATE_AGENT_CORS_ORIGINS", "*")]).expect_err("invalid");
        assert!(e.to_string().contains("not allowed"), "{e}");
    }

    #[test]
    fn a_misspelt_variable_is_named_as_unread() {
        let asked: std::collections::HashSet<String> =
            ["TOLLGATE_AGENT_LISTEN".to_owned(), "TOLLGATE_AGENT_SERVER".to_owned()].into();
        let names = ["TOLLGATE_AGENT_LISTN", "TOLLGATE_AGENT_LISTEN", "TOLLGATE_DATABASE_URL", "PATH"];
        assert_eq!(unread(names.iter().map(|n| (*n).to_owned()), &asked), ["TOLLGATE_AGENT_LISTN"]);
    }

    #[test]
    fn errors_name_the_setting() {
        let err = |vars: &[(&str, &str)]| parse(vars).expect_err("invalid").setting;
        assert_eq!(err(&[("TOLLGATE_AGENT_LISTEN", "nope")]), "TOLLGATE_AGENT_LISTEN");
        assert_eq!(err(&[("TOLLGATE_AGENT_SERVER", "ftp://x")]), "TOLLGATE_AGENT_SERVER");
        let with_password =
            parse(&[("TOLLGATE_AGENT_SERVER", "http://user:hunter2@127.0.0.1:8080")]).expect_err("refused");
        assert_eq!(with_password.setting, "TOLLGATE_AGENT_SERVER");
        assert!(!with_password.message.contains("hunter2"), "the password is not repeated: {}", with_password.message);
        assert_eq!(err(&[("TOLLGATE_AGENT_TLS_CERT", "a.pem")]), "TOLLGATE_AGENT_TLS_KEY");
        assert_eq!(err(&[("TOLLGATE_AGENT_REDIS_CA", "ca.pem")]), "TOLLGATE_AGENT_REDIS_CA");
        assert_eq!(err(&[("TOLLGATE_AGENT_ACCESS_LOG", "yes")]), "TOLLGATE_AGENT_ACCESS_LOG");
        assert_eq!(err(&[("TOLLGATE_AGENT_FLUSH_INTERVAL_MS", "0")]), "TOLLGATE_AGENT_FLUSH_INTERVAL_MS");
        assert_eq!(err(&[("TOLLGATE_AGENT_UPGRADE_IDLE_TIMEOUT_MS", "0")]), "TOLLGATE_AGENT_UPGRADE_IDLE_TIMEOUT_MS");
        assert_eq!(err(&[("TOLLGATE_AGENT_CLIENT_IDLE_TIMEOUT_MS", "99")]), "TOLLGATE_AGENT_CLIENT_IDLE_TIMEOUT_MS");
        assert_eq!(err(&[("TOLLGATE_AGENT_REDIS_URL", "http://x")]), "TOLLGATE_AGENT_REDIS_URL");
        assert_eq!(err(&[("TOLLGATE_AGENT_SPOOL_MAX_BYTES", "12XB")]), "TOLLGATE_AGENT_SPOOL_MAX_BYTES");
        assert_eq!(err(&[("TOLLGATE_AGENT_TOKEN", "a b")]), "TOLLGATE_AGENT_TOKEN");
        for bad in [
            "*",
            "http://127.0.0.1:8080,*",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/portal",
            "http://h?x=1",
            "ftp://portal.example.com",
            "http://user@portal.example.com",
            "null",
        ] {
            assert_eq!(err(&[("TOLLGATE_AGENT_CORS_ORIGINS", bad)]), "TOLLGATE_AGENT_CORS_ORIGINS", "{bad}");
        }
        let e = parse(&[("TOLLGATE_AGENT_TOKEN", "bad token")]).expect_err("invalid");
        assert!(!e.to_string().contains("bad token"));
    }

    #[test]
    fn sizes_and_redaction() {
        assert_eq!(parse(&[("TOLLGATE_AGENT_SPOOL_MAX_BYTES", "1MiB")]).expect("ok").spool_max_bytes, 1 << 20);
        assert_eq!(parse(&[("TOLLGATE_AGENT_MAX_HEADER_BYTES", "16KiB")]).expect("ok").max_header_bytes, 16 << 10);
        assert_eq!(parse(&[("TOLLGATE_AGENT_MAX_CONNECTIONS", "500")]).expect("ok").max_connections, Some(500));
        assert_eq!(parse(&[("TOLLGATE_AGENT_WORKERS", "3")]).expect("ok").workers, 3);
        for bad in ["0", "many", "1025"] {
            let err = parse(&[("TOLLGATE_AGENT_WORKERS", bad)]).expect_err(bad).to_string();
            assert!(err.contains("TOLLGATE_AGENT_WORKERS"), "{err}");
        }
        let err = |vars: &[(&str, &str)]| parse(vars).expect_err("invalid").setting;
        assert_eq!(err(&[("TOLLGATE_AGENT_MAX_HEADER_BYTES", "2MiB")]), "TOLLGATE_AGENT_MAX_HEADER_BYTES");
        assert_eq!(err(&[("TOLLGATE_AGENT_MAX_HEADER_BYTES", "100")]), "TOLLGATE_AGENT_MAX_HEADER_BYTES");
        assert_eq!(err(&[("TOLLGATE_AGENT_MAX_CONNECTIONS", "0")]), "TOLLGATE_AGENT_MAX_CONNECTIONS");
        assert_eq!(err(&[("TOLLGATE_AGENT_MAX_CONNECTIONS", "lots")]), "TOLLGATE_AGENT_MAX_CONNECTIONS");
        let url = RedisUrl::parse("redis://user:pw@127.0.0.1:6379/0").expect("ok");
        assert_eq!(url.to_string(), "redis://***@127.0.0.1:6379/0");
        let url = RedisUrl::parse("rediss://user:pw@127.0.0.1:6380/0").expect("ok");
        assert_eq!((url.to_string().as_str(), url.is_tls()), ("rediss://***@127.0.0.1:6380/0", true));
    }
}
