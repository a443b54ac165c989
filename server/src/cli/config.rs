//! `tollgate export` and `tollgate apply`: the provider's configuration as
//! one YAML file, and making the platform match such a file (see
//! docs/CONFIG-AS-CODE.md). Both work on the database directly, so they
//! need no running server.

use std::path::Path;

use tollgate_core::audit::Actor;
use tollgate_core::config_code::{self, ApplyError, Options};

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

/// Writes the configuration to `output`, or to standard output.
pub async fn export(settings: &Settings, output: Option<&Path>) -> Result<(), CliError> {
    let pool = connect(settings.require_database()?, 2).await?;
    let text = config_code::export(&pool).await?;
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// Prints the diff, then applies it (or, with `dry_run`, rolls it back).
/// A bad file fails with `FILE:LINE:COLUMN: what is wrong`, nothing applied.
pub async fn apply(settings: &Settings, file: &Path, dry_run: bool, prune: bool) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| CliError::Other(format!("{}: {e}", file.display())))?;
    let pool = connect(settings.require_database()?, 2).await?;
    let actor = Actor::system("cli apply");
    let outcome = config_code::apply(&pool, &text, Options { dry_run, prune }, &actor, &settings.public_url)
        .await
        .map_err(|e| {
            // One problem a line, as compilers write them, so editors can jump to each.
            let lines = |problems: Vec<config_code::Located>| {
                let mut text: Vec<String> = problems
                    .into_iter()
                    .map(|at| {
                        let place = match (at.line, at.column) {
                            (Some(line), Some(column)) => format!("{}:{line}:{column}", file.display()),
                            (Some(line), None) => format!("{}:{line}", file.display()),
                            _ => file.display().to_string(),
                        };
                        let path = at.path.map(|p| format!("{p}: ")).unwrap_or_default();
                        format!("{place}: {path}{}", at.message)
                    })
                    .collect();
                if let Some(last) = text.last_mut() {
                    last.push_str("; nothing was applied");
                }
                CliError::Other(text.join("\n"))
            };
            match e {
                ApplyError::Invalid(problems) => lines(problems),
                ApplyError::Conflict(at) => lines(vec![at]),
                ApplyError::Core(e) => CliError::Core(e),
            }
        })?;
    print!("{}", config_code::render(&outcome.changes));
    if dry_run && !outcome.changes.is_empty() {
        println!("dry run: nothing was applied");
    }
    Ok(())
}
