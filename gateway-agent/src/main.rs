//! `tollgate-agent`: the gateway agent binary. Settings come from `TOLLGATE_AGENT_*`
//! variables (see docs/AGENT.md); SIGTERM or SIGINT stop it gracefully.

use std::process::ExitCode;

use tollgate_agent::{Agent, Error, Settings};

/// What `--help` prints. The settings are many; docs/AGENT.md lists them all.
const USAGE: &str = "\
tollgate-agent: the Tollgate gateway agent

Usage: tollgate-agent [--help | --version]

It takes no arguments: settings come from TOLLGATE_AGENT_* environment variables.
Required: TOLLGATE_AGENT_SERVER (the management server's URL) and TOLLGATE_AGENT_TOKEN
(from `tollgate agent create`). Commonly set: TOLLGATE_AGENT_LISTEN (default
127.0.0.1:8081), TOLLGATE_AGENT_ADMIN_LISTEN (health, readiness and metrics; default
127.0.0.1:9081) and TOLLGATE_AGENT_STATE_DIR (the saved config and the usage spool).
Every setting is described in docs/AGENT.md. SIGTERM or SIGINT stop it gracefully.
";

fn main() -> ExitCode {
    // No argument starts a gateway: a mistyped flag must not bind ports and contact a server.
    if let Some(argument) = std::env::args().nth(1) {
        return match argument.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                ExitCode::SUCCESS
            }
            "-V" | "--version" => {
                println!("tollgate-agent {}", tollgate_agent::AGENT_VERSION);
                ExitCode::SUCCESS
            }
            other => {
                eprintln!(
                    "error: unexpected argument `{other}`; tollgate-agent takes its settings from TOLLGATE_AGENT_* variables (see --help)"
                );
                ExitCode::from(2)
            }
        };
    }
    let (settings, unread) = match Settings::from_env() {
        Ok(read) => read,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    tollgate_agent::init_logging(&settings.log, settings.log_format);
    for name in unread {
        tracing::warn!(
            variable = %name,
            "{name} is set but the agent did not read it: a misspelt setting, or one the other settings turn off (docs/AGENT.md lists them)"
        );
    }
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(settings: Settings) -> Result<(), Error> {
    // Requests are served by the proxy workers' own runtimes (TOLLGATE_AGENT_WORKERS); this
    // one runs the background: sync, usage, the admin listener, Redis.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tollgate-background")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let agent = Agent::start(settings).await?;
        wait_for_signal().await;
        agent.shutdown().await
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, Ctrl-C is the only way to ask for a clean stop.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
