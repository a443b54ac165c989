//! Binary snapshot frames → compiled [`Config`], as they arrive.
//!
//! The stream hands frames over while the body is still downloading (the config stream)
//! or all at once (the disk copy); either way each application and credential record is
//! checked and compiled as it is read, with no wire-form copy in between. Records name
//! their plan and application by index, so a credential costs no id lookup: its
//! application's slot is its index. The checks are those of `Snapshot::validate`, as in
//! parse.rs for JSON (a test holds the two to the same verdicts).

use std::sync::Arc;

use tollgate_protocol::binary::{BinaryError, Frame, FrameKind, read_frame, read_preamble};
use tollgate_protocol::{CurrentUsage, KeyHash, ValidationError};

use super::compile::{build_catalog, check_usage, check_version};
use super::cow::{CowIndex, CowVec};
use super::model::{AppEntry, Apps, Catalog, Config, ConfigError, CredentialEntry};

impl From<BinaryError> for ConfigError {
    fn from(err: BinaryError) -> ConfigError {
        ConfigError::Unreadable(err.to_string())
    }
}

/// Compiles the frames of one snapshot, from its head frame to its end frame; frames of
/// other kinds (keep-alives) are skipped.
pub(crate) fn compile_frames(
    frames: impl IntoIterator<Item = Frame>,
) -> Result<(Config, Vec<CurrentUsage>), ConfigError> {
    let mut frames = frames.into_iter().filter(|f| !matches!(f.kind, FrameKind::KeepAlive | FrameKind::Message));
    let mut next = |what: FrameKind| -> Result<Frame, ConfigError> {
        let frame = frames.next().ok_or(BinaryError::Truncated)?;
        if frame.kind != what {
            return Err(unexpected(&frame, what));
        }
        Ok(frame)
    };
    let head = next(FrameKind::Head)?.head()?;
    check_version(head.protocol_version, &head.requires)?;
    let catalog = next(FrameKind::Catalog)?.catalog()?;
    let catalog =
        build_catalog(catalog.apis, catalog.plans.into_iter().map(Some).collect(), catalog.routing, catalog.mocks)?;
    let mut apps = AppsFromRecords::new(&catalog);
    let mut credentials: Vec<([u8; 32], CredentialEntry)> = Vec::new();
    let mut usage = Vec::new();
    let mut apps_done: Option<Apps> = None;
    loop {
        let frame = frames.next().ok_or(BinaryError::Truncated)?;
        match frame.kind {
            FrameKind::Applications if apps_done.is_none() => {
                for record in frame.applications() {
                    apps.push(record?)?;
                }
            }
            FrameKind::Credentials => {
                let apps = match &apps_done {
                    Some(apps) => apps,
                    None => apps_done.insert(std::mem::replace(&mut apps, AppsFromRecords::new(&catalog)).finish()?),
                };
                let count = apps.slots.len();
                let records = frame.credentials()?;
                if credentials.capacity() == 0 {
                    // Most snapshots carry about as many keys as applications, or more.
                    credentials.reserve(count.max(1024));
                }
                for record in records {
                    let record = record?;
                    let index = credentials.len();
                    if record.application as usize >= count {
                        return Err(ValidationError::new(
                            format!("credentials[{index}].application_id"),
                            format!("unknown application index {}", record.application),
                        )
                        .into());
                    }
                    let expires = CredentialEntry::expires_at(record.expires_at);
                    credentials.push((record.hash, CredentialEntry::new(expires, record.application, record.kind)));
                }
            }
            FrameKind::Usage => usage.extend(frame.usage()?),
            FrameKind::End => {
                let end = frame.end()?;
                let apps = match apps_done {
                    Some(apps) => apps,
                    None => apps.finish()?,
                };
                if end.applications != apps.slots.len() as u64 || end.credentials != credentials.len() as u64 {
                    return Err(BinaryError::Malformed {
                        what: "snapshot",
                        message: "record counts differ from the end frame".into(),
                    }
                    .into());
                }
                let credentials = CowIndex::build_unique(credentials).map_err(|hash| {
                    ValidationError::new("credentials", format!("duplicate credential {}", KeyHash(hash)))
                })?;
                let config = Config {
                    revision: head.revision,
                    generated_at: head.generated_at,
                    catalog: Arc::new(catalog),
                    apps,
                    credentials,
                };
                check_usage(&usage, &config)?;
                return Ok((config, usage));
            }
            _ => return Err(unexpected(&frame, FrameKind::End)),
        }
    }
}

fn unexpected(frame: &Frame, wanted: FrameKind) -> ConfigError {
    ConfigError::Unreadable(format!("a {:?} frame where a {wanted:?} frame belongs", frame.kind))
}

/// Compiles a binary snapshot read from `input` (the disk copy) one frame at a time, so
/// the file is never held whole next to what it compiles into.
pub(crate) fn compile_reader(mut input: impl std::io::Read) -> Result<(Config, Vec<CurrentUsage>), ConfigError> {
    // Files of older agents (format versions 1 and 2) load as well; the next save is version 3.
    let format = read_preamble(&mut input)?;
    let mut failed = None;
    let frames = std::iter::from_fn(|| match read_frame(&mut input, format) {
        Ok(frame) => frame,
        Err(err) => {
            failed = Some(err);
            None
        }
    });
    let compiled = compile_frames(frames);
    // A read error shows up as a cut snapshot; name the read error instead.
    match failed {
        Some(err) => Err(err.into()),
        None => compiled,
    }
}

#[cfg(test)]
fn compile_bytes(bytes: &[u8]) -> Result<(Config, Vec<CurrentUsage>), ConfigError> {
    compile_reader(bytes)
}

/// Applications from records: the plan is an index (a slot of the catalog, which a
/// snapshot fills densely), checked against the catalog.
struct AppsFromRecords<'a> {
    catalog: &'a Catalog,
    slots: Vec<Option<AppEntry>>,
    by_id: Vec<(uuid::Uuid, u32)>,
    by_app_id: Vec<(Box<str>, u32)>,
}

impl<'a> AppsFromRecords<'a> {
    fn new(catalog: &'a Catalog) -> Self {
        AppsFromRecords { catalog, slots: Vec::new(), by_id: Vec::new(), by_app_id: Vec::new() }
    }

    fn push(&mut self, record: tollgate_protocol::binary::ApplicationRecord<'_>) -> Result<(), ValidationError> {
        let index = self.slots.len();
        let slot = u32::try_from(index).map_err(|_| ValidationError::new("applications", "too many applications"))?;
        let at = |field: &str| format!("applications[{index}].{field}");
        if self.catalog.plan(record.plan).is_none() {
            return Err(ValidationError::new(at("plan_id"), format!("unknown plan index {}", record.plan)));
        }
        if record.app_id == Some("") {
            return Err(ValidationError::new(at("app_id"), "empty app_id"));
        }
        self.by_id.push((record.id, slot));
        let app_id: Option<Box<str>> = record.app_id.map(Box::from);
        if let Some(app_id) = &app_id {
            self.by_app_id.push((app_id.clone(), slot));
        }
        self.slots.push(Some(AppEntry { id: record.id, plan: record.plan, state: record.state, app_id }));
        Ok(())
    }

    fn finish(self) -> Result<Apps, ValidationError> {
        let by_id = CowIndex::build_unique(self.by_id)
            .map_err(|id| ValidationError::new("applications", format!("duplicate application {id}")))?;
        let by_app_id = CowIndex::build_unique(self.by_app_id)
            .map_err(|app_id| ValidationError::new("applications", format!("duplicate app_id {app_id}")))?;
        Ok(Apps { slots: CowVec::from_vec(self.slots), by_id, by_app_id })
    }
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::binary::encode_snapshot;
    use tollgate_protocol::{KeyKind, Snapshot};

    use super::*;

    fn fixture() -> Snapshot {
        let text = include_str!("../../../protocol/tests/fixtures/snapshot.json");
        serde_json::from_str(text).expect("fixture")
    }

    /// The binary compiler reaches the protocol's verdict on the same mutations.
    #[test]
    fn agrees_with_snapshot_validate() {
        type Mutation = fn(&mut Snapshot);
        let mutations: Vec<(&str, Mutation)> = vec![
            ("valid", |_| {}),
            ("version", |s| s.protocol_version = 99),
            ("duplicate application", |s| {
                let app = s.applications[0].clone();
                s.applications.push(app);
            }),
            ("empty app_id", |s| s.applications[0].app_id = Some(String::new())),
            ("duplicate app_id", |s| s.applications[0].app_id = s.applications[1].app_id.clone()),
            ("duplicate credential", |s| {
                let credential = s.credentials[0].clone();
                s.credentials.push(credential);
            }),
            ("usage of unknown metric", |s| s.usage[0].metric = uuid::Uuid::from_u128(999)),
            ("bad pattern", |s| s.apis[0].mapping_rules[0].pattern = "/{x".into()),
        ];
        for (name, mutate) in mutations {
            let mut snapshot = fixture();
            mutate(&mut snapshot);
            let expected = snapshot.validate();
            let bytes = encode_snapshot(&snapshot).expect("encode");
            let compiled = compile_bytes(&bytes);
            assert_eq!(compiled.is_ok(), expected.is_ok(), "{name}: {:?} vs {expected:?}", compiled.err());
        }
    }

    #[test]
    fn compiles_every_record() {
        let snapshot = fixture();
        let (config, usage) = compile_bytes(&encode_snapshot(&snapshot).expect("encode")).expect("compiles");
        assert_eq!(config.revision, snapshot.revision);
        assert_eq!(config.credentials.len(), snapshot.credentials.len());
        assert_eq!(usage, snapshot.usage);
        for credential in &snapshot.credentials {
            let entry = config.credentials.get(&credential.hash.0).expect("key");
            let app = config.apps.get(entry.app).expect("app");
            assert_eq!(app.id, credential.application_id);
            assert_eq!(entry.kind, credential.kind);
            assert_eq!(entry.expires_at, CredentialEntry::expires_at(credential.expires_at));
        }
        assert!(snapshot.credentials.iter().any(|c| c.kind == KeyKind::AppKey));
    }
}
