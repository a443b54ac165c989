//! The server's one integration-test binary: HTTP in, HTTP or database
//! state out. Each test gets a fresh database from `#[sqlx::test]`.

mod admin_api;
mod admin_ui;
mod agent_api;
mod auth;
mod cli;
mod gateway;
mod health;
mod helpers;
mod identity;
mod migrations;
mod portal;
mod seed;
mod teams;
mod tenants;
