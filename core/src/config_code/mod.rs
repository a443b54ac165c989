//! Configuration as code: the provider's configuration (billing settings;
//! APIs with their specs, upstreams, upstream groups and routes, mock mode
//! and auth, metrics, mapping rules, plans with limits and prices, lifecycle)
//! as one YAML document, and applying such a document.
//! See docs/CONFIG-AS-CODE.md for the format and the GitOps workflow.
//!
//! `document` is the format, `parse` reads and checks it (errors located by
//! `locate`), `export` writes the platform's state, `diff` compares two
//! documents, `apply` makes the platform match a file in one transaction.

mod apply;
mod diff;
mod document;
mod export;
mod locate;
mod parse;

pub use apply::{ApplyError, Options, Outcome, apply};
pub use diff::{Action, Change, FieldChange, Summary, compare, render, summary};
pub use document::Document;
pub use export::{export_in, to_yaml};
pub use parse::{Located, MAX_BYTES, MAX_PROBLEMS, parse};

/// The platform's configuration as YAML text, read in one snapshot.
pub async fn export(pool: &sqlx::PgPool) -> crate::Result<String> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let doc = export_in(&mut tx).await?;
    tx.rollback().await?;
    to_yaml(&doc)
}
