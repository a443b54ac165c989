//! Usage reporting: count forwarded requests in memory (aggregate.rs), seal the counts into
//! batches on a timer, keep each batch on disk until the server acknowledges it (spool.rs),
//! and post them in order (report.rs).

pub(crate) mod aggregate;
pub(crate) mod report;
pub(crate) mod spool;
