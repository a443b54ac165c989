//! The deltas applied since `config.bin` was written: `STATE_DIR/config.journal`.
//!
//! Rewriting a million-key `config.bin` for every revoked key costs each agent hundreds of
//! milliseconds of CPU and 60 MB of disk writes per change, on the cores that serve
//! requests. So each delta is appended here as one JSON line and synced, and the whole
//! file is rewritten only for a new snapshot, when the journal outgrows [`LIMIT`], and on
//! stop.
//!
//! The first line names the revision of the `config.bin` it continues
//! (`{"journal_of_revision":7}`); a journal naming another revision is ignored. Every
//! further line is a protocol [`Delta`] ending in a newline. Replaying stops at the first
//! line that is unterminated, does not parse or does not follow the one before (a write
//! torn by a crash), and keeps what came before it.
//!
//! The journal is removed before `config.bin` is replaced and started afresh after it, so
//! a crash in between leaves a file without a journal, never a journal of another file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tollgate_protocol::Delta;

use super::delta::apply_delta;
use super::model::Config;
use crate::state;

pub(crate) const FILE_NAME: &str = "config.journal";

/// Past this size the next change rewrites `config.bin` instead (a few thousand deltas:
/// replaying them at start takes milliseconds).
pub(crate) const LIMIT: u64 = 4 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    journal_of_revision: u64,
}

/// What the state directory holds: `config.bin` plus the journal's deltas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OnDisk {
    /// The revision a restart would load.
    pub revision: u64,
    /// The journal's size; `None` when there is none yet (then `revision` is the file's).
    pub journal_bytes: Option<u64>,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Starts an empty journal after the `config.bin` of `revision`; returns its size.
pub(crate) fn start(state_dir: &Path, revision: u64) -> io::Result<u64> {
    let mut header = serde_json::to_vec(&Header { journal_of_revision: revision }).map_err(io::Error::other)?;
    header.push(b'\n');
    state::write_atomically(&path(state_dir), |file| file.write_all(&header))?;
    Ok(header.len() as u64)
}

/// Removes the journal (before `config.bin` is replaced), durably.
pub(crate) fn remove(state_dir: &Path) -> io::Result<()> {
    match fs::remove_file(path(state_dir)) {
        Ok(()) => File::open(state_dir)?.sync_all(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Appends deltas (JSON, one per entry) and syncs; returns the bytes added.
pub(crate) fn append(state_dir: &Path, deltas: &[Vec<u8>]) -> io::Result<u64> {
    let mut bytes = Vec::with_capacity(deltas.iter().map(|d| d.len() + 1).sum());
    for delta in deltas {
        bytes.extend_from_slice(delta);
        bytes.push(b'\n');
    }
    let mut file = OpenOptions::new().append(true).open(path(state_dir))?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    Ok(bytes.len() as u64)
}

/// `config` (loaded from `config.bin`) with the journal's deltas applied, and what the
/// disk holds if new deltas can be appended to it (`None`: the next change must rewrite
/// `config.bin`). Problems are logged; they cost revisions, which the server resends.
pub(crate) fn replay(state_dir: &Path, config: Config) -> (Config, Option<OnDisk>) {
    let bytes = match fs::read(path(state_dir)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let revision = config.revision;
            return (config, Some(OnDisk { revision, journal_bytes: None }));
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read config.journal; serving config.bin's revision");
            return (config, None);
        }
    };
    match follow(&bytes, config.revision) {
        Err(reason) => {
            tracing::warn!(%reason, revision = config.revision, "config.journal ignored");
            (config, None)
        }
        Ok((None, clean)) => {
            let revision = config.revision;
            (config, clean.then_some(OnDisk { revision, journal_bytes: Some(bytes.len() as u64) }))
        }
        Ok((Some(merged), clean)) => {
            let (from, to, deltas) = (merged.base_revision, merged.revision, merged.changes.len());
            match apply_delta(&config, merged) {
                Ok(replayed) => {
                    tracing::info!(from, to, changes = deltas, "replayed config.journal");
                    (replayed, clean.then_some(OnDisk { revision: to, journal_bytes: Some(bytes.len() as u64) }))
                }
                Err(err) => {
                    tracing::warn!(error = %err, from, to, "config.journal does not apply; serving config.bin's revision");
                    (config, None)
                }
            }
        }
    }
}

/// The journal's deltas after `revision` merged into one (a delta's changes are applied in
/// order, so consecutive deltas concatenate), and whether every line was used. `Err` for a
/// journal of another file.
fn follow(bytes: &[u8], revision: u64) -> Result<(Option<Delta>, bool), String> {
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let header = lines.next().ok_or("it is empty")?;
    let header: Header = serde_json::from_slice(header).map_err(|err| format!("its first line: {err}"))?;
    if header.journal_of_revision != revision {
        return Err(format!("it continues revision {}, not config.bin's", header.journal_of_revision));
    }
    let mut merged: Option<Delta> = None;
    let mut at = revision;
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let Some(line) = line.strip_suffix(b"\n") else {
            tracing::warn!(line = number, "config.journal ends in an unterminated line (a torn write): ignored");
            return Ok((merged, false));
        };
        let delta: Delta = match serde_json::from_slice(line) {
            Ok(delta) => delta,
            Err(err) => {
                tracing::warn!(line = number, error = %err, "config.journal: a line that is not a delta; replay stops");
                return Ok((merged, false));
            }
        };
        if delta.base_revision != at || delta.revision <= at {
            tracing::warn!(
                line = number,
                at,
                base = delta.base_revision,
                "config.journal: a delta that does not follow; replay stops"
            );
            return Ok((merged, false));
        }
        at = delta.revision;
        match &mut merged {
            Some(merged) => {
                merged.revision = delta.revision;
                merged.changes.extend(delta.changes);
            }
            None => merged = Some(delta),
        }
    }
    Ok((merged, true))
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::Change;
    use uuid::Uuid;

    use super::*;

    fn line(base: u64, revision: u64) -> String {
        let delta = Delta { base_revision: base, revision, changes: vec![Change::RemoveApi { id: Uuid::nil() }] };
        serde_json::to_string(&delta).expect("json") + "\n"
    }

    #[test]
    fn consecutive_deltas_merge_in_order() {
        let journal = format!("{{\"journal_of_revision\":3}}\n{}{}", line(3, 4), line(4, 6));
        let (merged, clean) = follow(journal.as_bytes(), 3).expect("follows");
        let merged = merged.expect("deltas");
        assert_eq!((merged.base_revision, merged.revision, merged.changes.len(), clean), (3, 6, 2, true));
    }

    #[test]
    fn a_journal_of_another_revision_is_refused() {
        let journal = format!("{{\"journal_of_revision\":2}}\n{}", line(3, 4));
        assert!(follow(journal.as_bytes(), 3).unwrap_err().contains("continues revision 2"));
    }

    #[test]
    fn a_torn_last_line_is_left_out() {
        let torn = line(4, 5);
        let journal = format!("{{\"journal_of_revision\":3}}\n{}{}", line(3, 4), &torn[..torn.len() - 1]);
        let (merged, clean) = follow(journal.as_bytes(), 3).expect("follows");
        assert_eq!((merged.map(|m| m.revision), clean), (Some(4), false));
    }

    #[test]
    fn replay_stops_at_a_delta_that_does_not_follow() {
        let journal = format!("{{\"journal_of_revision\":3}}\n{}{}{}", line(3, 4), line(5, 6), line(6, 7));
        let (merged, clean) = follow(journal.as_bytes(), 3).expect("follows");
        assert_eq!((merged.map(|m| m.revision), clean), (Some(4), false));
    }

    #[test]
    fn a_header_alone_is_a_clean_empty_journal() {
        assert!(matches!(follow(b"{\"journal_of_revision\":3}\n", 3), Ok((None, true))));
    }
}
