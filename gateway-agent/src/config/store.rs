//! The last good config on disk (`STATE_DIR/config.json`), so a restarted agent can serve
//! while the management server is down.
//!
//! The file is a protocol [`Snapshot`] in its JSON wire form: readable by people and tools,
//! and loaded by the same parser and compiler as the stream. It is written straight from the
//! compiled config (no wire-form copy of a million credentials in memory), to a temporary
//! file that is fsynced and renamed over the old one, so a crash leaves the old or the new
//! file, never a torn one. Its `usage` holds the agent's own counters for seeded periods.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use tollgate_protocol::{ApplicationState, CurrentUsage, KeyKind, PROTOCOL_VERSION};
use uuid::Uuid;

use super::Config;
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
