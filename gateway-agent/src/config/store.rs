//! The last good config on disk (`STATE_DIR/config.bin`), so a restarted agent can serve
//! while the management server is down.
//!
//! The file is a protocol snapshot in the binary encoding of `tollgate_protocol::binary`
//! (about a fifth of the JSON's size), loaded by the same compiler as the binary stream.
//! It is written straight from the compiled config (no wire-form copy of a million
//! credentials in memory), to a temporary file that is fsynced and renamed over the old
//! one, so a crash leaves the old or the new file, never a torn one. Its usage frame holds
//! the agent's own counters for seeded periods. `tollgate-protocol`'s `decode_snapshot`
//! turns it back into the readable JSON form. Deltas applied since are appended to
//! `config.journal` (journal.rs) rather than rewriting the file.
//!
//! Agents before the binary form kept `config.json`; it is read once when no `config.bin`
//! exists, and removed after the first binary save.
//!
//! Also the two tasks around the file: loading it at start ([`load_standby`]) and writing
//! each newly applied config ([`persist`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tollgate_protocol::CurrentUsage;
use tollgate_protocol::binary::{ApplicationRecord, CredentialRecord, SnapshotHead, SnapshotWriter, preamble};

use super::binary::compile_reader;
use super::journal::{self, OnDisk};
use super::model::Config;
use super::parse::parse_snapshot;
use crate::clock::Clock;
use crate::enforce::Limiter;
use crate::enforce::seed::seed;
use crate::state;

pub(crate) const FILE_NAME: &str = "config.bin";
/// What agents before the binary form saved; read once for the upgrade.
pub(crate) const LEGACY_FILE_NAME: &str = "config.json";

pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Writes `config` (and the counters in `usage`) atomically. Blocking: run it off the
/// async workers.
pub(crate) fn save(state_dir: &Path, config: &Config, usage: &[CurrentUsage]) -> io::Result<()> {
    state::write_atomically(&path(state_dir), |file| {
        let mut writer = io::BufWriter::with_capacity(1 << 20, file);
        writer.write_all(&preamble())?;
        let writer = write_snapshot(config, usage, writer).map_err(io::Error::other)?;
        writer.into_inner().map_err(|e| e.into_error())?.flush()
    })?;
    // The binary copy is in place: the JSON one of an older agent is stale now.
    match std::fs::remove_file(state_dir.join(LEGACY_FILE_NAME)) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// A compiled config in the binary snapshot encoding. Slots left empty by deltas are
/// skipped, so plans and applications are renumbered densely on the way out.
fn write_snapshot<W: Write>(
    config: &Config,
    usage: &[CurrentUsage],
    out: W,
) -> Result<W, tollgate_protocol::binary::BinaryError> {
    let catalog = &config.catalog;
    // The lowest version that applies it, as a server writes it.
    let requires = tollgate_protocol::Snapshot::features_of(&catalog.source_routing, &catalog.source_mocks);
    let mut writer = SnapshotWriter::new(out);
    writer.head(&SnapshotHead {
        protocol_version: tollgate_protocol::features::version_for(&requires),
        revision: config.revision,
        generated_at: config.generated_at,
        requires,
    })?;
    let plans: Vec<_> = catalog.source_plans.iter().flatten().cloned().collect();
    writer.catalog(&catalog.source_apis, &plans, &catalog.source_routing, &catalog.source_mocks)?;
    let mut plan_index = vec![u32::MAX; catalog.source_plans.len()];
    for (dense, slot) in
        catalog.source_plans.iter().enumerate().filter(|(_, p)| p.is_some()).map(|(i, _)| i).enumerate()
    {
        plan_index[slot] = dense as u32;
    }
    let mut app_index = vec![u32::MAX; config.apps.slots.len()];
    let mut next = 0u32;
    for (slot, app) in config.apps.slots.iter().enumerate() {
        let Some(app) = app else { continue };
        let Some(&plan) = plan_index.get(app.plan as usize).filter(|&&p| p != u32::MAX) else { continue };
        writer.application(&ApplicationRecord { id: app.id, plan, state: app.state, app_id: app.app_id.as_deref() })?;
        app_index[slot] = next;
        next += 1;
    }
    for (hash, entry) in config.credentials.iter() {
        let Some(&application) = app_index.get(entry.app as usize).filter(|&&a| a != u32::MAX) else { continue };
        let expires_at =
            (entry.expires_at != i64::MAX).then(|| Timestamp::from_second(entry.expires_at).ok()).flatten();
        writer.credential(&CredentialRecord { hash: *hash, kind: entry.kind, application, expires_at })?;
    }
    writer.usage(usage)?;
    writer.finish()
}

/// Rewrites `config.bin` and starts its journal afresh; returns what the disk then holds.
/// Blocking.
fn rewrite(state_dir: &Path, config: &Config, usage: &[CurrentUsage]) -> io::Result<OnDisk> {
    replace(state_dir, config.revision, config.generated_at, || save(state_dir, config, usage))
}

/// `save`s a new `config.bin` of `revision` and `generated_at`, then starts its journal.
/// The old journal stays until the new file is in place: a write that fails (a full disk)
/// or is cut short leaves the old file with every delta journaled since, and a crash right
/// after the rename leaves a journal naming another file, which replay ignores.
fn replace(
    state_dir: &Path,
    revision: u64,
    generated_at: Timestamp,
    save: impl FnOnce() -> io::Result<()>,
) -> io::Result<OnDisk> {
    save()?;
    let journal_bytes = journal::start(state_dir, revision, generated_at)?;
    Ok(OnDisk { revision, generated_at, journal_bytes: Some(journal_bytes) })
}

/// A config read back from the state directory.
pub(crate) struct Loaded {
    pub config: Config,
    pub usage: Vec<CurrentUsage>,
    /// What the disk holds, if the next delta can be appended to it.
    pub on_disk: Option<OnDisk>,
}

/// The saved snapshot, compiled, with its journal replayed: `config.bin`, or an older
/// agent's `config.json`. Blocking.
pub(crate) fn read(state_dir: &Path) -> io::Result<Option<Loaded>> {
    match std::fs::File::open(path(state_dir)) {
        Ok(file) => {
            let (config, usage) =
                compile_reader(io::BufReader::with_capacity(1 << 20, file)).map_err(io::Error::other)?;
            let (config, on_disk) = journal::replay(state_dir, config);
            return Ok(Some(Loaded { config, usage, on_disk }));
        }
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        Err(_) => {}
    }
    match std::fs::read(state_dir.join(LEGACY_FILE_NAME)) {
        Ok(json) => {
            tracing::info!("upgrading the config.json of an older agent to config.bin");
            let (config, usage) = parse_snapshot(&json).map_err(io::Error::other)?;
            // Once: from now on the binary copy is read (and the JSON one is removed).
            let on_disk = rewrite(state_dir, &config, &usage)?;
            Ok(Some(Loaded { config, usage, on_disk: Some(on_disk) }))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// The last good config from disk, compiled and with its counters seeded, and what the
/// disk holds; `None` (logged) if there is none or it cannot be used.
pub(crate) async fn load_standby(state_dir: &Path, limiter: &Arc<Limiter>) -> Option<(Arc<Config>, Option<OnDisk>)> {
    let dir = state_dir.to_owned();
    let limiter = limiter.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let Some(Loaded { config, usage, on_disk }) = read(&dir)? else {
            return Ok(None);
        };
        seed(&config, &usage, &limiter);
        tracing::info!(
            revision = config.revision,
            credentials = config.credentials.len(),
            total_ms = started.elapsed().as_millis() as u64,
            "loaded the last good config from disk"
        );
        Ok::<_, std::io::Error>(Some((Arc::new(config), on_disk)))
    })
    .await;
    match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(err)) => {
            tracing::error!(path = %path(state_dir).display(), error = %err, "cannot use the saved config");
            None
        }
        Err(join) => {
            tracing::error!(error = %join, "loading the saved config crashed");
            None
        }
    }
}

/// A newly applied config, for [`persist`].
pub(crate) enum Save {
    /// A whole new config (a snapshot): `config.bin` is rewritten.
    Whole(Arc<Config>),
    /// The config before it with `delta` (its JSON) applied: appended to the journal.
    Delta { config: Arc<Config>, base_revision: u64, delta: Vec<u8> },
}

impl Save {
    pub(crate) fn config(&self) -> &Arc<Config> {
        match self {
            Save::Whole(config) | Save::Delta { config, .. } => config,
        }
    }
}

/// What one round of [`persist`] writes.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    Append { deltas: Vec<Vec<u8>>, revision: u64 },
    Whole,
}

/// Appends when every save is a delta continuing what the disk holds and the journal stays
/// under its limit; otherwise the whole latest config is written.
fn plan(on_disk: Option<OnDisk>, saves: Vec<Save>) -> Round {
    let Some(on_disk) = on_disk else { return Round::Whole };
    let mut at = on_disk.revision;
    let mut size = on_disk.journal_bytes.unwrap_or(0);
    let mut deltas = Vec::with_capacity(saves.len());
    for save in saves {
        match save {
            Save::Delta { config, base_revision, delta } if base_revision == at => {
                size += delta.len() as u64 + 1;
                at = config.revision;
                deltas.push(delta);
            }
            _ => return Round::Whole,
        }
    }
    if size > journal::LIMIT { Round::Whole } else { Round::Append { deltas, revision: at } }
}

/// Writes each newly applied config to disk: a delta is appended to the journal at once; a
/// snapshot (or a journal grown past its limit) rewrites `config.bin`, and so does stop,
/// so the counters of the moment are kept for a restart. After a rewrite the next one
/// waits four times as long as it took (a million-key config takes a second), coalescing
/// the updates in between: the agent resumes from the saved revision and the server
/// resends what a crash lost. `loaded` and `on_disk` are what the state directory held at
/// start.
pub(crate) async fn persist(
    state_dir: PathBuf,
    mut saves: mpsc::UnboundedReceiver<Save>,
    loaded: Option<Arc<Config>>,
    mut on_disk: Option<OnDisk>,
    limiter: Arc<Limiter>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    // The config loaded at start is the one to save at stop if no other comes: a run that
    // the server only confirmed still counted calls, and the next run must know of them
    // (it would otherwise hand out a day's or a month's quota again).
    let mut latest: Option<Arc<Config>> = loaded;
    let mut next_rewrite = Instant::now();
    'saving: loop {
        let first = tokio::select! {
            save = saves.recv() => match save { Some(save) => save, None => break },
            _ = stop.changed() => break,
        };
        let mut pending = vec![first];
        while let Ok(save) = saves.try_recv() {
            pending.push(save);
        }
        latest = pending.last().map(|save| save.config().clone());
        match plan(on_disk, pending) {
            Round::Append { deltas, revision } => on_disk = append(&state_dir, on_disk, deltas, revision).await,
            Round::Whole => {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_rewrite.into()) => {}
                    _ = stop.changed() => break 'saving,
                }
                // Whatever arrived while waiting is in the rewrite too.
                while let Ok(save) = saves.try_recv() {
                    latest = Some(save.config().clone());
                }
                let Some(config) = latest.clone() else { continue };
                let (written, took) = write(&state_dir, config, &limiter, &clock).await;
                on_disk = written;
                next_rewrite = Instant::now() + (took * 4).clamp(REWRITE_REST_MIN, REWRITE_REST_MAX);
            }
        }
    }
    while let Ok(save) = saves.try_recv() {
        latest = Some(save.config().clone());
    }
    if let Some(config) = latest {
        write(&state_dir, config, &limiter, &clock).await;
    }
}

/// Bounds of the pause between two rewrites of `config.bin`.
const REWRITE_REST_MIN: Duration = Duration::from_millis(10);
const REWRITE_REST_MAX: Duration = Duration::from_secs(30);

/// Appends `deltas` to the journal (starting it if there is none); returns what the disk
/// holds then (`None` after a failure: the next change rewrites the file).
async fn append(state_dir: &Path, on_disk: Option<OnDisk>, deltas: Vec<Vec<u8>>, revision: u64) -> Option<OnDisk> {
    let on_disk = on_disk?;
    let dir = state_dir.to_owned();
    let appended = tokio::task::spawn_blocking(move || {
        let started = match on_disk.journal_bytes {
            Some(bytes) => bytes,
            None => journal::start(&dir, on_disk.revision, on_disk.generated_at)?,
        };
        Ok::<_, io::Error>(started + journal::append(&dir, &deltas)?)
    })
    .await;
    match appended {
        Ok(Ok(bytes)) => {
            tracing::debug!(revision, journal_bytes = bytes, "journaled config delta");
            Some(OnDisk { revision, generated_at: on_disk.generated_at, journal_bytes: Some(bytes) })
        }
        Ok(Err(err)) => {
            tracing::error!(revision, error = %err, "cannot append to config.journal");
            None
        }
        Err(join) => {
            tracing::error!(error = %join, "journaling a config delta crashed");
            None
        }
    }
}

/// Rewrites `config.bin` from `config` with the current counters; returns what the disk
/// holds then and how long it took.
async fn write(
    state_dir: &Path,
    config: Arc<Config>,
    limiter: &Arc<Limiter>,
    clock: &Clock,
) -> (Option<OnDisk>, Duration) {
    let dir = state_dir.to_owned();
    let limiter = limiter.clone();
    let now = clock.now();
    let revision = config.revision;
    let started = Instant::now();
    let written = tokio::task::spawn_blocking(move || {
        let usage = limiter.local.seeded_usage(now);
        rewrite(&dir, &config, &usage)
    })
    .await;
    let took = started.elapsed();
    let on_disk = match written {
        Ok(Ok(on_disk)) => {
            tracing::debug!(revision, took_ms = took.as_millis() as u64, "saved config to disk");
            Some(on_disk)
        }
        Ok(Err(err)) => {
            tracing::error!(revision, error = %err, "cannot save config to disk");
            None
        }
        Err(join) => {
            tracing::error!(error = %join, "saving config crashed");
            None
        }
    };
    (on_disk, took)
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::Snapshot;
    use tollgate_protocol::binary::decode_snapshot;

    use super::*;

    fn fixtures() -> [Snapshot; 2] {
        [
            serde_json::from_str(include_str!("../../../protocol/tests/fixtures/snapshot.json")).expect("fixture"),
            serde_json::from_str(include_str!("../../../protocol/tests/fixtures/snapshot_with_mocks.json"))
                .expect("fixture"),
        ]
    }

    fn config_at(revision: u64) -> Arc<Config> {
        let [mut snapshot, _] = fixtures();
        snapshot.revision = revision;
        Arc::new(crate::config::compile_snapshot(snapshot).expect("compiles").0)
    }

    fn delta(base_revision: u64, revision: u64, bytes: usize) -> Save {
        Save::Delta { config: config_at(revision), base_revision, delta: vec![b'x'; bytes] }
    }

    #[test]
    fn deltas_that_continue_the_disk_are_appended() {
        let on_disk = OnDisk { revision: 3, generated_at: Timestamp::UNIX_EPOCH, journal_bytes: Some(100) };
        let round = plan(Some(on_disk), vec![delta(3, 4, 10), delta(4, 6, 20)]);
        assert_eq!(round, Round::Append { deltas: vec![vec![b'x'; 10], vec![b'x'; 20]], revision: 6 });
    }

    #[test]
    fn a_snapshot_a_gap_or_an_unknown_disk_rewrites_the_file() {
        let on_disk = OnDisk { revision: 3, generated_at: Timestamp::UNIX_EPOCH, journal_bytes: None };
        assert_eq!(plan(Some(on_disk), vec![delta(3, 4, 10), Save::Whole(config_at(9))]), Round::Whole);
        assert_eq!(plan(Some(on_disk), vec![delta(4, 5, 10)]), Round::Whole);
        assert_eq!(plan(None, vec![delta(3, 4, 10)]), Round::Whole);
    }

    #[test]
    fn a_journal_past_its_limit_rewrites_the_file() {
        let on_disk =
            OnDisk { revision: 3, generated_at: Timestamp::UNIX_EPOCH, journal_bytes: Some(journal::LIMIT - 10) };
        // Each delta takes its length and a newline.
        assert!(matches!(plan(Some(on_disk), vec![delta(3, 4, 9)]), Round::Append { .. }));
        assert_eq!(plan(Some(on_disk), vec![delta(3, 4, 10)]), Round::Whole);
    }

    /// A disk that is full when `config.bin` is rewritten: the old file and its journal
    /// must both survive, or a restart would serve the old file without the revocations
    /// journaled after it.
    #[test]
    fn a_rewrite_that_fails_keeps_the_old_files_journal() {
        let dir = std::env::temp_dir().join(format!("tollgate-store-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let journal = dir.join(journal::FILE_NAME);
        let at = Timestamp::UNIX_EPOCH;
        journal::start(&dir, 3, at).expect("start");
        journal::append(&dir, &[b"{\"delta\":4}".to_vec()]).expect("append");
        let before = std::fs::read(&journal).expect("journal");
        let full = replace(&dir, 9, at, || Err(io::Error::from(io::ErrorKind::StorageFull)));
        assert_eq!(full.unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(std::fs::read(&journal).expect("journal kept"), before);

        let on_disk = replace(&dir, 9, at, || Ok(())).expect("replaced");
        assert_eq!(
            (on_disk.revision, on_disk.journal_bytes),
            (9, Some(std::fs::metadata(&journal).expect("new").len()))
        );
        assert!(std::fs::read_to_string(&journal).expect("journal").starts_with("{\"journal_of_revision\":9,"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// What the agent saves decodes to the snapshot it compiled (credentials in the
    /// table's order, which is not the server's).
    #[test]
    fn the_saved_file_is_the_snapshot_in_binary() {
        for snapshot in fixtures() {
            saved_file_is(snapshot);
        }
    }

    fn saved_file_is(snapshot: Snapshot) {
        let (config, usage) = crate::config::compile_snapshot(snapshot.clone()).expect("compiles");
        let mut bytes = preamble().to_vec();
        bytes = write_snapshot(&config, &usage, bytes).expect("write");
        let mut saved = decode_snapshot(&bytes).expect("decodes");
        let mut expected = snapshot;
        for s in [&mut saved, &mut expected] {
            s.credentials.sort_by_key(|c| c.hash.0);
        }
        assert_eq!(saved, expected);
    }
}
