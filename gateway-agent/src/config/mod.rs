//! The compiled config: what the request path reads (model.rs), built off the request path
//! from a snapshot (compile.rs, or parse.rs while the JSON is read) or from the previous
//! config and a delta (delta.rs), persisted by store.rs (each delta appended to the
//! journal of journal.rs), and swapped in with one atomic pointer store.
//!
//! This file only declares the modules and re-exports what the rest of the agent uses.

mod binary;
mod compile;
mod cow;
mod delta;
mod journal;
mod model;
mod parse;
pub(crate) mod store;

pub(crate) use binary::compile_frames;
pub(crate) use compile::compile_snapshot;
pub(crate) use delta::apply_delta;
pub(crate) use model::{ApiEntry, AppEntry, Config, ConfigError, CredentialEntry, Lifecycle, LiveConfig, PlanEntry};
pub(crate) use parse::{is_snapshot_line, parse_snapshot};
