//! Usage reporting: count forwarded and refused requests, sample failed calls and note the
//! latest use of each credential in memory (aggregate.rs, failed_calls.rs, last_used.rs),
//! seal them into batches on a timer, keep each batch on disk until the server acknowledges
//! it (spool.rs), and post them in order (report.rs).

pub(crate) mod aggregate;
pub(crate) mod failed_calls;
pub(crate) mod groups;
pub(crate) mod last_used;
pub(crate) mod report;
mod shard;
pub(crate) mod spool;
