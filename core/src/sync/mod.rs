//! What agents are told: full snapshots, deltas from the change feed, and
//! the feed itself.

pub mod feed;
mod load;
mod snapshot;

pub use snapshot::{build_delta, build_snapshot};
