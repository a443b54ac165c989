//! Routing in the wire format: `snapshot_routing.json` is `snapshot.json` with upstream
//! groups, a split and overrides (and the deprecated API's deprecation time, which
//! `snapshot.json`, as an older server's, lacks); `snapshot_routing.bin` is it in the binary
//! encoding. A
//! snapshot that routes declares the feature, and what an agent of version 1 checks (the
//! version) refuses it, while a snapshot without routing stays at version 1.

use tollgate_protocol::binary::{decode_snapshot, encode_snapshot};
use tollgate_protocol::features::{KNOWN_FEATURES, check_support};
use tollgate_protocol::routing::FEATURE_UPSTREAM_ROUTING;
use tollgate_protocol::{BASE_PROTOCOL_VERSION, Change, ConfigMessage, PROTOCOL_VERSION, Snapshot};

use crate::golden::{fixture_path, round_trip, updating};

#[test]
fn the_routing_snapshot_round_trips_declares_its_feature_and_validates() {
    let snapshot: Snapshot = round_trip("snapshot_routing.json");
    snapshot.validate().expect("valid");
    assert_eq!(snapshot.protocol_version, PROTOCOL_VERSION);
    assert_eq!(snapshot.requires, [FEATURE_UPSTREAM_ROUTING]);
    assert_eq!(snapshot.features_used(), snapshot.requires);
    let routing = &snapshot.routing[0];
    assert_eq!(routing.groups.iter().map(|g| g.weight).collect::<Vec<_>>(), [90, 10, 0]);
    assert!(!routing.plans.is_empty() && !routing.applications.is_empty(), "the fixture exercises both overrides");
}

#[test]
fn the_routing_snapshot_travels_binary() {
    let snapshot: Snapshot = round_trip("snapshot_routing.json");
    let path = fixture_path("snapshot_routing.bin");
    if updating() {
        std::fs::write(&path, encode_snapshot(&snapshot).expect("encode")).expect("write fixture");
    }
    let bytes = std::fs::read(&path).expect("read snapshot_routing.bin");
    assert_eq!(encode_snapshot(&snapshot).expect("encode"), bytes);
    assert_eq!(decode_snapshot(&bytes).expect("decode"), snapshot);
}

#[test]
fn a_snapshot_that_routes_without_declaring_it_is_invalid() {
    let mut snapshot: Snapshot = round_trip("snapshot_routing.json");
    snapshot.requires.clear();
    snapshot.protocol_version = BASE_PROTOCOL_VERSION;
    let err = snapshot.validate().expect_err("undeclared");
    assert_eq!(err.path, "requires");
    snapshot.declare_features();
    assert_eq!(snapshot.validate(), Ok(()));
}

#[test]
fn version_1_agents_refuse_a_routing_snapshot_by_its_version() {
    // What an agent of version 1 checks: the version, and nothing else (it ignores the new
    // fields). The routing snapshot fails that check; the plain one passes it.
    let agent_v1 = |version: u32| version == 1;
    let routed: Snapshot = round_trip("snapshot_routing.json");
    let plain: Snapshot = round_trip("snapshot.json");
    assert!(!agent_v1(routed.protocol_version));
    assert!(agent_v1(plain.protocol_version));
    // Their delta parser does not know the routing changes, so a delta carrying one fails to
    // read (they report it rejected and resynchronise, then refuse the snapshot).
    let delta = std::fs::read_to_string(fixture_path("delta.json")).expect("read");
    let ConfigMessage::Delta(delta) = serde_json::from_str::<ConfigMessage>(&delta).expect("parse") else {
        panic!("delta.json is a delta");
    };
    assert!(delta.changes.iter().any(|c| matches!(c, Change::UpsertRouting(_))));
    assert!(delta.changes.iter().any(|c| matches!(c, Change::RemoveRouting { .. })));
}

#[test]
fn unknown_features_and_versions_are_refused_by_name() {
    assert_eq!(check_support(2, &[FEATURE_UPSTREAM_ROUTING.to_owned()]), Ok(()));
    let err = check_support(2, &["teleport".to_owned()]).expect_err("unknown feature");
    assert_eq!(err.to_string(), r#"requires[0]: unknown feature "teleport""#);
    assert!(check_support(3, &[]).expect_err("future").to_string().starts_with("protocol_version"));
    assert!(KNOWN_FEATURES.contains(&FEATURE_UPSTREAM_ROUTING));
}

#[test]
fn applying_routing_changes_updates_the_declared_features() {
    let mut snapshot: Snapshot = round_trip("snapshot_routing.json");
    let api = snapshot.routing[0].api_id;
    let delta = tollgate_protocol::Delta {
        base_revision: snapshot.revision,
        revision: snapshot.revision + 1,
        changes: vec![Change::RemoveRouting { api_id: api }],
    };
    snapshot.apply(delta).expect("applies");
    assert!(snapshot.routing.is_empty());
    assert_eq!(snapshot.protocol_version, BASE_PROTOCOL_VERSION);
    assert!(snapshot.requires.is_empty());
    snapshot.validate().expect("valid");
}
