//! Tollgate's domain and data layer.
//!
//! Every SQL statement of the management server lives in this crate, behind
//! sqlx's checked macros; portal/ and admin/ call the functions here and never
//! write SQL. The `web` module holds the actix glue that both web crates share
//! (sessions, CSRF, page rendering), so the two stay consistent.

pub mod accounts;
pub mod admin_tokens;
pub mod apis;
pub mod applications;
pub mod audit;
pub mod credentials;
pub mod db;
pub mod error;
pub mod gateways;
pub mod identity;
pub mod mail;
pub mod plans;
pub mod secrets;
pub mod sessions;
pub mod sync;
pub mod usage;
pub mod web;

pub use error::{Error, Result};
