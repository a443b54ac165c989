//! The state directory: the agent's stable id and crash-safe file writes.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use uuid::Uuid;

/// Writes `path` via a temporary file in the same directory: write, fsync, rename, fsync the
/// directory. Readers see the old or the new content, never a torn file.
pub(crate) fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.{}.tmp", Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = File::create(&temp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Holds `STATE_DIR/lock` for as long as the returned file lives: two agents on one directory
/// would share an id and a spool, so the second is refused (`WouldBlock`). Where the platform
/// cannot lock files, nothing is held.
pub(crate) fn lock(state_dir: &Path) -> io::Result<Option<fs::File>> {
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(state_dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        Err(fs::TryLockError::Error(err)) if err.kind() == io::ErrorKind::Unsupported => Ok(None),
        Err(fs::TryLockError::Error(err)) => Err(err),
    }
}

/// The agent's id, made once (UUIDv7) and kept in `STATE_DIR/agent_id`.
pub(crate) fn agent_id(state_dir: &Path) -> io::Result<Uuid> {
    let path = state_dir.join("agent_id");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a UUID", path.display()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let id = Uuid::now_v7();
            write_atomically(&path, |file| io::Write::write_all(file, format!("{id}\n").as_bytes()))?;
            Ok(id)
        }
        Err(err) => Err(err),
    }
}
