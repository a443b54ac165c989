//! The last good config on disk (`STATE_DIR/config.bin`), so a restarted agent can serve
//! while the management server is down.
//!
//! The file is a protocol snapshot in the binary encoding of `tollgate_protocol::binary`
//! (about a fifth of the JSON's size), loaded by the same compiler as the binary stream.
//! It is written straight from the compiled config (no wire-form copy of a million
//! credentials in memory), to a temporary file that is fsynced and renamed over the old
//! one, so a crash leaves the old or the new file, never a torn one. Its usage frame holds
//! the agent's own counters for seeded periods. `tollgate-protocol`'s `decode_snapshot`
//! turns it back into the readable JSON form.
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
use tokio::sync::watch;
use tollgate_protocol::CurrentUsage;
use tollgate_protocol::binary::{ApplicationRecord, CredentialRecord, SnapshotHead, SnapshotWriter, preamble};

use super::binary::compile_reader;
use super::model::{Config, ConfigError};
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

/// The saved snapshot, compiled: `config.bin`, or an older agent's `config.json`.
/// Blocking.
pub(crate) fn read(state_dir: &Path) -> io::Result<Option<(Config, Vec<CurrentUsage>)>> {
    let compiled = |result: Result<_, ConfigError>| result.map(Some).map_err(io::Error::other);
    match std::fs::File::open(path(state_dir)) {
        Ok(file) => return compiled(compile_reader(io::BufReader::with_capacity(1 << 20, file))),
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        Err(_) => {}
    }
    match std::fs::read(state_dir.join(LEGACY_FILE_NAME)) {
        Ok(json) => {
            tracing::info!("upgrading the config.json of an older agent to config.bin");
            let Some((config, usage)) = compiled(parse_snapshot(&json))? else { return Ok(None) };
            // Once: from now on the binary copy is read (and the JSON one is removed).
            save(state_dir, &config, &usage)?;
            Ok(Some((config, usage)))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// The last good config from disk, compiled and with its counters seeded; `None` (logged)
/// if there is none or it cannot be used.
pub(crate) async fn load_standby(state_dir: &Path, limiter: &Arc<Limiter>) -> Option<Arc<Config>> {
    let dir = state_dir.to_owned();
    let limiter = limiter.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let Some((config, usage)) = read(&dir)? else {
            return Ok(None);
        };
        seed(&config, &usage, &limiter);
        tracing::info!(
            revision = config.revision,
            credentials = config.credentials.len(),
            total_ms = started.elapsed().as_millis() as u64,
            "loaded the last good config from disk"
        );
        Ok::<_, std::io::Error>(Some(Arc::new(config)))
    })
    .await;
    match loaded {
        Ok(Ok(config)) => config,
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

/// Writes each newly applied config to disk, and once more on stop so the counters of the
/// moment are kept for a restart. After a write it rests four times as long as the write
/// took (a million-key config takes seconds), coalescing the updates in between: the agent
/// resumes from the saved revision and the server resends what a crash lost.
pub(crate) async fn persist(
    state_dir: PathBuf,
    mut configs: watch::Receiver<Option<Arc<Config>>>,
    limiter: Arc<Limiter>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = configs.changed() => if changed.is_err() { break },
            _ = stop.changed() => break,
        }
        let latest = configs.borrow_and_update().clone();
        let Some(config) = latest else { continue };
        let took = write(&state_dir, config, &limiter, &clock).await;
        let rest = (took * 4).clamp(PERSIST_REST_MIN, PERSIST_REST_MAX);
        tokio::select! {
            _ = tokio::time::sleep(rest) => {}
            _ = stop.changed() => break,
        }
    }
    let latest = configs.borrow().clone();
    if let Some(config) = latest {
        write(&state_dir, config, &limiter, &clock).await;
    }
}

/// Bounds of the pause between two config writes.
const PERSIST_REST_MIN: Duration = Duration::from_millis(10);
const PERSIST_REST_MAX: Duration = Duration::from_secs(30);

/// Saves `config` with the current counters; returns how long it took.
async fn write(state_dir: &Path, config: Arc<Config>, limiter: &Arc<Limiter>, clock: &Clock) -> Duration {
    let dir = state_dir.to_owned();
    let limiter = limiter.clone();
    let now = clock.now();
    let revision = config.revision;
    let started = Instant::now();
    let written = tokio::task::spawn_blocking(move || {
        let usage = limiter.local.seeded_usage(now);
        save(&dir, &config, &usage)
    })
    .await;
    let took = started.elapsed();
    match written {
        Ok(Ok(())) => tracing::debug!(revision, took_ms = took.as_millis() as u64, "saved config to disk"),
        Ok(Err(err)) => tracing::error!(revision, error = %err, "cannot save config to disk"),
        Err(join) => tracing::error!(error = %join, "saving config crashed"),
    }
    took
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
