//! The Tollgate gateway agent: a reverse proxy that authenticates API consumers, enforces
//! their plan's limits and reports usage, answering every request from memory.
//!
//! The agent holds one compiled [`config::Config`] behind an atomic pointer. A sync task
//! keeps it current from the management server's NDJSON config stream (snapshot, then
//! deltas) and persists it to the state directory, so a restarted agent serves while the
//! management server is down. Usage is aggregated in memory, sealed into batches on a
//! timer, spooled to disk and posted until acknowledged.
//!
//! Start an agent in-process with [`Agent::start`]; the binary is a thin wrapper around it.
//!
//! ```no_run
//! # async fn example() -> Result<(), tollgate_agent::Error> {
//! use tollgate_agent::{Agent, ServerUrl, Settings, Token};
//! let server = ServerUrl::parse("http://127.0.0.1:8080").expect("valid URL");
//! let mut settings = Settings::new(server, Token::new("tg_agt_…"), "./state".into());
//! settings.listen = "127.0.0.1:0".parse().expect("address");
//! settings.admin_listen = "127.0.0.1:0".parse().expect("address");
//! let agent = Agent::start(settings).await?;
//! println!("proxy on {}", agent.proxy_addr());
//! agent.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod agent;
mod clock;
mod config;
pub mod enforce;
mod error;
mod grpc;
mod hashing;
mod header_number;
mod protocols;
mod proxy;
mod redis;
mod report;
mod server;
mod settings;
mod state;
mod sync;
mod telemetry;
mod tls;
mod trace;
mod tunnel;
mod usage;

pub use agent::{Agent, RunningAgent};
pub use clock::{Clock, ManualClock};
pub use error::Error;
pub use settings::{
    AccessLogMode, AuthzPathPrefix, CorsOrigins, LogFormat, RedisUrl, ServerUrl, Settings, SettingsError, Token,
};
pub use telemetry::init_logging;
pub use tls::TlsError;
pub use tls::config::{CertKeyPair, TlsSettings};
pub use trace::{OtlpEndpoint, TraceExport};

/// The agent's own version, reported to the management server.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
