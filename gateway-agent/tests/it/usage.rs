//! Usage batches: counts, retries with the same id, and the disk spool across restarts.

use hyper::StatusCode;
use tollgate_protocol::StatusClass;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_carry_the_counts_and_a_failed_batch_is_resent_with_its_id() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.fail_usage(1);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |path: &str| {
        format!(
            "http://{}/pets{path}?user_key={}",
            agent.proxy_addr(),
            fixture.key.as_str()
        )
    };
    for path in ["/items/1", "/items/2", "/items/3", "/list", "/list"] {
        assert_eq!(get(&url(path), &[]).await.status, StatusCode::OK);
    }
    // Refused requests are not usage.
    assert_eq!(
        get(&url("/nothing"), &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let m = fixture.metrics;
    eventually("all usage acknowledged", || async {
        (cp.accepted_count(m.hits) == 5
            && cp.accepted_count(m.get_item) == 3
            && cp.accepted_count(m.list) == 2)
            .then_some(())
    })
    .await;
    let attempts = cp.usage();
    let failed = attempts
        .iter()
        .find(|a| !a.accepted)
        .expect("the first post failed");
    assert!(
        attempts
            .iter()
            .any(|a| a.accepted && a.batch.id == failed.batch.id),
        "the failed batch was resent with the same id"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_survives_a_restart() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.fail_usage(usize::MAX);
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!(
        "http://{}/pets/list?user_key={}",
        agent.proxy_addr(),
        fixture.key.as_str()
    );
    for _ in 0..4 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    let spool = dir.path().join("spool");
    eventually("a failed usage post", || async {
        (!cp.usage().is_empty()).then_some(())
    })
    .await;
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
    for name in &spooled {
        let id = name
            .trim_end_matches(".json")
            .split_once('-')
            .expect("seq-id")
            .1;
        assert!(
            cp.usage()
                .iter()
                .any(|a| a.accepted && a.batch.id.to_string() == id),
            "spooled batch {id} was delivered"
        );
    }
    eventually("an empty spool", || async {
        let left = std::fs::read_dir(&spool)
            .ok()?
            .filter_map(|e| e.ok())
            .count();
        (left == 0).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}
