//! The last good config on disk (`STATE_DIR/config.json`), so a restarted agent can serve
//! while the management server is down.
//!
//! The file is a protocol [`Snapshot`] in its JSON wire form: readable by people and tools,
//! and loaded by the same parser and compiler as the stream. It is written straight from the
//! compiled config (no wire-form copy of a million credentials in memory), to a temporary
//! file that is fsynced and renamed over the old one, so a crash leaves the old or the new
//! file, never a torn one. Its `usage` holds the agent's own counters for seeded periods.
//!
//! Also the two tasks around the file: loading it at start ([`load_standby`]) and writing
//! each newly applied config ([`persist`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use tokio::sync::watch;
use tollgate_protocol::{ApplicationState, CurrentUsage, KeyKind, PROTOCOL_VERSION};
use uuid::Uuid;

use super::model::Config;
use super::parse::parse_snapshot;
use crate::clock::Clock;
use crate::enforce::Limiter;
use crate::enforce::seed::seed;
use crate::state;

pub(crate) const FILE_NAME: &str = "config.json";

pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Writes `config` (and the counters in `usage`) atomically. Blocking: run it off the
/// async workers.
pub(crate) fn save(state_dir: &Path, config: &Config, usage: &[CurrentUsage]) -> io::Result<()> {
    state::write_atomically(&path(state_dir), |file| {
        let mut writer = io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut writer, &SnapshotView { config, usage }).map_err(io::Error::other)?;
        writer.flush()
    })
}

/// The saved snapshot's JSON, if there is one (compile it with
/// [`super::parse_snapshot`]). Blocking.
pub(crate) fn read(state_dir: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path(state_dir)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Serialises a compiled config in the [`Snapshot`] wire shape.
struct SnapshotView<'a> {
    config: &'a Config,
    usage: &'a [CurrentUsage],
}

#[derive(Serialize)]
struct ApplicationView<'a> {
    id: Uuid,
    plan_id: Uuid,
    state: ApplicationState,
    app_id: Option<&'a str>,
}

#[derive(Serialize)]
struct CredentialView {
    hash: Hex,
    kind: KeyKind,
    application_id: Uuid,
    expires_at: Option<Timestamp>,
}

/// A key hash as 64 lowercase hex digits, as [`tollgate_protocol::KeyHash`] serialises,
/// without a formatter call per byte (a million of them add seconds to a save).
struct Hex([u8; 32]);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

/// A sequence serialised from an iterator, without collecting it.
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

impl Serialize for SnapshotView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let config = self.config;
        let catalog = &config.catalog;
        let mut out = serializer.serialize_struct("Snapshot", 9)?;
        out.serialize_field("protocol_version", &PROTOCOL_VERSION)?;
        out.serialize_field("revision", &config.revision)?;
        out.serialize_field("generated_at", &config.generated_at)?;
        out.serialize_field("apis", &catalog.source_apis)?;
        out.serialize_field("plans", &Seq(|| catalog.source_plans.iter().flatten()))?;
        out.serialize_field(
            "applications",
            &Seq(|| {
                config.apps.slots.iter().flatten().filter_map(|app| {
                    Some(ApplicationView {
                        id: app.id,
                        plan_id: catalog.plan(app.plan)?.id,
                        state: app.state,
                        app_id: app.app_id.as_deref(),
                    })
                })
            }),
        )?;
        out.serialize_field(
            "credentials",
            &Seq(|| {
                config.credentials.iter().filter_map(|(hash, entry)| {
                    Some(CredentialView {
                        hash: Hex(*hash),
                        kind: entry.kind,
                        application_id: config.apps.get(entry.app)?.id,
                        expires_at: (entry.expires_at != i64::MAX)
                            .then(|| Timestamp::from_second(entry.expires_at).ok())
                            .flatten(),
                    })
                })
            }),
        )?;
        out.serialize_field("usage", self.usage)?;
        out.end()
    }
}

/// The last good config from disk, compiled and with its counters seeded; `None` (logged)
/// if there is none or it cannot be used.
pub(crate) async fn load_standby(state_dir: &Path, limiter: &Arc<Limiter>) -> Option<Arc<Config>> {
    let dir = state_dir.to_owned();
    let limiter = limiter.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let Some(json) = read(&dir)? else {
            return Ok(None);
        };
        let read = started.elapsed();
        let (config, usage) = parse_snapshot(&json).map_err(std::io::Error::other)?;
        drop(json);
        seed(&config, &usage, &limiter);
        tracing::info!(
            revision = config.revision,
            credentials = config.credentials.len(),
            read_ms = read.as_millis() as u64,
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
    use tollgate_protocol::KeyHash;

    use super::*;

    #[test]
    fn hashes_serialise_as_the_protocol_does() {
        let hash = KeyHash::of("tg_uk_example");
        assert_eq!(serde_json::to_string(&Hex(hash.0)).expect("json"), serde_json::to_string(&hash).expect("json"));
    }
}
