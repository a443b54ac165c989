//! `tollgate billing run`: bills every account for a period, as the hourly job does.

use std::io::{IsTerminal, Write};

use tollgate_core::billing::run::{self, RunOptions};
use tollgate_core::billing::{Month, Payments};
use uuid::Uuid;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

/// How the summary is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    /// One JSON object on stdout, as `RunSummary` serialises; failures are in it too.
    Json,
}

/// Runs billing and prints a summary; a progress bar on stderr when it is a terminal.
pub async fn run(
    settings: &Settings,
    month: Option<Month>,
    account: Option<Uuid>,
    dry_run: bool,
    workers: usize,
    output: Output,
) -> Result<(), CliError> {
    let url = settings.require_database()?;
    // One connection per worker, and one to read the pages.
    let pool = connect(url, u32::try_from(workers + 1).unwrap_or(u32::MAX)).await?;
    let tty = std::io::stderr().is_terminal();
    let options = RunOptions {
        month,
        account,
        dry_run,
        workers,
        public_url: settings.public_url.clone(),
        charge: Payments::new(settings.payment_provider).charges_automatically(),
    };
    let summary = run::run(&pool, &options, |done, total| {
        if tty {
            eprint!("\r{}", bar(done, total));
            if done == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    })
    .await?;
    if output == Output::Json {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{text}");
    } else {
        print_text(&summary);
    }
    // Every other account was billed; the exit status still says the run is incomplete.
    if !summary.failed.is_empty() {
        return Err(CliError::Other(format!("billing failed for {} accounts", summary.failed.len())));
    }
    Ok(())
}

fn print_text(summary: &run::RunSummary) {
    let verb = if summary.dry_run { "would issue" } else { "issued" };
    println!(
        "billing {} ({}){}: {} accounts, {} invoices {verb}, {} already billed, {} with nothing to bill, {} failed",
        summary.month,
        summary.mode,
        if summary.dry_run { " [dry run]" } else { "" },
        summary.accounts,
        summary.invoices.len(),
        summary.skipped,
        summary.empty,
        summary.failed.len(),
    );
    for (currency, total, count) in summary.totals() {
        println!("  {currency}: {count} invoices, total {total}");
    }
    for invoice in &summary.invoices {
        println!(
            "  {} account {} {} {} ({} lines, {})",
            invoice.number.as_deref().unwrap_or("(not numbered)"),
            invoice.account_id,
            invoice.total,
            invoice.currency,
            invoice.lines,
            invoice.state
        );
    }
    for failed in &summary.failed {
        eprintln!("  FAILED account {}: {}", failed.account_id, failed.error);
    }
}

/// `[#########           ]  45/100 accounts`
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!(
        "[{}{}] {done:>width$}/{total} accounts",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        width = total.to_string().len()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_fills_in_proportion() {
        assert_eq!(super::bar(0, 4), format!("[{}] 0/4 accounts", " ".repeat(30)));
        assert_eq!(super::bar(2, 4), format!("[{}{}] 2/4 accounts", "#".repeat(15), " ".repeat(15)));
        assert_eq!(super::bar(4, 4), format!("[{}] 4/4 accounts", "#".repeat(30)));
    }
}
