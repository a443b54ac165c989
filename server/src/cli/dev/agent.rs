//! Starts a `tollgate-agent` beside the dev server, as a child process, so
//! calls through the gateway work from the one command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::gateways;

use crate::cli::error::CliError;

/// The agent binary next to this one (both are built into the same target dir).
fn agent_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("tollgate-agent");
    candidate.is_file().then_some(candidate)
}

pub struct DevAgent {
    /// Killed when dropped, so the agent never outlives the dev server.
    _child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// `portal_origin` may call the gateway from browsers (the docs' try-it).
pub async fn start(
    pool: &PgPool,
    server: &str,
    portal_origin: &str,
    proxy: SocketAddr,
    admin: SocketAddr,
    state_dir: PathBuf,
) -> Result<Option<DevAgent>, CliError> {
    let Some(binary) = agent_binary() else {
        eprintln!(
            "tollgate: no tollgate-agent binary beside this one; build it with `cargo build -p tollgate-agent` (scripts/run does)"
        );
        return Ok(None);
    };
    let (_, token) = gateways::reset_token(pool, "dev", &Actor::system("tollgate dev")).await?;
    std::fs::create_dir_all(&state_dir)?;
    let child = Command::new(binary)
        .env("TOLLGATE_AGENT_SERVER", server)
        .env("TOLLGATE_AGENT_TOKEN", token.as_str())
        .env("TOLLGATE_AGENT_LISTEN", proxy.to_string())
        .env("TOLLGATE_AGENT_ADMIN_LISTEN", admin.to_string())
        .env("TOLLGATE_AGENT_STATE_DIR", &state_dir)
        .env("TOLLGATE_AGENT_CORS_ORIGINS", portal_origin)
        .env("TOLLGATE_AGENT_LOG", std::env::var("TOLLGATE_AGENT_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    Ok(Some(DevAgent { _child: child, proxy, admin }))
}
