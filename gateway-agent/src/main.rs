//! `tollgate-agent`: the gateway agent binary. Settings come from `TOLLGATE_AGENT_*`
//! variables (see docs/AGENT.md); SIGTERM or SIGINT stop it gracefully.

use std::process::ExitCode;

use tollgate_agent::{Agent, Error, Settings};

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    tollgate_agent::init_logging(&settings.log, settings.log_format);
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
