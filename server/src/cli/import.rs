//! `tollgate import FILE`: imports an OpenAPI document as a draft API, or,
//! with `--api SLUG`, stages it as a new version of that API and prints its
//! change report: the headline, then every distinct change, breaking first,
//! grouped by kind.

use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_core::apis::versions::{self, VersionReport};
use tollgate_core::apis::{ApiId, NewApi, ReportState, create_from_spec, find_by_slug, staging};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_openapi::ChangeReport;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

/// How long the command works on a large report before it gives up waiting
/// (the server's workers finish it; the admin UI shows it).
const REPORT_WAIT: Duration = Duration::from_secs(600);

/// Prints the new API's slug and operation count, or the staged version's
/// report; exits non-zero with the located error for an invalid spec.
pub async fn run(settings: &Settings, file: &Path, name: Option<String>, api: Option<String>) -> Result<(), CliError> {
    let source = std::fs::read_to_string(file).map_err(|e| CliError::Other(format!("{}: {e}", file.display())))?;
    let spec = tollgate_openapi::parse(&source).map_err(|e| CliError::Other(format!("{}: {e}", file.display())))?;
    let url = settings.require_database()?;
    let pool = connect(url, 2).await?;
    let actor = Actor::system("cli");
    let Some(slug) = api else {
        let api = create_from_spec(&pool, &source, &spec, NewApi { name, ..NewApi::default() }, &actor).await?;
        println!("imported {} with {} operations", api.slug, api.operation_count);
        return Ok(());
    };
    let found = find_by_slug(&pool, &slug).await?.ok_or_else(|| CliError::Other(format!("no API is called {slug}")))?;
    let staged = versions::stage(&pool, found.id, &source, &spec, &actor).await?;
    let version = wait_for_report(&pool, found.id, staged).await?;
    match version.state {
        ReportState::Ready => {
            print!("{}", report_text(&version.report));
            println!(
                "staged version {} of {slug}; publish it in the admin UI or with POST /admin/api/v1/apis/{}/versions/{}/publish",
                version.number, found.id.0, version.number
            );
            Ok(())
        }
        ReportState::Failed => Err(CliError::Other(format!(
            "staged version {} of {slug}, but its change report failed: {}",
            version.number,
            version.error.unwrap_or_default()
        ))),
        ReportState::Queued | ReportState::Running => {
            println!(
                "staged version {} of {slug}; its change report is still being made: see it in the admin UI",
                version.number
            );
            Ok(())
        }
    }
}

/// A large report is made by a background job; the command works on the
/// queue itself until its own report is ready, so it needs no running server.
async fn wait_for_report(pool: &PgPool, api: ApiId, staged: VersionReport) -> Result<VersionReport, CliError> {
    let deadline = Instant::now() + REPORT_WAIT;
    let mut version = staged;
    while matches!(version.state, ReportState::Queued | ReportState::Running) && Instant::now() < deadline {
        match staging::claim(pool).await? {
            Some(job) => {
                if let Err(err) = staging::run(pool, &job).await {
                    staging::fail(pool, &job, &err.to_string()).await?;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
        version = versions::get(pool, api, version.number).await?;
    }
    Ok(version)
}

/// The report for a terminal: the headline, then each distinct change
/// once, breaking first, under a heading per kind.
fn report_text(report: &ChangeReport) -> String {
    let mut out = format!("{}\n", report.headline());
    if report.truncated {
        out.push_str("The comparison stopped early: the documents are too large to compare completely.\n");
    }
    let mut heading = None;
    for change in &report.changes {
        let this = (change.breaking, change.kind);
        if heading != Some(this) {
            let count = report.changes.iter().filter(|c| (c.breaking, c.kind) == this).count();
            let tag = if change.breaking { "BREAKING" } else { "other" };
            out.push_str(&format!("\n{tag}: {} ({count})\n", change.kind.title()));
            heading = Some(this);
        }
        out.push_str(&format!("  {}\n", report.line(change)));
    }
    out
}
