//! What agents are told: full snapshots, deltas from the change feed, the
//! feed itself, and its head revision followed with `LISTEN`.

mod binary;
pub mod feed;
mod listen;
mod load;
mod routing;
mod snapshot;

pub use binary::{Streamed, stream_binary_snapshot};
pub use listen::follow_head;
pub use snapshot::{build_delta, build_snapshot};
