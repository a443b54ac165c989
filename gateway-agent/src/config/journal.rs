//! The deltas applied since `config.bin` was written: `STATE_DIR/config.journal`.
//!
//! Rewriting a million-key `config.bin` for every revoked key costs each agent hundreds of
//! milliseconds of CPU and 60 MB of disk writes per change, on the cores that serve
//! requests. So each delta is appended here as one JSON line and synced, and the whole
//! file is rewritten only for a new snapshot, when the journal outgrows [`LIMIT`], and on
//! stop.
//!
//! The first line names the `config.bin` it continues by its revision and the time the
//! server generated the snapshot it grew from (`{"journal_of_revision":7,"generated_at":…}`;
//! deltas keep that time, and a new snapshot of the same revision, from a server restored
//! from a backup, has another); a journal naming another file is ignored. Every
//! further line is a protocol [`Delta`] ending in a newline. Replaying stops at the first
//! line that is unterminated, does not parse or does not follow the one before (a write
//! torn by a crash), and keeps what came before it.
//!
//! The old journal stays until the new `config.bin` is in place and is then replaced by an
//! empty one: a crash or a failed write before that leaves the old file with its journal,
//! and a crash after it a journal that names another file, which is ignored.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
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
    /// Absent in the journals of agents before it: then the revision alone must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generated_at: Option<Timestamp>,
}

/// What the state directory holds: `config.bin` plus the journal's deltas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OnDisk {
    /// The revision a restart would load.
    pub revision: u64,
    /// `config.bin`'s `generated_at`, which every delta after it keeps.
    pub generated_at: Timestamp,
    /// The journal's size; `None` when there is none yet (then `revision` is the file's).
    pub journal_bytes: Option<u64>,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Starts an empty journal (replacing any other) after the `config.bin` of `revision`
/// and `generated_at`; returns its size.
pub(crate) fn start(state_dir: &Path, revision: u64, generated_at: Timestamp) -> io::Result<u64> {
    let header = Header { journal_of_revision: revision, generated_at: Some(generated_at) };
    let mut header = serde_json::to_vec(&header).map_err(io::Error::other)?;
    header.push(b'\n');
    state::write_atomically(&path(state_dir), |file| file.write_all(&header))?;
    Ok(header.len() as u64)
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
    let (revision, generated_at) = (config.revision, config.generated_at);
    let bytes = match fs::read(path(state_dir)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return (config, Some(OnDisk { revision, generated_at, journal_bytes: None }));
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot read config.journal; serving config.bin's revision");
            return (config, None);
        }
    };
    let journal_bytes = Some(bytes.len() as u64);
    match follow(&bytes, revision, generated_at) {
        Err(reason) => {
            tracing::warn!(%reason, revision, "config.journal ignored");
            (config, None)
        }
        Ok((None, clean)) => (config, clean.then_some(OnDisk { revision, generated_at, journal_bytes })),
        Ok((Some(merged), clean)) => {
            let (from, to, deltas) = (merged.base_revision, merged.revision, merged.changes.len());
            match apply_delta(&config, merged) {
                Ok(replayed) => {
                    tracing::info!(from, to, changes = deltas, "replayed config.journal");
                    (replayed, clean.then_some(OnDisk { revision: to, generated_at, journal_bytes }))
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
fn follow(bytes: &[u8], revision: u64, generated_at: Timestamp) -> Result<(Option<Delta>, bool), String> {
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let header = lines.next().ok_or("it is empty")?;
    let header: Header = serde_json::from_slice(header).map_err(|err| format!("its first line: {err}"))?;
    if header.journal_of_revision != revision {
        return Err(format!("it continues revision {}, not config.bin's", header.journal_of_revision));
    }
    if header.generated_at.is_some_and(|at| at != generated_at) {
        return Err(format!("it continues another config.bin of revision {revision}"));
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

    const AT: Timestamp = Timestamp::constant(1_700_000_000, 0);

    fn line(base: u64, revision: u64) -> String {
        let delta = Delta { base_revision: base, revision, changes: vec![Change::RemoveApi { id: Uuid::nil() }] };
        serde_json::to_string(&delta).expect("json") + "\n"
    }

    #[test]
    fn consecutive_deltas_merge_in_order() {
        let journal = format!("{{\"journal_of_revision\":3}}\n{}{}", line(3, 4), line(4, 6));
        let (merged, clean) = follow(journal.as_bytes(), 3, AT).expect("follows");
        let merged = merged.expect("deltas");
        assert_eq!((merged.base_revision, merged.revision, merged.changes.len(), clean), (3, 6, 2, true));
    }

    #[test]
    fn a_journal_of_another_revision_is_refused() {
        let journal = format!("{{\"journal_of_revision\":2}}\n{}", line(3, 4));
        assert!(follow(journal.as_bytes(), 3, AT).unwrap_err().contains("continues revision 2"));
    }

    #[test]
    fn a_torn_last_line_is_left_out() {
        let torn = line(4, 5);
        let journal = format!("{{\"journal_of_revision\":3}}\n{}{}", line(3, 4), &torn[..torn.len() - 1]);
        let (merged, clean) = follow(journal.as_bytes(), 3, AT).expect("follows");
        assert_eq!((merged.map(|m| m.revision), clean), (Some(4), false));
    }

    #[test]
    fn replay_stops_at_a_delta_that_does_not_follow() {
        let journal = format!("{{\"journal_of_revision\":3}}\n{}{}{}", line(3, 4), line(5, 6), line(6, 7));
        let (merged, clean) = follow(journal.as_bytes(), 3, AT).expect("follows");
        assert_eq!((merged.map(|m| m.revision), clean), (Some(4), false));
    }

    #[test]
    fn a_header_alone_is_a_clean_empty_journal() {
        assert!(matches!(follow(b"{\"journal_of_revision\":3}\n", 3, AT), Ok((None, true))));
    }

    #[test]
    fn a_journal_of_another_file_of_the_same_revision_is_refused() {
        let header = |at: Timestamp| format!("{{\"journal_of_revision\":3,\"generated_at\":\"{at}\"}}\n");
        let journal = header(AT) + &line(3, 4);
        assert!(matches!(follow(journal.as_bytes(), 3, AT), Ok((Some(_), true))));
        let restored = Timestamp::constant(1_700_000_001, 0);
        assert!(follow(journal.as_bytes(), 3, restored).unwrap_err().contains("another config.bin of revision 3"));
    }
}
