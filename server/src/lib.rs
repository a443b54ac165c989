//! The `tollgate` management server: settings, startup, HTTP plumbing and
//! the CLI commands. `main.rs` only parses arguments and reports errors.

pub mod agent_api;
pub mod cli;
pub mod http;
pub mod jobs;
pub mod setting_error;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod trace;
