//! Config sync against the stand-in management server: deltas, rejections, reconnects,
//! and serving from disk while the server is down.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::json;
use tollgate_agent::Token;
use tollgate_protocol::{
    Change, ConfigMessage, Credential, Delta, KeyKind, Limit, Period, Plan, SecretKey, TimeZoneName,
};

use crate::harness::*;

/// Pushes a delta that revokes the fixture's key and gives its application a new one.
fn push_key_replacement(cp: &ControlPlane, fixture: &Fixture) -> SecretKey {
    let new_key = new_key(KeyKind::UserKey);
    cp.push(delta(
        cp,
        vec![
            Change::RevokeCredential { hash: fixture.key.hash() },
            Change::UpsertCredential(Credential {
                hash: new_key.hash(),
                kind: KeyKind::UserKey,
                application_id: fixture.app,
                expires_at: None,
            }),
        ],
    ));
    new_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_promptly_and_a_new_one_accepted() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |key: &str| format!("http://{}/pets/list?user_key={key}", agent.proxy_addr());
    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::OK);
    assert_eq!(cp.connects(), [None], "the first connect names no revision");

    let started = Instant::now();
    let new_key = push_key_replacement(&cp, &fixture);
    let revoked_url = url(fixture.key.as_str());
    eventually("the revoked key to be refused", || {
        let url = revoked_url.clone();
        async move { (get(&url, &[]).await.status == StatusCode::FORBIDDEN).then_some(()) }
    })
    .await;
    let elapsed = started.elapsed();
    println!("revoked key refused {elapsed:?} after the delta was pushed");
    assert!(elapsed < Duration::from_secs(1), "revocation took {elapsed:?}");
    assert_eq!(get(&url(new_key.as_str()), &[]).await.status, StatusCode::OK);
    eventually("the agent to report revision 2", || async {
        (cp.last_status()?.applied_revision == Some(2)).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_update_is_rejected_reported_and_the_last_good_config_serves() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    // A plan of an API that does not exist, and a revocation that must not take effect.
    cp.push(delta(
        &cp,
        vec![
            Change::RevokeCredential { hash: fixture.key.hash() },
            Change::UpsertPlan(Plan {
                id: id(),
                api_id: id(),
                time_zone: TimeZoneName::utc(),
                limits: vec![Limit { metric: fixture.metrics.hits, period: Period::Day, max: 1 }],
            }),
        ],
    ));
    let status =
        eventually("a rejection report", || async { cp.statuses().into_iter().find(|s| s.rejected.is_some()) }).await;
    let rejection = status.rejected.expect("rejected");
    assert_eq!(rejection.revision, 2);
    assert!(rejection.reason.contains("api_id"), "{}", rejection.reason);
    assert_eq!(status.applied_revision, Some(1));
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK, "the last good config still serves");
    let metrics = get(&format!("http://{}/metrics", agent.admin_addr()), &[]).await.body;
    assert!(metrics.contains("tollgate_agent_config_rejected_total"), "{metrics}");
    assert!(metrics.contains("tollgate_agent_config_revision 1"), "{metrics}");
    // It asks for the whole config: the changes after its own revision would bring the same
    // delta again, and every later one builds on it.
    eventually("a reconnect for the whole config", || async { (cp.connects().get(1) == Some(&None)).then_some(()) })
        .await;
    agent.shutdown().await.expect("clean shutdown");
}

/// A restarted agent whose first update from the server is rejected serves the config it
/// saved (the heartbeats that would confirm the saved copy name the rejected revision, so it
/// answered 503 until the next change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_that_rejects_its_first_update_serves_what_it_saved() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    agent.shutdown().await.expect("clean shutdown");
    // While it is down the server's config moves to a revision this agent cannot take.
    cp.push(delta(
        &cp,
        vec![Change::UpsertPlan(Plan {
            id: id(),
            api_id: id(),
            time_zone: TimeZoneName::utc(),
            limits: vec![Limit { metric: fixture.metrics.hits, period: Period::Day, max: 1 }],
        })],
    ));
    assert_eq!(cp.revision(), 2, "the harness keeps the bad revision");
    let agent = tollgate_agent::Agent::start(settings(cp.url(), dir.path(), None)).await.expect("starts");
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    let status =
        eventually("a rejection report", || async { cp.statuses().into_iter().find(|s| s.rejected.is_some()) }).await;
    // Reported once the saved copy serves, not once the stream ends some time later.
    assert_eq!(status.applied_revision, Some(1), "{status:?}");
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");
}

/// An application removed while keys of it are left (an admin rejected a pending application
/// that had a key): its keys go with it, and the delta applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_application_removes_its_keys() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    cp.push(delta(&cp, vec![Change::RemoveApplication { id: fixture.app }]));
    eventually("the agent to report revision 2", || async {
        (cp.last_status()?.applied_revision == Some(2)).then_some(())
    })
    .await;
    let refused = get(&url, &[]).await;
    assert_eq!((refused.status, refused.error().as_str()), (StatusCode::FORBIDDEN, "invalid_credentials"));
    assert!(cp.statuses().iter().all(|s| s.rejected.is_none()));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_on_another_revision_makes_the_agent_resume_from_its_own() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    cp.push_raw(ConfigMessage::Delta(Delta { base_revision: 5, revision: 6, changes: vec![] }));
    eventually("a reconnect with ?revision=1", || async { (cp.connects() == [None, Some(1)]).then_some(()) }).await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_retried_and_the_agent_stays_unready() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.token = Token::new("tg_agt_wrong");
    let agent = tollgate_agent::Agent::start(settings).await.expect("starts");
    eventually("two refused connection attempts", || async {
        (cp.bad_requests().iter().filter(|uri| uri.starts_with("/agent/v1/config")).count() >= 2).then_some(())
    })
    .await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "token_refused", "/ready says why: {}", ready.body);
    let answer = get(&format!("http://{}/pets/list", agent.proxy_addr()), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "not_ready"));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_keeps_serving_but_is_not_ready() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let ready_url = format!("http://{}/ready", agent.admin_addr());
    cp.revoke_token();
    // Its config can no longer change (a revoked key would stay good here), so a load balancer
    // is told to stop sending traffic; what still comes is served as before.
    let ready = eventually("/ready to say the token is refused", || async {
        let ready = get(&ready_url, &[]).await;
        (ready.status == StatusCode::SERVICE_UNAVAILABLE).then_some(ready)
    })
    .await;
    let body = ready.json();
    assert_eq!((body["status"].as_str(), &body["revision"]), (Some("token_refused"), &json!(cp.revision())), "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("TOLLGATE_AGENT_TOKEN"), "{body}");
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_serves_from_disk_while_the_server_is_down() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let new_key = push_key_replacement(&cp, &fixture);
    let admin = agent.admin_addr();
    eventually("revision 2 applied", || async move {
        let ready = get(&format!("http://{admin}/ready"), &[]).await.json();
        (ready["revision"] == 2).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    drop(cp);
    assert_eq!(saved_revision(dir.path()), 2, "a clean stop rewrites config.bin with the journal's deltas");

    let down = tollgate_agent::ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let started = Instant::now();
    let agent = start_ready(settings(down, dir.path(), None)).await;
    println!("restarted agent ready from disk after {:?}", started.elapsed());
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!(ready["source"], "disk");
    assert_eq!(ready["revision"], 2);
    let url = |key: &str| format!("http://{}/pets/list?user_key={key}", agent.proxy_addr());
    assert_eq!(get(&url(new_key.as_str()), &[]).await.status, StatusCode::OK);
    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::FORBIDDEN);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_served_from_disk_is_the_servers_again_once_the_server_confirms_it() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    agent.shutdown().await.expect("clean shutdown");
    // The server is not answering yet when the agent restarts: it serves its saved config.
    cp.fail_streams(1);
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let admin = agent.admin_addr();
    // Then the server answers, at the saved revision: a heartbeat confirms the config.
    let ready = eventually("/ready to say the server's config", || async move {
        let ready = get(&format!("http://{admin}/ready"), &[]).await.json();
        (ready["source"] == "server").then_some(ready)
    })
    .await;
    assert_eq!(ready["revision"], 1);
    assert_eq!(cp.connects(), [None, Some(1)], "after the refused request, a stream from the saved revision");
    agent.shutdown().await.expect("clean shutdown");
}

/// The revision an empty journal (its header line alone) continues.
fn empty_journal_of(journal: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(journal).ok()?;
    let header: serde_json::Value = serde_json::from_str(text.strip_suffix('\n')?).ok()?;
    header["journal_of_revision"].as_u64()
}

/// The revision of the `config.bin` in `dir`.
fn saved_revision(dir: &std::path::Path) -> u64 {
    let bytes = std::fs::read(dir.join("config.bin")).expect("config.bin");
    tollgate_protocol::binary::decode_snapshot(&bytes).expect("decodes").revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_is_journaled_without_rewriting_config_bin_and_survives_a_crash() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let journal = dir.path().join("config.journal");
    eventually("config.bin and an empty journal saved", || async { (empty_journal_of(&journal)? == 1).then_some(()) })
        .await;
    let new_key = push_key_replacement(&cp, &fixture);
    // What a crash right now would leave: the files as they are while the agent runs.
    let crashed = TempDir::new();
    eventually("revision 2 journaled", || async {
        let journal = std::fs::read(&journal).ok()?;
        let last = journal.strip_suffix(b"\n")?.rsplit(|&b| b == b'\n').next()?;
        let delta: Delta = serde_json::from_slice(last).ok()?;
        (delta.revision == 2).then_some(())
    })
    .await;
    for name in ["config.bin", "config.journal"] {
        std::fs::copy(dir.path().join(name), crashed.path().join(name)).expect("copy");
    }
    assert_eq!(saved_revision(crashed.path()), 1, "the delta was appended, config.bin not rewritten");
    agent.shutdown().await.expect("clean shutdown");

    let down = tollgate_agent::ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let agent = start_ready(settings(down, crashed.path(), None)).await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!((ready["source"].as_str(), ready["revision"].as_u64()), (Some("disk"), Some(2)));
    let url = |key: &str| format!("http://{}/pets/list?user_key={key}", agent.proxy_addr());
    assert_eq!(get(&url(new_key.as_str()), &[]).await.status, StatusCode::OK);
    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::FORBIDDEN);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_line_is_left_out_and_the_next_stop_rewrites_config_bin() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let dir = TempDir::new();
    let mut snapshot = fixture.snapshot.clone();
    snapshot.revision = 4;
    let cp = ControlPlane::start(snapshot.clone()).await;
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    agent.shutdown().await.expect("clean shutdown");
    // A crash in the middle of appending the revocation of the fixture's key.
    let revoke =
        Delta { base_revision: 4, revision: 5, changes: vec![Change::RevokeCredential { hash: fixture.key.hash() }] };
    let line = serde_json::to_string(&revoke).expect("json");
    let torn = format!("{{\"journal_of_revision\":4}}\n{}", &line[..line.len() / 2]);
    std::fs::write(dir.path().join("config.journal"), torn).expect("write");

    let down = tollgate_agent::ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let agent = start_ready(settings(down, dir.path(), None)).await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!((ready["source"].as_str(), ready["revision"].as_u64()), (Some("disk"), Some(4)));
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK, "the torn revocation is not applied");
    agent.shutdown().await.expect("clean shutdown");

    // The clean stop rewrote config.bin (with its counters) and started the journal afresh:
    // the torn line is gone.
    let journal = dir.path().join("config.journal");
    assert_eq!((saved_revision(dir.path()), empty_journal_of(&journal)), (4, Some(4)));

    // Back in touch with the server, the next delta is journaled after it.
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    cp.push(delta(&cp, vec![Change::RevokeCredential { hash: fixture.key.hash() }]));
    eventually("revision 5 journaled", || async {
        let journal = std::fs::read(&journal).ok()?;
        let last = journal.strip_suffix(b"\n")?.rsplit(|&b| b == b'\n').next()?;
        let delta: Delta = serde_json::from_slice(last).ok()?;
        (delta.revision == 5).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    assert_eq!(saved_revision(dir.path()), 5, "and the stop wrote it into config.bin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_with_a_current_config_is_ready_as_soon_as_the_server_confirms_it() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    agent.shutdown().await.expect("clean shutdown");
    assert!(dir.path().join("config.bin").exists(), "the config was saved");

    // Nothing changed on the server: it answers the restarted agent with a heartbeat only.
    let started = Instant::now();
    let agent = tollgate_agent::Agent::start(settings(cp.url(), dir.path(), None)).await.expect("starts");
    let admin = agent.admin_addr();
    let ready = eventually("the restarted agent to be ready", || async move {
        let answer = get(&format!("http://{admin}/ready"), &[]).await;
        (answer.status == StatusCode::OK).then(|| answer.json())
    })
    .await;
    let elapsed = started.elapsed();
    println!("restarted agent ready {elapsed:?} after start (server at the saved revision)");
    assert!(elapsed < Duration::from_secs(1), "ready only after {elapsed:?}");
    assert_eq!(cp.connects(), [None, Some(1)], "resumed from the saved revision");
    assert_eq!((ready["revision"].as_u64(), ready["source"].as_str()), (Some(1), Some("server")));
    let answer = get(&format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str()), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    eventually("the agent to report revision 1 applied", || async {
        (cp.statuses().iter().filter(|s| s.applied_revision == Some(1)).count() >= 2).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_upgraded_from_config_json_serves_it_and_saves_config_bin() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let dir = TempDir::new();
    // What an agent before the binary encoding left behind.
    let mut snapshot = fixture.snapshot.clone();
    snapshot.revision = 7;
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&snapshot).expect("json")).expect("write");

    let down = tollgate_agent::ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let agent = start_ready(settings(down, dir.path(), None)).await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!((ready["source"].as_str(), ready["revision"].as_u64()), (Some("disk"), Some(7)));
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");

    let bytes = std::fs::read(dir.path().join("config.bin")).expect("config.bin written");
    let saved = tollgate_protocol::binary::decode_snapshot(&bytes).expect("decodes");
    assert_eq!(saved.revision, 7);
    assert_eq!(saved.credentials.len(), snapshot.credentials.len());
    assert!(!dir.path().join("config.json").exists(), "the JSON copy is removed once the binary one is saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_on_a_format_version_1_config_bin_serves_it_and_saves_the_current_version() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let dir = TempDir::new();
    // What an agent before binary format version 2 left behind.
    let mut snapshot = fixture.snapshot.clone();
    snapshot.revision = 7;
    std::fs::write(dir.path().join("config.bin"), snapshot_v1(&snapshot)).expect("write");

    let down = tollgate_agent::ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let agent = start_ready(settings(down, dir.path(), None)).await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!((ready["source"].as_str(), ready["revision"].as_u64()), (Some("disk"), Some(7)));
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");

    // Back in touch with a server: the next save is the current format version.
    snapshot.revision = 8;
    let cp = ControlPlane::start(snapshot.clone()).await;
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let saved = dir.path().join("config.bin");
    eventually("revision 8 saved in the current format version", || {
        let saved = saved.clone();
        async move {
            let bytes = std::fs::read(&saved).ok()?;
            let decoded = tollgate_protocol::binary::decode_snapshot(&bytes).ok()?;
            let current = tollgate_protocol::binary::FORMAT_VERSION.to_le_bytes();
            (bytes[4..8] == current && decoded.revision == 8).then_some(())
        }
    })
    .await;
    assert_eq!(cp.connects(), [Some(7)], "resumed from the version 1 file's revision");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_syncs_from_a_server_that_sends_format_version_1() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.speak_format_v1();
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |key: &str| format!("http://{}/pets/list?user_key={key}", agent.proxy_addr());
    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::OK);
    cp.push(delta(&cp, vec![Change::RevokeCredential { hash: fixture.key.hash() }]));
    let revoked = url(fixture.key.as_str());
    eventually("the revoked key to be refused", || {
        let url = revoked.clone();
        async move { (get(&url, &[]).await.status == StatusCode::FORBIDDEN).then_some(()) }
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_still_syncs_from_a_server_that_only_speaks_ndjson() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.speak_json_only();
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |key: &str| format!("http://{}/pets/list?user_key={key}", agent.proxy_addr());
    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::OK);
    cp.push(delta(&cp, vec![Change::RevokeCredential { hash: fixture.key.hash() }]));
    let revoked = url(fixture.key.as_str());
    eventually("the revoked key to be refused", || {
        let url = revoked.clone();
        async move { (get(&url, &[]).await.status == StatusCode::FORBIDDEN).then_some(()) }
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_revisions_is_reported_as_its_latest_not_one_report_each() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let ready = format!("http://{}/ready", agent.admin_addr());
    // Twenty revisions, each applied before the next is pushed (an admin script suspending
    // applications one by one).
    for _ in 0..20 {
        cp.push(delta(&cp, vec![]));
        let revision = cp.revision();
        eventually("the agent to apply the revision", || {
            let ready = ready.clone();
            async move { (get(&ready, &[]).await.json()["revision"].as_u64() == Some(revision)).then_some(()) }
        })
        .await;
    }
    let last = cp.revision();
    eventually("the agent to report the last revision", || async {
        (cp.last_status()?.applied_revision == Some(last)).then_some(())
    })
    .await;
    let reports = cp.statuses().iter().filter(|status| status.applied_revision.is_some_and(|r| r > 1)).count();
    assert!(reports < 10, "{reports} reports for 20 revisions");
    agent.shutdown().await.expect("clean shutdown");
}

/// A day's limit holds across restarts that the server only confirms: each stop saves the
/// counters, whatever the run did to the config. Before, a run with no config change saved
/// nothing, so every rolling restart handed out the calls of the run before it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_limit_holds_across_restarts_the_server_only_confirms() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Day, 10)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let call = |agent: &tollgate_agent::RunningAgent| {
        let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
        async move { get(&url, &[]).await.status }
    };
    for run in 0..2 {
        let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
        for _ in 0..4 {
            assert_eq!(call(&agent).await, StatusCode::OK, "run {run}");
        }
        agent.shutdown().await.expect("clean shutdown");
    }
    assert_eq!(cp.connects(), [None, Some(1)], "the second run resumed from the saved revision");
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let mut admitted = 0;
    for _ in 0..4 {
        if call(&agent).await == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2, "8 of the day's 10 calls were made in the runs before");
    agent.shutdown().await.expect("clean shutdown");
}
