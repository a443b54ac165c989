//! The `tollgate` command line: one module per subcommand.

mod admin;
mod agent;
mod billing;
mod config;
mod database;
pub mod dev;
mod error;
mod import;
mod migrate;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use self::error::CliError;
use crate::settings::Settings;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about = "Tollgate API management server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the management server (portal, admin, agent API).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage provider admins.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Import an OpenAPI (2.0, 3.0, 3.1; JSON or YAML) file as a new draft API, or stage it as a new
    /// version of an API (`--api SLUG`) and print its change report, breaking changes first.
    Import {
        /// The spec file.
        file: PathBuf,
        /// The API's name; defaults to the spec's title.
        #[arg(long, conflicts_with = "api")]
        name: Option<String>,
        /// Stage the file as a new version of the API with this slug (published separately).
        #[arg(long)]
        api: Option<String>,
    },
    /// Write the provider's configuration (APIs, metrics, rules, plans, lifecycle) as one YAML document.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Make the platform match a configuration file: print the diff, then apply it in one transaction.
    Apply {
        /// The configuration file (as `tollgate export` writes it).
        #[arg(long = "file", short = 'f')]
        file: PathBuf,
        /// Print the diff only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove APIs, plans, metrics and rules the file no longer names (never a plan in use).
        #[arg(long)]
        prune: bool,
    },
    /// Manage gateway agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Billing: invoices per account, period and currency.
    #[command(subcommand)]
    Billing(BillingCommand),
    /// Zero-config local platform: private Postgres, migrations, demo data, server.
    Dev {
        /// Only make sure the private Postgres runs, print its URL and exit.
        #[arg(long)]
        db_only: bool,
        /// Stop the private Postgres cluster, if it runs, and exit.
        #[arg(long)]
        stop_db: bool,
        /// Only migrate and seed the demo data (into TOLLGATE_DATABASE_URL or the private cluster), then exit.
        #[arg(long)]
        seed_only: bool,
        /// The database to use (created if missing) on the private cluster.
        #[arg(long, default_value = "tollgate")]
        database: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Bill every account for a period (idempotent: a second run changes nothing).
    Run {
        /// The period, YYYY-MM; by default the month that just ended (postpaid) or this month (prepaid).
        #[arg(long)]
        period: Option<tollgate_core::billing::Month>,
        /// Only this account (its id).
        #[arg(long)]
        account: Option<uuid::Uuid>,
        /// Show what would be billed; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as one JSON object (month, mode, counts, each invoice, each
        /// failure) instead of text, for scripts.
        #[arg(long)]
        json: bool,
        /// Accounts billed at once, each in its own transaction; with more than one, invoice
        /// numbers follow the order the accounts finish in.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
        workers: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register an agent and print its token.
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a provider admin.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create an admin API token for an admin and print it (shown once).
    Token {
        #[arg(long)]
        email: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// The token may only read (GET and HEAD); any change is refused with 403.
        #[arg(long)]
        read_only: bool,
        /// The token stops working after this many days; without it, it works until revoked.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=3650))]
        expires_in_days: Option<u16>,
    },
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let (settings, unread) = Settings::load()?;
    telemetry::init_logging(&settings.log, settings.log_format);
    for name in unread {
        tracing::warn!(
            variable = %name,
            "{name} is set but the server did not read it: a misspelt setting, or one the other settings turn off (docs/CONFIG.md lists them)"
        );
    }
    match cli.command {
        Command::Serve => serve::run(settings).await,
        Command::Migrate => migrate::run(&settings).await,
        Command::Admin(AdminCommand::Create { email, password_stdin }) => {
            admin::create(&settings, &email, password_stdin).await
        }
        Command::Admin(AdminCommand::Token { email, name, read_only, expires_in_days }) => {
            admin::token(&settings, &email, &name, read_only, expires_in_days).await
        }
        Command::Agent(AgentCommand::Create { name }) => agent::create(&settings, &name).await,
        Command::Billing(BillingCommand::Run { period, account, dry_run, json, workers }) => {
            let output = if json { billing::Output::Json } else { billing::Output::Text };
            billing::run(&settings, period, account, dry_run, usize::from(workers), output).await
        }
        Command::Import { file, name, api } => import::run(&settings, &file, name, api).await,
        Command::Export { output } => config::export(&settings, output.as_deref()).await,
        Command::Apply { file, dry_run, prune } => config::apply(&settings, &file, dry_run, prune).await,
        Command::Dev { stop_db: true, .. } => dev::postgres::stop(),
        Command::Dev { db_only, seed_only, database, .. } => dev::run(settings, db_only, seed_only, &database).await,
    }
}
