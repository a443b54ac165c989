//! Noticing that a TLS file changed on disk: what it looked like when last checked (size,
//! modification time and inode, so an atomic rename counts).

use std::path::Path;
use std::time::SystemTime;

/// What a file looked like when last checked; `None` where it could not be read.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })
}
