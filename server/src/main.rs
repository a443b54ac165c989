//! The `tollgate` binary: parses the command line, runs the command and turns
//! a failure into one line on stderr and its exit code.

use std::process::ExitCode;

use clap::Parser;
use tollgate::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One clear line; the cause chain is folded in by Display.
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
