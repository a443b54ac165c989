//! The server's one integration-test binary: HTTP in, HTTP or database
//! state out. Each test gets a fresh database from `#[sqlx::test]`.

// A test fails by panicking, so its helpers unwrap too.
#![allow(clippy::unwrap_used)]

mod account_deletion;
mod admin_api;
mod admin_billing;
mod admin_ui;
mod agent_api;
mod auth;
mod billing;
mod billing_payments;
mod boundaries;
mod cli;
mod config_code;
mod dev_mail;
mod email_change;
mod gateway;
mod headers;
mod health;
mod helpers;
mod identity;
mod migrations;
mod mocks;
mod portal;
mod portal_billing;
mod preview;
mod routing;
mod seed;
mod teams;
mod tenants;
mod throttles;
mod traces;
mod usage;
mod usage_reports;
mod versions;
mod webhooks;
