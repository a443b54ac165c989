//! Messages on the config stream (server → agent) and the agent's status report back.

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::key::KeyHash;
use crate::mock::ApiMocks;
use crate::routing::Routing;
use crate::snapshot::{Api, Application, Credential, Plan, Snapshot};

/// One line of the NDJSON config stream, tagged by `"type"`.
///
/// `Deserialize` is hand-written: when `type` is the first key (as we always serialise it)
/// the rest of the object is parsed straight into the variant, so a million-key snapshot
/// line is not first buffered into a generic tree as serde's derived internally tagged
/// enums do. Objects with `type` elsewhere still parse, via a slower buffered path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConfigMessage {
    /// The whole config; always the first message of a stream.
    Snapshot(Snapshot),
    Delta(Delta),
    Heartbeat(Heartbeat),
    /// A message type this agent does not know (sent by a newer server); skip it.
    /// Never sent.
    Unknown,
}

/// Changes on top of `base_revision` that produce `revision`. An agent whose applied revision
/// is not `base_revision` has missed something and must reconnect for a fresh snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub base_revision: u64,
    pub revision: u64,
    /// Applied in order; referential integrity holds after the last one, not in between.
    pub changes: Vec<Change>,
}

/// Sent when nothing changed for a while, so both ends notice a dead connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The server's current revision; an agent behind it has missed a delta.
    pub revision: u64,
    pub at: Timestamp,
}

/// One change in a [`Delta`], tagged by `"op"`. Upserts carry the whole object and replace
/// any object with the same id (credentials: the same hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    UpsertApi(Api),
    RemoveApi {
        id: Uuid,
    },
    UpsertPlan(Plan),
    RemovePlan {
        id: Uuid,
    },
    UpsertApplication(Application),
    /// Also drops the application's seeded usage and its credentials (the server revokes the
    /// ones it knows of too; an application rejected with keys left was removed alone).
    RemoveApplication {
        id: Uuid,
    },
    UpsertCredential(Credential),
    /// Immediate: the key stops working as soon as the agent applies the delta.
    RevokeCredential {
        hash: KeyHash,
    },
    /// The API's whole routing (feature `upstream_routing`): a variant of its own, so that an
    /// agent that cannot route refuses the delta instead of ignoring it.
    UpsertRouting(Routing),
    /// The API is back to its plain `upstreams`.
    RemoveRouting {
        api_id: Uuid,
    },
    /// Replaces an API's mocks (feature `mocks`).
    UpsertMocks(ApiMocks),
    /// The API has no operation in mock mode any more (feature `mocks`).
    RemoveMocks {
        api_id: Uuid,
    },
}

/// The agent's report (and heartbeat) to the server, so the server knows each agent's lag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub protocol_version: u32,
    /// The agent's own version, e.g. `0.1.0`.
    pub agent_version: String,
    /// Revision being enforced; `None` before the first snapshot.
    pub applied_revision: Option<u64>,
    /// The last revision the agent refused, if any; it keeps enforcing `applied_revision`.
    pub rejected: Option<Rejection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub revision: u64,
    /// Human-readable, e.g. a [`crate::ValidationError`] message.
    pub reason: String,
}

/// Why a delta cannot be applied to a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("delta applies on top of revision {base}, but the snapshot is at revision {current}")]
    WrongBase { base: u64, current: u64 },
    #[error("delta revision {revision} does not advance past {base}")]
    NotAdvancing { base: u64, revision: u64 },
}

impl Snapshot {
    /// Applies `delta` in place: the reference semantics of deltas (linear in the snapshot
    /// size per change; agents keep indexed state instead). Does not validate the result:
    /// call [`Snapshot::validate`] afterwards, on a copy if the old state must survive.
    pub fn apply(&mut self, delta: Delta) -> Result<(), DeltaError> {
        if delta.base_revision != self.revision {
            return Err(DeltaError::WrongBase { base: delta.base_revision, current: self.revision });
        }
        if delta.revision <= delta.base_revision {
            return Err(DeltaError::NotAdvancing { base: delta.base_revision, revision: delta.revision });
        }
        for change in delta.changes {
            match change {
                Change::UpsertApi(api) => upsert(&mut self.apis, api, |a| a.id),
                Change::RemoveApi { id } => {
                    self.apis.retain(|a| a.id != id);
                    self.routing.retain(|r| r.api_id != id);
                    self.mocks.retain(|m| m.api_id != id);
                }
                Change::UpsertPlan(plan) => upsert(&mut self.plans, plan, |p| p.id),
                Change::RemovePlan { id } => self.plans.retain(|p| p.id != id),
                Change::UpsertApplication(app) => upsert(&mut self.applications, app, |a| a.id),
                Change::RemoveApplication { id } => {
                    self.applications.retain(|a| a.id != id);
                    self.usage.retain(|u| u.application_id != id);
                    self.credentials.retain(|c| c.application_id != id);
                }
                Change::UpsertCredential(credential) => upsert(&mut self.credentials, credential, |c| c.hash),
                Change::RevokeCredential { hash } => self.credentials.retain(|c| c.hash != hash),
                Change::UpsertRouting(routing) => upsert(&mut self.routing, routing, |r| r.api_id),
                Change::RemoveRouting { api_id } => self.routing.retain(|r| r.api_id != api_id),
                Change::UpsertMocks(mocks) => upsert(&mut self.mocks, mocks, |m| m.api_id),
                Change::RemoveMocks { api_id } => self.mocks.retain(|m| m.api_id != api_id),
            }
        }
        self.declare_features();
        self.revision = delta.revision;
        Ok(())
    }
}

fn upsert<T, K: PartialEq>(items: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    let id = key(&item);
    match items.iter_mut().find(|existing| key(existing) == id) {
        Some(slot) => *slot = item,
        None => items.push(item),
    }
}

impl<'de> Deserialize<'de> for ConfigMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = ConfigMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a config message object with a `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigMessage, A::Error> {
        let Some(first) = map.next_key::<Cow<'de, str>>()? else {
            return Err(de::Error::missing_field("type"));
        };
        if first == "type" {
            let kind = map.next_value::<Cow<'de, str>>()?;
            let rest = MapAccessDeserializer::new(map);
            return match &*kind {
                "snapshot" => Snapshot::deserialize(rest).map(ConfigMessage::Snapshot),
                "delta" => Delta::deserialize(rest).map(ConfigMessage::Delta),
                "heartbeat" => Heartbeat::deserialize(rest).map(ConfigMessage::Heartbeat),
                _ => IgnoredAny::deserialize(rest).map(|_| ConfigMessage::Unknown),
            };
        }
        // Slow path: buffer the object, then dispatch on its `type`.
        let mut object = serde_json::Map::new();
        object.insert(first.into_owned(), map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            object.insert(key, value);
        }
        let kind = match object.remove("type") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(_) => return Err(de::Error::custom("`type` is not a string")),
            None => return Err(de::Error::missing_field("type")),
        };
        let rest = serde_json::Value::Object(object);
        let message = match kind.as_str() {
            "snapshot" => Snapshot::deserialize(rest).map(ConfigMessage::Snapshot),
            "delta" => Delta::deserialize(rest).map(ConfigMessage::Delta),
            "heartbeat" => Heartbeat::deserialize(rest).map(ConfigMessage::Heartbeat),
            _ => Ok(ConfigMessage::Unknown),
        };
        message.map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> ConfigMessage {
        ConfigMessage::Heartbeat(Heartbeat { revision: 3, at: Timestamp::UNIX_EPOCH })
    }

    #[test]
    fn type_tag_comes_first_and_round_trips() {
        let line = serde_json::to_string(&heartbeat()).expect("serialise");
        assert_eq!(line, r#"{"type":"heartbeat","revision":3,"at":"1970-01-01T00:00:00Z"}"#);
        assert_eq!(serde_json::from_str::<ConfigMessage>(&line).expect("parse"), heartbeat());
        let snapshot = ConfigMessage::Snapshot(Snapshot::new(1, Timestamp::UNIX_EPOCH));
        let line = serde_json::to_string(&snapshot).expect("serialise");
        assert!(line.starts_with(r#"{"type":"snapshot","protocol_version":1,"#), "{line}");
        assert_eq!(serde_json::from_str::<ConfigMessage>(&line).expect("parse"), snapshot);
    }

    #[test]
    fn tag_anywhere_still_parses() {
        let line = r#"{"revision":3,"at":"1970-01-01T00:00:00Z","type":"heartbeat","new":1}"#;
        assert_eq!(serde_json::from_str::<ConfigMessage>(line).expect("parse"), heartbeat());
    }

    #[test]
    fn unknown_types_and_fields_are_skipped() {
        let line = r#"{"type":"notice","text":{"nested":[1,2]}}"#;
        assert_eq!(serde_json::from_str::<ConfigMessage>(line).expect("parse"), ConfigMessage::Unknown);
        let line = r#"{"type":"heartbeat","revision":3,"future":{"x":[1]},"at":"1970-01-01T00:00:00Z"}"#;
        assert_eq!(serde_json::from_str::<ConfigMessage>(line).expect("parse"), heartbeat());
    }

    #[test]
    fn malformed_messages_are_errors() {
        for line in [
            r#"{}"#,
            r#"{"revision":3}"#,
            r#"{"type":7}"#,
            r#"{"revision":3,"type":7}"#,
            r#"{"type":"heartbeat","revision":"x","at":"1970-01-01T00:00:00Z"}"#,
            r#"{"type":"heartbeat","at":"1970-01-01T00:00:00Z"}"#,
            r#"[1]"#,
        ] {
            assert!(serde_json::from_str::<ConfigMessage>(line).is_err(), "{line}");
        }
    }

    #[test]
    fn apply_checks_revisions() {
        let mut snapshot = Snapshot::new(5, Timestamp::UNIX_EPOCH);
        let delta = |base, revision| Delta { base_revision: base, revision, changes: vec![] };
        assert_eq!(snapshot.apply(delta(4, 6)), Err(DeltaError::WrongBase { base: 4, current: 5 }));
        assert_eq!(snapshot.apply(delta(5, 5)), Err(DeltaError::NotAdvancing { base: 5, revision: 5 }));
        assert_eq!(snapshot.apply(delta(5, 9)), Ok(()));
        assert_eq!(snapshot.revision, 9);
    }
}
