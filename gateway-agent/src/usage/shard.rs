//! Which per-thread shard a worker thread records usage into: assigned round-robin on a
//! thread's first use, so worker threads rarely share a shard's lock.

use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard (modulo the shard count), assigned round-robin on first use.
    static SHARD_HINT: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

/// This thread's shard among `shards`.
pub(super) fn shard_index(shards: usize) -> usize {
    SHARD_HINT.with(|hint| *hint) % shards
}
