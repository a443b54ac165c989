//! Tollgate's domain and data layer.
//!
//! Every SQL statement of the management server lives in this crate, behind
//! sqlx's checked macros; the web crates call the functions here and never
//! write SQL. Domain and data only: no HTTP framework, no HTML templates.

pub mod accounts;
pub mod admin_tokens;
pub mod apis;
pub mod applications;
pub mod audit;
pub mod billing;
pub mod config_code;
pub mod credentials;
pub mod db;
pub mod error;
pub mod gateways;
pub mod identity;
pub mod mail;
mod name_search;
pub mod notifications;
pub mod plans;
pub mod routing;
pub mod secrets;
pub mod sessions;
mod stored;
pub mod sync;
pub mod usage;
pub mod webhooks;

pub use error::{Error, FieldProblem, FieldProblems, Result, minutes};
pub use stored::UnknownName;
