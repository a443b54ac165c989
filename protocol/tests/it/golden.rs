//! Golden fixtures lock the wire format: every message round-trips through its
//! fixture (`UPDATE_FIXTURES=1` regenerates), and older fixtures keep parsing.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_protocol::{
    AgentStatus, ConfigMessage, CredentialUse, Delta, KeyHash, LimitsReport, Period, RuleOrigin, SecretKey, Snapshot,
    UsageAck, UsageBatch, UsageEntry, Window,
};

const REGENERATE: &str = "if the change is intentional, regenerate with `UPDATE_FIXTURES=1 cargo test -p tollgate-protocol --test it` and review the diff";

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn updating() -> bool {
    std::env::var_os("UPDATE_FIXTURES").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Parses a fixture, serialises it again and demands the same JSON value *and* the same
/// pretty-printed text, so dropped, renamed or reordered fields all fail.
pub fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).expect("read fixture");
    let value: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}; {REGENERATE}"));
    let again = serde_json::to_string_pretty(&value).expect("serialise") + "\n";
    if updating() {
        std::fs::write(&path, &again).expect("write fixture");
        return value;
    }
    let expected: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    let actual: serde_json::Value = serde_json::from_str(&again).expect("output is JSON");
    assert_eq!(
        actual, expected,
        "{name}: a field was dropped, renamed or retyped on the way through the types; {REGENERATE}"
    );
    assert_eq!(again, text, "{name}: same JSON value but different text (field order or formatting); {REGENERATE}");
    value
}

#[test]
fn snapshot_round_trips_and_validates() {
    let snapshot: Snapshot = round_trip("snapshot.json");
    snapshot.validate().expect("snapshot fixture is valid");
    // Nothing newer than version 1 is used, so agents of version 1 still take it.
    assert_eq!(snapshot.protocol_version, tollgate_protocol::BASE_PROTOCOL_VERSION);
    assert_eq!(snapshot.protocol_version, snapshot.required_version());
}

#[test]
fn a_deprecated_api_carries_when_it_was_deprecated_and_an_older_servers_snapshot_still_parses() {
    let deprecation = |snapshot: &Snapshot| {
        snapshot.apis.iter().find_map(|api| match &api.lifecycle {
            tollgate_protocol::Lifecycle::Deprecated { since, .. } => Some(*since),
            _ => None,
        })
    };
    let newer: Snapshot = round_trip("snapshot_routing.json");
    assert_eq!(deprecation(&newer), Some(Some("2025-11-01T09:30:00Z".parse().expect("time"))));
    let older: Snapshot = round_trip("snapshot.json");
    assert_eq!(deprecation(&older), Some(None), "written before the time was sent");
}

#[test]
fn a_snapshot_with_mocks_needs_version_2() {
    let snapshot: Snapshot = round_trip("snapshot_with_mocks.json");
    snapshot.validate().expect("snapshot fixture is valid");
    assert_eq!(snapshot.protocol_version, tollgate_protocol::PROTOCOL_VERSION);
    assert_eq!(snapshot.required_version(), 2);
    assert_eq!(snapshot.requires, [tollgate_protocol::FEATURE_MOCKS]);
    // An agent of version 1 refuses any version but its own, so it refuses this snapshot by
    // name rather than proxy mocked operations; claiming version 1 with mocks is invalid, and
    // so is leaving the feature out.
    let mut claims_v1 = snapshot.clone();
    claims_v1.protocol_version = 1;
    let error = claims_v1.validate().expect_err("mocks need version 2").to_string();
    assert!(error.starts_with("requires: the snapshot uses mocks without requiring it"), "{error}");
    let mut undeclared = snapshot.clone();
    undeclared.requires.clear();
    assert!(undeclared.validate().is_err());
    let mut future = snapshot.clone();
    future.protocol_version = tollgate_protocol::PROTOCOL_VERSION + 1;
    assert!(future.validate().is_err());
    // The mocks travel before the applications, so an agent compiles its catalog once.
    let line = serde_json::to_string(&ConfigMessage::Snapshot(snapshot)).expect("serialise");
    assert!(line.find("\"mocks\"").expect("mocks") < line.find("\"applications\"").expect("applications"));
}

#[test]
fn mocks_are_validated_against_their_api() {
    let snapshot: Snapshot = round_trip("snapshot_with_mocks.json");
    let broken = |edit: &dyn Fn(&mut Snapshot)| {
        let mut s = snapshot.clone();
        edit(&mut s);
        s.validate().expect_err("invalid").to_string()
    };
    assert!(broken(&|s| s.mocks[0].api_id = uuid::Uuid::nil()).starts_with("mocks[0].api_id: unknown API"));
    assert!(
        broken(&|s| s.mocks[0].operations[0].metric = s.apis[1].metrics[0].id)
            .starts_with("mocks[0].operations[0].metric")
    );
    assert!(
        broken(&|s| s.mocks[0].operations[0].responses[0].status = "20".into())
            .starts_with("mocks[0].operations[0].responses[0].status")
    );
    assert!(
        broken(&|s| s.mocks[0].operations[0].responses[0].content[0].media_type = "json".into())
            .ends_with("is not a media type")
    );
    // An API with mocks needs no upstream, and a draft with mocks claims its route.
    let mut s = snapshot.clone();
    s.apis[0].upstreams.clear();
    s.validate().expect("a mocked API may have no backend yet");
    s.apis[0].lifecycle = tollgate_protocol::Lifecycle::Draft;
    s.validate().expect("a mocked draft is valid");
}

#[test]
fn mock_deltas_apply_to_the_snapshot_with_mocks() {
    let message: ConfigMessage = round_trip("delta_mocks.json");
    let ConfigMessage::Delta(delta) = message else {
        panic!("delta_mocks.json is a delta message");
    };
    let mut snapshot: Snapshot = round_trip("snapshot_with_mocks.json");
    let mut upserted = snapshot.clone();
    let mut first = delta.clone();
    first.changes.truncate(1);
    upserted.apply(first).expect("upsert applies");
    upserted.validate().expect("valid");
    assert_eq!(upserted.mocks[0].operations.len(), 1);
    snapshot.apply(delta).expect("delta applies");
    snapshot.validate().expect("valid");
    assert!(snapshot.mocks.is_empty());
}

#[test]
fn snapshot_usage_names_the_current_windows() {
    let snapshot: Snapshot = round_trip("snapshot.json");
    for usage in &snapshot.usage {
        let app = snapshot.applications.iter().find(|a| a.id == usage.application_id).expect("application");
        let plan = snapshot.plans.iter().find(|p| p.id == app.plan_id).expect("plan");
        let window = Window::containing(usage.period, snapshot.generated_at, plan.time_zone.time_zone());
        assert_eq!(window.id(), usage.window_start, "{usage:?}");
    }
}

#[test]
fn snapshot_is_one_ndjson_line() {
    let snapshot: Snapshot = round_trip("snapshot.json");
    let message = ConfigMessage::Snapshot(snapshot);
    let line = serde_json::to_string(&message).expect("serialise");
    assert!(!line.contains('\n'));
    assert!(line.starts_with(r#"{"type":"snapshot","#));
    let parsed: ConfigMessage = serde_json::from_str(&line).expect("parse");
    assert_eq!(parsed, message);
}

#[test]
fn delta_round_trips_and_applies_to_the_snapshot() {
    let message: ConfigMessage = round_trip("delta.json");
    let ConfigMessage::Delta(delta) = message else {
        panic!("delta.json is a delta message");
    };
    let mut snapshot: Snapshot = round_trip("snapshot.json");
    let revision = delta.revision;
    let changes = delta.changes.len();
    snapshot.apply(delta).expect("delta applies on top of the snapshot fixture");
    assert_eq!(snapshot.revision, revision);
    snapshot.validate().expect("the result is valid");
    assert!(changes >= 8, "the fixture exercises every kind of change");
}

#[test]
fn heartbeat_round_trips() {
    let message: ConfigMessage = round_trip("heartbeat.json");
    assert!(matches!(message, ConfigMessage::Heartbeat(_)));
}

#[test]
fn a_delta_is_also_a_bare_delta() {
    // The `type` tag is the only thing the message envelope adds.
    let text = std::fs::read_to_string(fixture_path("delta.json")).expect("read");
    let bare: Delta = serde_json::from_str(&text).expect("parse as Delta");
    assert_eq!(bare.base_revision, 42);
}

#[test]
fn agent_status_round_trips() {
    let status: AgentStatus = round_trip("agent_status.json");
    assert_eq!(status.applied_revision, Some(43));
}

#[test]
fn usage_batch_and_ack_round_trip() {
    let batch: UsageBatch = round_trip("usage_batch.json");
    batch.validate().expect("usage fixture is valid");
    let ack: UsageAck = round_trip("usage_ack.json");
    assert_eq!(ack.batch_id, batch.id);
}

#[test]
fn usage_batch_names_used_credentials_of_the_snapshot() {
    let batch: UsageBatch = round_trip("usage_batch.json");
    let snapshot: Snapshot = round_trip("snapshot.json");
    assert_eq!(batch.credentials_used.len(), 1);
    let used = &batch.credentials_used[0];
    assert_eq!(used.minute % 60, 0);
    assert!(
        snapshot.credentials.iter().any(|c| c.hash == used.hash),
        "the fixture names a credential of the snapshot fixture"
    );
}

#[test]
fn usage_batches_of_older_agents_parse_and_newer_agents_omit_an_empty_list() {
    // Written by an agent from before `credentials_used`; kept byte for byte.
    let old: UsageBatch = round_trip("usage_batch_without_credentials.json");
    assert!(old.credentials_used.is_empty());
    old.validate().expect("valid");
    let new: UsageBatch = round_trip("usage_batch.json");
    assert_eq!(old.entries, new.entries, "the fixtures differ in credentials_used only");
    let json = serde_json::to_value(&old).expect("serialise");
    assert!(json.get("credentials_used").is_none(), "{json}");
}

#[test]
fn older_servers_read_batches_with_credentials_used() {
    /// `UsageBatch` as servers from before `credentials_used` know it.
    #[derive(serde::Deserialize)]
    struct OldUsageBatch {
        id: uuid::Uuid,
        entries: Vec<UsageEntry>,
    }
    let text = std::fs::read_to_string(fixture_path("usage_batch.json")).expect("read");
    let old: OldUsageBatch = serde_json::from_str(&text).expect("unknown fields are ignored");
    let new: UsageBatch = serde_json::from_str(&text).expect("parse");
    assert_eq!((old.id, old.entries), (new.id, new.entries));
}

#[test]
fn credential_uses_are_a_hash_and_a_minute() {
    let used = CredentialUse { hash: KeyHash([0xab; 32]), minute: 1_743_296_400 };
    let json = serde_json::to_value(&used).expect("serialise");
    assert_eq!(json, serde_json::json!({ "hash": "ab".repeat(32), "minute": 1_743_296_400 }));
}

#[test]
fn snapshots_of_older_servers_parse_with_manual_rules_and_older_agents_ignore_the_origin() {
    // Written by a server from before `origin`; kept byte for byte.
    let old: Snapshot = round_trip("snapshot_without_rule_origin.json");
    old.validate().expect("valid");
    let rules = |s: &Snapshot| s.apis.iter().flat_map(|a| a.mapping_rules.clone()).collect::<Vec<_>>();
    assert!(rules(&old).iter().all(|r| r.origin == RuleOrigin::Manual));
    let new: Snapshot = round_trip("snapshot.json");
    assert!(rules(&new).iter().any(|r| r.origin == RuleOrigin::Import), "the fixture has imported rules");
    let mut as_old = new.clone();
    for rule in as_old.apis.iter_mut().flat_map(|a| a.mapping_rules.iter_mut()) {
        rule.origin = RuleOrigin::Manual;
    }
    assert_eq!(as_old, old, "the fixtures differ in rule origins only");

    /// `MappingRule` as agents from before `origin` know it.
    #[derive(serde::Deserialize)]
    struct OldMappingRule {
        pattern: String,
        delta: u32,
    }
    let text = std::fs::read_to_string(fixture_path("snapshot.json")).expect("read");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    for rule in value["apis"][0]["mapping_rules"].as_array().expect("rules") {
        let old: OldMappingRule = serde_json::from_value(rule.clone()).expect("an older agent reads the rule");
        assert!(old.pattern.starts_with('/') && old.delta >= 1);
    }
}

#[test]
fn usage_batches_from_before_refusals_parse_and_older_servers_ignore_them() {
    // Written by an agent from before `refused` and `failed_calls`; kept byte for byte.
    let old: UsageBatch = round_trip("usage_batch_without_refusals.json");
    old.validate().expect("valid");
    assert!(old.refused.is_empty() && old.failed_calls.is_empty() && old.failed_calls_dropped == 0);
    let new: UsageBatch = round_trip("usage_batch.json");
    assert!(!new.refused.is_empty() && !new.failed_calls.is_empty() && new.failed_calls_dropped > 0);
    let mut as_old = new.clone();
    as_old.refused.clear();
    as_old.failed_calls.clear();
    as_old.failed_calls_dropped = 0;
    assert_eq!(as_old, old, "the fixtures differ in the new lists only");

    /// `UsageBatch` as servers from before `refused` and `failed_calls` know it.
    #[derive(serde::Deserialize)]
    struct OldUsageBatch {
        id: uuid::Uuid,
        agent_id: uuid::Uuid,
        entries: Vec<UsageEntry>,
        credentials_used: Vec<CredentialUse>,
    }
    let text = std::fs::read_to_string(fixture_path("usage_batch.json")).expect("read");
    let read: OldUsageBatch = serde_json::from_str(&text).expect("unknown fields are ignored");
    assert_eq!(
        (read.id, read.agent_id, read.entries, read.credentials_used),
        (old.id, old.agent_id, old.entries, old.credentials_used)
    );
}

#[test]
fn failed_calls_and_refusals_name_things_of_the_snapshot() {
    let batch: UsageBatch = round_trip("usage_batch.json");
    let snapshot: Snapshot = round_trip("snapshot.json");
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture_path("keys.json")).expect("read")).expect("keys");
    for call in &batch.failed_calls {
        let app = snapshot.applications.iter().find(|a| a.id == call.application_id).expect("application");
        let api = snapshot.apis.iter().find(|a| a.id == call.api_id).expect("api");
        assert!(call.path.starts_with(&api.base_path), "{call:?}");
        if let Some(metric) = call.metric {
            assert!(api.metrics.iter().any(|m| m.id == metric), "{call:?}");
        }
        // The prefix is the one the portal shows for one of the application's keys.
        let prefix = call.key_prefix.as_deref().expect("a prefix");
        let key = keys
            .iter()
            .filter_map(|k| SecretKey::parse(k["key"].as_str()?).ok())
            .find(|k| snapshot.credentials.iter().any(|c| c.hash == k.hash() && c.application_id == app.id))
            .expect("a key of the application");
        assert_eq!(prefix, key.display_prefix());
        assert_eq!(call.error.is_none(), call.status == 500, "only the upstream's statuses have no code");
    }
    assert!(batch.failed_calls.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    for refused in &batch.refused {
        assert!(snapshot.applications.iter().any(|a| a.id == refused.application_id));
    }
}

#[test]
fn limits_report_round_trips_and_names_the_current_windows() {
    let report: LimitsReport = round_trip("limits_report.json");
    let snapshot: Snapshot = round_trip("snapshot.json");
    let plan = &snapshot.plans[0];
    assert_eq!(report.time_zone, plan.time_zone.as_str());
    let api = snapshot.apis.iter().find(|a| a.id == plan.api_id).expect("api");
    assert_eq!(report.limits.len(), plan.limits.len());
    let now: jiff::Timestamp = "2025-03-30T01:00:12Z".parse().expect("time");
    for (status, limit) in report.limits.iter().zip(&plan.limits) {
        let metric = api.metrics.iter().find(|m| m.id == limit.metric).expect("metric");
        assert_eq!(
            (status.metric.as_str(), status.period, status.max),
            (metric.system_name.as_str(), limit.period, limit.max)
        );
        assert_eq!(status.remaining, status.max.saturating_sub(status.used));
        let window = Window::containing(limit.period, now, plan.time_zone.time_zone());
        if limit.period == Period::Eternity {
            assert_eq!((status.window_start, status.reset, status.reset_seconds), (None, None, None));
        } else {
            assert_eq!(status.window_start, Some(window.start), "{status:?}");
            assert_eq!(status.reset, window.end, "{status:?}");
            assert_eq!(status.reset_seconds, window.seconds_until_end(now), "{status:?}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path("limits_report.json")).expect("read"))
            .expect("json");
    assert!(json["limits"][3]["reset"].is_null(), "eternity's reset is written as null, not left out");
}

#[test]
fn a_snapshot_with_routing_and_mocks_requires_both() {
    let routed: Snapshot = round_trip("snapshot_routing.json");
    let mocked: Snapshot = round_trip("snapshot_with_mocks.json");
    let mut both = mocked.clone();
    both.routing = routed.routing.clone();
    both.declare_features();
    assert_eq!(both.protocol_version, tollgate_protocol::PROTOCOL_VERSION);
    assert_eq!(both.requires, [tollgate_protocol::routing::FEATURE_UPSTREAM_ROUTING, tollgate_protocol::FEATURE_MOCKS]);
    // Both travel in the binary catalog too.
    let bytes = tollgate_protocol::binary::encode_snapshot(&both).expect("encode");
    let back = tollgate_protocol::binary::decode_snapshot(&bytes).expect("decode");
    assert_eq!(back, both);
}
