//! Usage batches: counts, retries with the same id, and the disk spool across restarts.

use std::collections::{HashMap, HashSet};

use hyper::StatusCode;
use jiff::{SignedDuration, Timestamp};
use tollgate_agent::Clock;
use tollgate_protocol::{ApplicationState, KeyHash, Period, StatusClass};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_carry_the_counts_and_a_failed_batch_is_resent_with_its_id() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.fail_usage(1);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |path: &str| format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for path in ["/items/1", "/items/2", "/items/3", "/list", "/list"] {
        assert_eq!(get(&url(path), &[]).await.status, StatusCode::OK);
    }
    // Refused requests are not usage.
    assert_eq!(get(&url("/nothing"), &[]).await.status, StatusCode::NOT_FOUND);

    let m = fixture.metrics;
    eventually("all usage acknowledged", || async {
        (cp.accepted_count(m.hits) == 5 && cp.accepted_count(m.get_item) == 3 && cp.accepted_count(m.list) == 2)
            .then_some(())
    })
    .await;
    let attempts = cp.usage();
    let failed = attempts.iter().find(|a| !a.accepted).expect("the first post failed");
    assert!(
        attempts.iter().any(|a| a.accepted && a.batch == failed.batch),
        "the failed batch was resent as it was, id and all"
    );
    assert_eq!(
        failed.batch.credentials_used.iter().map(|u| u.hash).collect::<Vec<_>>(),
        vec![fixture.key.hash()],
        "the first batch names the key (noted before the request went upstream)"
    );
    for attempt in &attempts {
        assert_eq!(attempt.batch.agent_id, agent.agent_id());
        assert_eq!(attempt.batch.id.get_version_num(), 7);
        for entry in &attempt.batch.entries {
            assert_eq!(entry.application_id, fixture.app);
            assert_eq!(entry.status_class, StatusClass::Success);
            assert_eq!(entry.minute % 60, 0);
        }
    }
    let requests_on_hits: u64 = attempts
        .iter()
        .filter(|a| a.accepted)
        .flat_map(|a| a.batch.entries.iter())
        .filter(|e| e.metric == m.hits)
        .map(|e| e.latency_buckets.iter().sum::<u64>())
        .sum();
    assert_eq!(requests_on_hits, 5, "one latency sample per request");
    agent.shutdown().await.expect("clean shutdown");
}

/// Two agents on one state directory would share an id and a spool: the second is refused,
/// naming the setting, and the directory is free again once the first has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_state_directory_is_refused() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let first = start_ready(settings(cp.url(), dir.path(), None)).await;
    let second = tollgate_agent::Agent::start(settings(cp.url(), dir.path(), None)).await;
    let message = second.err().expect("the second agent is refused").to_string();
    assert!(
        message.starts_with("TOLLGATE_AGENT_STATE_DIR: ") && message.contains("in use by another running agent"),
        "{message}"
    );
    let id = first.agent_id();
    first.shutdown().await.expect("clean shutdown");
    let again = start_ready(settings(cp.url(), dir.path(), None)).await;
    assert_eq!(again.agent_id(), id, "the same directory, the same agent");
    again.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_survives_a_restart() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.fail_usage(usize::MAX);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for _ in 0..4 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    let spool = dir.path().join("spool");
    eventually("a failed usage post", || async { (!cp.usage().is_empty()).then_some(()) }).await;
    agent.shutdown().await.expect("clean shutdown");
    let spooled: Vec<String> = std::fs::read_dir(&spool)
        .expect("spool dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    assert!(!spooled.is_empty(), "unacknowledged batches stay on disk");
    assert_eq!(cp.accepted_count(fixture.metrics.hits), 0);

    cp.fail_usage(0);
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    eventually("the spooled usage acknowledged", || async {
        (cp.accepted_count(fixture.metrics.hits) == 4).then_some(())
    })
    .await;
    assert!(
        cp.usage()
            .iter()
            .filter(|a| a.accepted)
            .flat_map(|a| &a.batch.credentials_used)
            .any(|u| u.hash == fixture.key.hash()),
        "spooled batches keep credentials_used"
    );
    for name in &spooled {
        let id = name.trim_end_matches(".json").split_once('-').expect("seq-id").1;
        assert!(
            cp.usage().iter().any(|a| a.accepted && a.batch.id.to_string() == id),
            "spooled batch {id} was delivered"
        );
    }
    eventually("an empty spool", || async {
        let left = std::fs::read_dir(&spool).ok()?.filter_map(|e| e.ok()).count();
        (left == 0).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}

/// Every credential use the server accepted, batch by batch (each batch once).
fn credential_uses(cp: &ControlPlane) -> Vec<Vec<(KeyHash, i64)>> {
    let mut seen = HashSet::new();
    cp.usage()
        .into_iter()
        .filter(|a| a.accepted && seen.insert(a.batch.id))
        .map(|a| a.batch.credentials_used.iter().map(|u| (u.hash, u.minute)).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_name_each_used_credential_once_per_later_minute() {
    // 10 s into a minute at the start of an hour, so the next minute is in the same hour.
    let t0: Timestamp = "2030-01-01T05:00:10Z".parse().expect("time");
    let minute = t0.as_second() - 10;
    let (clock, hands) = Clock::manual(t0);
    let upstream = Upstream::start().await;
    // Two `list` requests an hour per application; `get_item` is not limited.
    let mut fixture = Fixture::new(&upstream, &[('l', Period::Hour, 2)]);
    let (_, unused) = fixture.add_app(ApplicationState::Live, None);
    let (_, limited) = fixture.add_app(ApplicationState::Live, None);
    let (_, failing) = fixture.add_app(ApplicationState::Live, None);
    let (_, suspended) = fixture.add_app(ApplicationState::Suspended, None);
    let (_, expired) = fixture.add_app(ApplicationState::Live, Some(t0 - SignedDuration::from_hours(1)));
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |path: &str, key: &tollgate_protocol::SecretKey| {
        format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), key.as_str())
    };
    let m = fixture.metrics;
    // Waits until the usage of `hits` requests is acknowledged: every credential use noted
    // before them (on their way upstream) has been sealed by then too.
    let settled = |hits: u64| {
        let cp = &cp;
        async move {
            eventually("usage acknowledged", || async { (cp.accepted_count(m.hits) == hits).then_some(()) }).await;
        }
    };

    let key = &fixture.key;
    assert_eq!(get(&url("/items/1", key), &[]).await.status, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(get(&url("/list", &limited), &[]).await.status, StatusCode::OK);
    }
    // Used even though the upstream failed.
    assert_eq!(get(&url("/status/503", &failing), &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    // Refused before going upstream: not a use, although the keys are in the table.
    for (key, status) in [(&suspended, StatusCode::FORBIDDEN), (&expired, StatusCode::FORBIDDEN)] {
        assert_eq!(get(&url("/items/1", key), &[]).await.status, status);
    }
    settled(4).await;
    let batches = credential_uses(&cp);
    let mut first: Vec<(KeyHash, i64)> = batches.concat();
    first.sort();
    let mut expected = vec![(key.hash(), minute), (limited.hash(), minute), (failing.hash(), minute)];
    expected.sort();
    assert_eq!(first, expected, "{batches:?}");
    for unlisted in [&unused, &suspended, &expired] {
        assert!(!first.iter().any(|(hash, _)| *hash == unlisted.hash()));
    }

    // Later in the same minute: used again, but the latest use is the same minute.
    hands.advance(SignedDuration::from_secs(40));
    assert_eq!(get(&url("/items/2", key), &[]).await.status, StatusCode::OK);
    settled(5).await;
    assert_eq!(credential_uses(&cp).concat().len(), 3, "no new entry for a use in the same minute");

    // The next minute: `key` moves on; `limited` is refused (429) and stays where it was.
    hands.advance(SignedDuration::from_secs(20));
    let refused = get(&url("/list", &limited), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(get(&url("/items/3", key), &[]).await.status, StatusCode::OK);
    assert_eq!(get(&url("/items/4", key), &[]).await.status, StatusCode::OK);
    settled(7).await;
    let batches = credential_uses(&cp);
    let mut latest: HashMap<KeyHash, i64> = HashMap::new();
    for batch in &batches {
        let hashes: HashSet<KeyHash> = batch.iter().map(|(hash, _)| *hash).collect();
        assert_eq!(hashes.len(), batch.len(), "one entry per credential per batch");
        for &(hash, at) in batch {
            let was = latest.insert(hash, at);
            assert!(was.is_none_or(|was| was < at), "only later minutes are sent again");
        }
    }
    assert_eq!(batches.concat().len(), 4, "{batches:?}");
    assert_eq!(latest[&key.hash()], minute + 60);
    assert_eq!(latest[&limited.hash()], minute);
    assert_eq!(latest[&failing.hash()], minute);
    agent.shutdown().await.expect("clean shutdown");
}

/// A 413 from a proxy on the way (its own body limit, its own page) says nothing about the
/// batch: it is kept and sent again, not dropped as one the server refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxys_refusal_keeps_the_batch_for_another_try() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.proxy_refuses_usage(1);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    let refused = eventually("the refused post", || async { cp.usage().into_iter().find(|a| !a.accepted) }).await;
    eventually("the same batch accepted", || async {
        cp.accepted_batches().iter().any(|b| b.id == refused.batch.id).then_some(())
    })
    .await;
    assert_eq!(cp.accepted_count(fixture.metrics.list), 1);
    let metrics = get(&format!("http://{}/metrics", agent.admin_addr()), &[]).await.body;
    assert!(metrics.contains("tollgate_agent_usage_dropped_total 0"), "{metrics}");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_server_refuses_as_invalid_is_dropped_and_counted_not_retried() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.refuse_usage(1);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    let refused = eventually("the refused post", || async { cp.usage().into_iter().find(|a| !a.accepted) }).await;
    let metrics = format!("http://{}/metrics", agent.admin_addr());
    eventually("the drop to be counted", || async {
        get(&metrics, &[]).await.body.contains("tollgate_agent_usage_dropped_total 1").then_some(())
    })
    .await;

    // The queue moves on: later usage is delivered, and the refused batch is never sent again.
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    eventually("the next batch accepted", || async { (cp.accepted_count(fixture.metrics.list) == 1).then_some(()) })
        .await;
    agent.shutdown().await.expect("clean shutdown");
    let attempts = cp.usage();
    assert_eq!(attempts.iter().filter(|a| a.batch.id == refused.batch.id).count(), 1, "sent once: {attempts:?}");
    assert!(std::fs::read_dir(dir.path().join("spool")).expect("spool").next().is_none(), "nothing left spooled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_the_spool_cannot_write_is_held_in_memory_and_delivered() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.fail_usage(usize::MAX);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    // A spool directory that cannot take files (root writes through permission bits, not
    // through a file standing where the directory was).
    let spool = dir.path().join("spool");
    std::fs::remove_dir_all(&spool).expect("remove the spool");
    std::fs::write(&spool, b"not a directory").expect("a file in its place");
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for _ in 0..3 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    let metrics = format!("http://{}/metrics", agent.admin_addr());
    eventually("the failed write counted", || async {
        let body = get(&metrics, &[]).await.body;
        (!body.contains("tollgate_agent_spool_write_errors_total 0")
            && body.contains("tollgate_agent_spool_write_errors_total"))
        .then_some(())
    })
    .await;
    // The server comes back: what only memory held reaches it, and nothing was dropped.
    cp.fail_usage(0);
    eventually("the usage held in memory acknowledged", || async {
        (cp.accepted_count(fixture.metrics.hits) == 3).then_some(())
    })
    .await;
    assert!(get(&metrics, &[]).await.body.contains("tollgate_agent_usage_dropped_total 0"));
    agent.shutdown().await.expect("clean shutdown");
}

/// A client that hangs up while the upstream has its request still used it: the upstream may
/// have done the work (nginx logs such a call as 499), and with the call uncounted a write
/// operation would be free and unseen by every quota the server seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_client_hangs_up_before_the_answer_is_still_usage() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let mut client = tokio::net::TcpStream::connect(agent.proxy_addr()).await.expect("connect");
    let head =
        format!("GET /pets/slow?user_key={} HTTP/1.1\r\nHost: {}\r\n\r\n", fixture.key.as_str(), agent.proxy_addr());
    client.write_all(head.as_bytes()).await.expect("send");
    // The upstream answers /slow after 3 s; the client leaves once it has the request.
    eventually("the upstream to have the request", || async { (upstream.count() == 1).then_some(()) }).await;
    drop(client);
    eventually("the abandoned call counted", || async { (cp.accepted_count(fixture.metrics.hits) == 1).then_some(()) })
        .await;
    let classes: Vec<StatusClass> = cp
        .accepted_batches()
        .iter()
        .flat_map(|b| &b.entries)
        .filter(|e| e.metric == fixture.metrics.hits)
        .map(|e| e.status_class)
        .collect();
    assert_eq!(classes, [StatusClass::ClientError], "counted once, as a client error (499)");
    agent.shutdown().await.expect("clean shutdown");
}

/// A call is filed under the minute it arrived, as its limits were counted, however long
/// the upstream takes: a call arriving in a month's last second was billed in the next
/// month when its answer came after midnight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_filed_under_the_minute_it_arrived_not_the_one_it_was_answered_in() {
    let t0: Timestamp = "2030-01-31T23:59:59Z".parse().expect("time");
    let (clock, hands) = Clock::manual(t0);
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), Some(clock));
    settings.upstream_timeout = std::time::Duration::from_secs(20);
    let agent = start_ready(settings).await;
    let url = format!("http://{}/pets/slow?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    let call = tokio::spawn(async move { get(&url, &[]).await.status });
    eventually("the call to reach the upstream", || async { (upstream.count() == 1).then_some(()) }).await;
    // Midnight passes while the upstream works (it takes 3 s).
    hands.advance(SignedDuration::from_secs(61));
    assert_eq!(call.await.expect("the call"), StatusCode::OK);
    eventually("the call's usage", || async { (cp.accepted_count(fixture.metrics.hits) == 1).then_some(()) }).await;
    let minutes: Vec<i64> = cp
        .accepted_batches()
        .iter()
        .flat_map(|b| b.entries.iter())
        .filter(|e| e.metric == fixture.metrics.hits)
        .map(|e| e.minute)
        .collect();
    assert_eq!(minutes, [t0.as_second() - 59], "January's last minute");
    agent.shutdown().await.expect("clean shutdown");
}
