//! The agent sync API over HTTP: tokens, the config stream's snapshot and
//! deltas, usage intake and status reports.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_DEVELOPER_EMAIL, seed};
use tollgate_core::accounts::{AccountId, ClientAddress, PasswordHasher, SignInOutcome, authenticate};
use tollgate_core::applications::{self, NewApplication};
use tollgate_core::audit::Actor;
use tollgate_core::credentials;
use tollgate_core::gateways;
use tollgate_core::plans::list_plans;
use tollgate_protocol::usage::LATENCY_BUCKETS;
use tollgate_protocol::{Change, ConfigMessage, StatusClass, UsageAck, UsageBatch, UsageEntry};

use crate::helpers::{TestApp, answer_to_head, spawn_app};

/// Reads one NDJSON message at a time from a streaming response.
struct Ndjson {
    res: reqwest::Response,
    buffer: Vec<u8>,
}

impl Ndjson {
    async fn next(&mut self) -> ConfigMessage {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line).expect("a config message");
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.res.chunk())
                .await
                .expect("a message within 10 s")
                .expect("stream readable")
                .expect("stream still open");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

struct Setup {
    app: TestApp,
    token: String,
    account: AccountId,
}

async fn setup(pool: PgPool) -> Setup {
    seed(&pool).await.unwrap();
    let (_, token) = gateways::create(&pool, "edge-1", &Actor::system("test")).await.unwrap();
    let localhost = ClientAddress::new(std::net::Ipv4Addr::LOCALHOST.into());
    let SignInOutcome::SignedIn(dev) = authenticate(
        &pool,
        &PasswordHasher::new(1),
        DEMO_DEVELOPER_EMAIL,
        tollgate::cli::dev::DEMO_DEVELOPER_PASSWORD,
        &localhost,
        None,
    )
    .await
    .unwrap() else {
        panic!("demo developer signs in");
    };
    let app = spawn_app(pool).await;
    Setup { app, token: token.as_str().to_owned(), account: dev.account_id.unwrap() }
}

async fn open_stream(app: &TestApp, token: &str, revision: Option<u64>) -> Ndjson {
    let url = match revision {
        Some(r) => app.url(&format!("/agent/v1/config?revision={r}")),
        None => app.url("/agent/v1/config"),
    };
    let res = app.client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    Ndjson { res, buffer: Vec::new() }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_agent_api_refuses_missing_and_unknown_tokens_with_json(pool: PgPool) {
    let s = setup(pool).await;
    // From the head alone: an anonymous client cannot make the server take in a large body.
    let anonymous = "POST /agent/v1/usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16000000\r\n\r\n";
    let answer = answer_to_head(&s.app, anonymous).await;
    assert!(answer.starts_with("HTTP/1.1 401") && answer.contains("missing_token"), "{answer}");
    let res = s.app.client.get(s.app.url("/agent/v1/config")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "missing_token");
    let res = s
        .app
        .client
        .post(s.app.url("/agent/v1/usage"))
        .bearer_auth("tg_agt_nope")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_stream_opens_with_a_valid_snapshot_and_pushes_changes_as_they_commit(pool: PgPool) {
    let s = setup(pool).await;
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("a snapshot first") };
    snapshot.validate().expect("the snapshot validates");
    assert_eq!(snapshot.apis.len(), 1);
    assert_eq!(snapshot.apis[0].base_path, "/weather");
    assert_eq!(snapshot.apis[0].mapping_rules.len(), 4);
    assert_eq!(snapshot.plans.len(), 2);

    // A developer registers an app on the Basic plan and gets a key.
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let basic = list_plans(&s.app.pool, api.id).await.unwrap().into_iter().find(|p| p.system_name == "basic").unwrap();
    let actor = Actor::system("test");
    let app = applications::create(
        &s.app.pool,
        s.account,
        &NewApplication { plan_id: basic.id, name: "Dashboard".into(), description: String::new() },
        &actor,
    )
    .await
    .unwrap();
    let key = credentials::issue(&s.app.pool, s.account, app.id, &actor).await.unwrap();
    let mut seen_credential = false;
    let mut revision = snapshot.revision;
    while !seen_credential {
        match stream.next().await {
            ConfigMessage::Delta(delta) => {
                assert_eq!(delta.base_revision, revision, "deltas chain without gaps");
                revision = delta.revision;
                seen_credential = delta
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::UpsertCredential(k) if k.hash == key.secret.hash()));
            }
            ConfigMessage::Heartbeat(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    // Revocation is pushed, and measured.
    let started = Instant::now();
    credentials::revoke(&s.app.pool, s.account, app.id, key.id, &actor).await.unwrap();
    loop {
        if let ConfigMessage::Delta(delta) = stream.next().await
            && delta
                .changes
                .iter()
                .any(|c| matches!(c, Change::RevokeCredential { hash } if *hash == key.secret.hash()))
        {
            break;
        }
    }
    let elapsed = started.elapsed();
    println!("revocation reached the agent stream in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_returning_agent_gets_only_what_it_missed(pool: PgPool) {
    let s = setup(pool).await;
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("snapshot") };
    drop(stream);
    // Up to date: a heartbeat at the same revision, no snapshot.
    let mut stream = open_stream(&s.app, &s.token, Some(snapshot.revision)).await;
    match stream.next().await {
        ConfigMessage::Heartbeat(beat) => assert_eq!(beat.revision, snapshot.revision),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    drop(stream);
    // Behind by one change: exactly that delta.
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let basic = list_plans(&s.app.pool, api.id).await.unwrap().remove(0);
    applications::create(
        &s.app.pool,
        s.account,
        &NewApplication { plan_id: basic.id, name: "Late".into(), description: String::new() },
        &Actor::system("test"),
    )
    .await
    .unwrap();
    let mut stream = open_stream(&s.app, &s.token, Some(snapshot.revision)).await;
    let ConfigMessage::Delta(delta) = stream.next().await else { panic!("a delta") };
    assert_eq!(delta.base_revision, snapshot.revision);
    assert!(matches!(delta.changes.as_slice(), [Change::UpsertApplication(_)]), "{:?}", delta.changes);
    // A revision from another database's future gets a snapshot.
    let mut stream = open_stream(&s.app, &s.token, Some(snapshot.revision + 1000)).await;
    assert!(matches!(stream.next().await, ConfigMessage::Snapshot(_)));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn agents_at_the_same_revision_share_one_read_of_the_change_feed(pool: PgPool) {
    let s = setup(pool).await;
    let mut first = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = first.next().await else { panic!("snapshot") };

    // Three agents up to date: one read of the feed answers them all, so the very same
    // heartbeat (a read each would stamp each its own time).
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_stream(&s.app, &s.token, Some(snapshot.revision)).await);
    }
    let mut beats = Vec::new();
    for stream in &mut streams {
        match stream.next().await {
            ConfigMessage::Heartbeat(beat) => beats.push(beat),
            other => panic!("a heartbeat first, not {other:?}"),
        }
    }
    assert_eq!(beats[0].revision, snapshot.revision);
    assert!(beats.iter().all(|beat| *beat == beats[0]), "{beats:#?}");

    // A change reaches every one of them, as the same delta from where they were.
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let basic = list_plans(&s.app.pool, api.id).await.unwrap().into_iter().find(|p| p.system_name == "basic").unwrap();
    let app = applications::create(
        &s.app.pool,
        s.account,
        &NewApplication { plan_id: basic.id, name: "Shared".into(), description: String::new() },
        &Actor::system("test"),
    )
    .await
    .unwrap();
    let mut deltas = Vec::new();
    for stream in streams.iter_mut().chain([&mut first]) {
        loop {
            match stream.next().await {
                ConfigMessage::Delta(delta) => {
                    deltas.push(delta);
                    break;
                }
                ConfigMessage::Heartbeat(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(deltas.iter().all(|delta| *delta == deltas[0]), "{deltas:#?}");
    assert_eq!(deltas[0].base_revision, snapshot.revision);
    assert!(
        deltas[0].changes.iter().any(|change| matches!(change, Change::UpsertApplication(a) if a.id == app.id.0)),
        "{:#?}",
        deltas[0]
    );
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_batches_count_once_however_often_they_arrive(pool: PgPool) {
    let s = setup(pool).await;
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let basic = list_plans(&s.app.pool, api.id).await.unwrap().remove(0);
    let app = applications::create(
        &s.app.pool,
        s.account,
        &NewApplication { plan_id: basic.id, name: "Meter".into(), description: String::new() },
        &Actor::system("test"),
    )
    .await
    .unwrap();
    let key = credentials::issue(&s.app.pool, s.account, app.id, &Actor::system("test")).await.unwrap();
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("snapshot") };
    let hits = snapshot.apis[0].metrics.iter().find(|m| m.system_name == "hits").unwrap().id;
    let mut buckets = [0u64; LATENCY_BUCKETS];
    buckets[1] = 7;
    let minute = (jiff::Timestamp::now().as_second() / 60) * 60;
    let batch = UsageBatch {
        id: uuid::Uuid::now_v7(),
        agent_id: uuid::Uuid::now_v7(),
        entries: vec![UsageEntry {
            application_id: app.id.0,
            metric: hits,
            minute,
            status_class: StatusClass::Success,
            count: 7,
            latency_buckets: buckets,
            group: None,
        }],
        credentials_used: vec![tollgate_protocol::CredentialUse { hash: key.secret.hash(), minute }],
        refused: Vec::new(),
        failed_calls: Vec::new(),
        failed_calls_dropped: 0,
    };
    for duplicate in [false, true, true] {
        let res =
            s.app.client.post(s.app.url("/agent/v1/usage")).bearer_auth(&s.token).json(&batch).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let ack: UsageAck = res.json().await.unwrap();
        assert_eq!(ack, UsageAck { batch_id: batch.id, duplicate });
    }
    assert_eq!(tollgate_core::usage::total_hits(&s.app.pool, app.id.0, hits).await.unwrap(), 7);
    let last_used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM credentials WHERE id = $1")
            .bind(key.id.0)
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(last_used.map(|t| t.unix_timestamp()), Some(minute), "the key's last use is recorded");
    // A fresh snapshot seeds the agent with the hour-and-longer usage.
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("snapshot") };
    let seeded: Vec<_> = snapshot.usage.iter().filter(|u| u.application_id == app.id.0).collect();
    assert_eq!(seeded.len(), 1, "the basic plan has one day limit on hits: {seeded:?}");
    assert_eq!(seeded[0].value, 7);

    let bad = s
        .app
        .client
        .post(s.app.url("/agent/v1/usage"))
        .bearer_auth(&s.token)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");

    // A well-formed batch that breaks the protocol's rules is invalid input,
    // answered as every API of the server answers it.
    let invalid = UsageBatch { id: uuid::Uuid::new_v4(), ..batch };
    let res =
        s.app.client.post(s.app.url("/agent/v1/usage")).bearer_auth(&s.token).json(&invalid).send().await.unwrap();
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_input");
    assert_eq!(body["field"], "batch");
    assert!(body["message"].as_str().unwrap().contains("UUIDv7"), "{body}");

    // Minutes ahead of the server's clock (an agent's clock runs fast): early, not invalid, so
    // the agent keeps the batch and sends it again (it drops what the server calls invalid).
    let mut early = invalid.clone();
    early.id = uuid::Uuid::now_v7();
    early.entries[0].minute = minute + 10 * 60;
    early.credentials_used.clear();
    let res = s.app.client.post(s.app.url("/agent/v1/usage")).bearer_auth(&s.token).json(&early).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("send the batch again later"), "{body}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn agents_report_their_revision_and_the_server_knows_their_lag(pool: PgPool) {
    let s = setup(pool).await;
    let status = tollgate_protocol::AgentStatus {
        protocol_version: tollgate_protocol::PROTOCOL_VERSION,
        agent_version: "0.1.0".into(),
        applied_revision: Some(1),
        rejected: Some(tollgate_protocol::Rejection { revision: 2, reason: "plans[0].time_zone: bad".into() }),
    };
    let res =
        s.app.client.post(s.app.url("/agent/v1/status")).bearer_auth(&s.token).json(&status).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let agents = gateways::list(&s.app.pool).await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].applied_revision, Some(1));
    assert!(agents[0].lag.unwrap() >= 1);
    assert!(agents[0].last_error.as_deref().unwrap().contains("refused revision 2"));
}

/// A token that sends a new agent id with every report keeps 256 processes apart, then counts
/// the rest as its unnamed one: the table does not grow with each request.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_token_keeps_at_most_256_processes_apart(pool: PgPool) {
    let s = setup(pool).await;
    let status = tollgate_protocol::AgentStatus {
        protocol_version: tollgate_protocol::PROTOCOL_VERSION,
        agent_version: "0.1.0".into(),
        applied_revision: Some(1),
        rejected: None,
    };
    // Sixteen at a time: new processes' first reports at once must not each find room.
    use futures_util::StreamExt as _;
    let statuses: Vec<u16> = futures_util::stream::iter(0..260)
        .map(|_| {
            s.app
                .client
                .post(s.app.url("/agent/v1/status"))
                .bearer_auth(&s.token)
                .header("tollgate-agent-id", uuid::Uuid::now_v7().to_string())
                .json(&status)
                .send()
        })
        .buffer_unordered(16)
        .map(|res| res.unwrap().status().as_u16())
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 204), "{statuses:?}");
    let named: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT agent_id FROM gateway_instances").fetch_all(&s.app.pool).await.unwrap();
    assert_eq!(named.len(), 257, "256 named and the unnamed one");
    assert_eq!(named.iter().filter(|(id,)| id.is_nil()).count(), 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_outside_the_accepted_window_or_too_large_is_refused_and_counts_nothing(pool: PgPool) {
    let s = setup(pool).await;
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let basic = list_plans(&s.app.pool, api.id).await.unwrap().remove(0);
    let actor = Actor::system("test");
    let app = applications::create(
        &s.app.pool,
        s.account,
        &NewApplication { plan_id: basic.id, name: "Bounds".into(), description: String::new() },
        &actor,
    )
    .await
    .unwrap();
    let key = credentials::issue(&s.app.pool, s.account, app.id, &actor).await.unwrap();
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("snapshot") };
    let hits = snapshot.apis[0].metrics.iter().find(|m| m.system_name == "hits").unwrap().id;
    let now = (jiff::Timestamp::now().as_second() / 60) * 60;
    let batch = |minute: i64, count: u64, latency: u64, used: i64| {
        let mut buckets = [0u64; LATENCY_BUCKETS];
        buckets[0] = latency;
        UsageBatch {
            id: uuid::Uuid::now_v7(),
            agent_id: uuid::Uuid::now_v7(),
            entries: vec![UsageEntry {
                application_id: app.id.0,
                metric: hits,
                minute,
                status_class: StatusClass::Success,
                count,
                latency_buckets: buckets,
                group: None,
            }],
            credentials_used: vec![tollgate_protocol::CredentialUse { hash: key.secret.hash(), minute: used }],
            refused: Vec::new(),
            failed_calls: Vec::new(),
            failed_calls_dropped: 0,
        }
    };
    let (client, url, token) = (&s.app.client, s.app.url("/agent/v1/usage"), &s.token);
    let post = |batch: UsageBatch| {
        let request = client.post(url.clone()).bearer_auth(token).json(&batch);
        async move { request.send().await.unwrap() }
    };
    let year_3000 = 32_503_680_000;
    let year_1900 = -2_208_988_800;
    let near_max = u64::try_from(i64::MAX).unwrap() - 5;
    for (what, bad, field) in [
        ("a minute in the year 3000", batch(year_3000, 1, 1, now), "entries[0].minute"),
        ("a minute in the year 1900", batch(year_1900, 1, 1, now), "entries[0].minute"),
        ("a minute two days ahead", batch(now + 2 * 86_400, 1, 1, now), "entries[0].minute"),
        ("a count near i64::MAX", batch(now, near_max, 1, now), "entries[0].count"),
        ("a latency bucket of u64::MAX", batch(now, 1, u64::MAX, now), "entries[0].latency_buckets[0]"),
        ("a key used in the year 3000", batch(now, 1, 1, year_3000), "credentials_used[0].minute"),
    ] {
        let res = post(bad).await;
        assert_eq!(res.status(), 422, "{what}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_input", "{what}: {body}");
        assert!(body["message"].as_str().unwrap().starts_with(field), "{what}: {body}");
    }
    assert_eq!(tollgate_core::usage::total_hits(&s.app.pool, app.id.0, hits).await.unwrap(), 0, "nothing counted");
    let last_used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM credentials WHERE id = $1")
            .bind(key.id.0)
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(last_used, None, "a refused batch does not move the key's last use");
    // An hour ahead is early, not invalid: 409, and the agent sends it again later.
    let early = post(batch(now + 3600, 1, 1, now)).await;
    assert_eq!(early.status(), 409);

    // Spooled usage a week old and a clock a few minutes fast are fine.
    let week_ago = now - 7 * 24 * 3600;
    for good in [batch(week_ago, 2, 2, week_ago), batch(now + 180, 3, 3, now + 180)] {
        assert_eq!(post(good).await.status(), 200);
    }
    assert_eq!(tollgate_core::usage::total_hits(&s.app.pool, app.id.0, hits).await.unwrap(), 5);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn imported_rules_reach_agents_as_imported_and_hand_made_ones_as_manual(pool: PgPool) {
    let s = setup(pool).await;
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let rule = tollgate_core::apis::rules::NewRule {
        http_method: "get".into(),
        pattern: "/cities".into(),
        metric: "hits".into(),
        delta: 2,
        last: false,
        position: None,
    };
    tollgate_core::apis::rules::add_rule(&s.app.pool, api.id, &rule, &Actor::system("test")).await.unwrap();
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("snapshot") };
    let weather = snapshot.apis.iter().find(|a| a.slug == "weather").unwrap();
    let (manual, imported): (Vec<_>, Vec<_>) =
        weather.mapping_rules.iter().partition(|r| r.origin == tollgate_protocol::RuleOrigin::Manual);
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert_eq!((manual[0].pattern.as_str(), manual[0].delta), ("/cities", 2));
    assert!(!imported.is_empty() && imported.iter().all(|r| r.pattern.ends_with('$')), "{imported:?}");
    let views = tollgate_core::apis::rules::rules(&s.app.pool, api.id).await.unwrap();
    assert_eq!(views.iter().filter(|r| !r.imported).count(), 1);
}

/// Real documents' path templates reach agents as rules they accept: a trailing `/`, text
/// around a parameter, a dotted parameter name. One rule an agent refused used to hold back
/// the whole config of every agent (and every change after it); a rule stored before imports
/// checked their paths is left out rather than sent.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn imported_path_templates_reach_agents_as_rules_they_accept(pool: PgPool) {
    let s = setup(pool).await;
    let source = "openapi: 3.0.3\ninfo: {title: Files, version: '1'}\npaths:\n  /users/:\n    get: {responses: {'200': {description: ok}}}\n  /files/{name}.{ext}:\n    get: {responses: {'200': {description: ok}}}\n  /v1/{name}:cancel:\n    post: {responses: {'200': {description: ok}}}\n  /pets/{pet.id}:\n    get: {responses: {'200': {description: ok}}}\n  /$metadata:\n    get: {responses: {'200': {description: ok}}}\n  /#Action=AddTags:\n    post: {responses: {'200': {description: ok}}}\n  /alerts?lat={lat}:\n    get: {responses: {'200': {description: ok}}}\n  /Your Path:\n    get: {responses: {'200': {description: ok}}}\n";
    let spec = tollgate_openapi::parse(source).unwrap();
    let new = tollgate_core::apis::NewApi { slug: Some("files".into()), ..Default::default() };
    let api =
        tollgate_core::apis::create_from_spec(&s.app.pool, source, &spec, new, &Actor::system("test")).await.unwrap();
    // A rule from before: stored as it was, never sent.
    sqlx::query(
        "INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, position, imported)
         SELECT gen_random_uuid(), api_id, id, 'GET', '/a//b$', 99, true FROM metrics WHERE api_id = $1 AND system_name = 'hits'",
    )
    .bind(api.id.0)
    .execute(&s.app.pool)
    .await
    .unwrap();
    let mut stream = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(snapshot) = stream.next().await else { panic!("snapshot") };
    snapshot.validate().expect("a config every agent accepts");
    let files = snapshot.apis.iter().find(|a| a.slug == "files").unwrap();
    let patterns: Vec<&str> = files.mapping_rules.iter().map(|r| r.pattern.as_str()).collect();
    assert_eq!(patterns.len(), 8, "{patterns:?}");
    for (path, pattern) in [
        ("/users/", "/users/$"),
        ("/files/report.pdf", "/files/{name}.{ext}$"),
        ("/v1/operations%2F7:cancel", "/v1/{name}:cancel$"),
        ("/pets/7", "/pets/{pet.id}$"),
        ("/$metadata", "/$metadata$"),
        // A query or fragment in a path key is no path: the rule is the path before it.
        ("/?Action=AddTags", "/$"),
        ("/alerts?lat=1", "/alerts$"),
        ("/Your%20Path", "/Your%20Path$"),
    ] {
        let rule = tollgate_protocol::Pattern::parse(pattern).unwrap();
        assert!(patterns.contains(&pattern), "{pattern} in {patterns:?}");
        assert!(rule.matches(path), "{pattern} matches {path}");
    }
}

/// Registers `n` applications on the weather API's first plan.
async fn add_apps(s: &Setup, n: usize) {
    let api = tollgate_core::apis::find_by_slug(&s.app.pool, "weather").await.unwrap().unwrap();
    let plan = list_plans(&s.app.pool, api.id).await.unwrap().remove(0);
    for i in 0..n {
        applications::create(
            &s.app.pool,
            s.account,
            &NewApplication { plan_id: plan.id, name: format!("App {i}"), description: String::new() },
            &Actor::system("test"),
        )
        .await
        .unwrap();
    }
}

/// Reads a binary config stream (`Accept: application/vnd.tollgate.config+bin; version=3`).
async fn open_binary(app: &TestApp, token: &str, revision: Option<u64>) -> reqwest::Response {
    let url = match revision {
        Some(r) => app.url(&format!("/agent/v1/config?revision={r}")),
        None => app.url("/agent/v1/config"),
    };
    let res = app
        .client
        .get(url)
        .bearer_auth(token)
        .header("accept", format!("{}, application/x-ndjson;q=0.5", tollgate_protocol::binary::BINARY_MEDIA_TYPE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], tollgate_protocol::binary::BINARY_MEDIA_TYPE);
    res
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_binary_stream_is_format_version_3_and_older_agents_get_ndjson(pool: PgPool) {
    use tollgate_protocol::binary::{FormatVersion, FrameKind, FrameReader};
    let s = setup(pool).await;
    add_apps(&s, 1).await;
    let mut res = open_binary(&s.app, &s.token, None).await;
    let first = tokio::time::timeout(Duration::from_secs(10), res.chunk()).await.unwrap().unwrap().unwrap();
    assert_eq!(&first[..8], b"TGSB\x03\0\0\0", "the preamble names format version 3");
    let mut reader = FrameReader::new();
    reader.push(&first);
    read_frames(&mut res, &mut reader, |frame| {
        assert_eq!(frame.format, FormatVersion::V3);
        frame.kind == FrameKind::End
    })
    .await;

    // What agents reading only format version 1 (the bare type) or 2 send: NDJSON second.
    for accept in [
        "application/vnd.tollgate.config+bin, application/x-ndjson;q=0.5",
        "application/vnd.tollgate.config+bin; version=2, application/x-ndjson;q=0.5",
    ] {
        let res = s
            .app
            .client
            .get(s.app.url("/agent/v1/config"))
            .bearer_auth(&s.token)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], tollgate_protocol::NDJSON_CONTENT_TYPE, "{accept}");
        let mut lines = Ndjson { res, buffer: Vec::new() };
        assert!(matches!(lines.next().await, ConfigMessage::Snapshot(_)), "a JSON snapshot first for {accept}");
    }
}

/// The frames of a binary stream until `done` says enough.
async fn read_frames(
    res: &mut reqwest::Response,
    reader: &mut tollgate_protocol::binary::FrameReader,
    mut done: impl FnMut(&tollgate_protocol::binary::Frame) -> bool,
) {
    loop {
        while let Some(frame) = reader.next_frame().expect("a well-formed frame") {
            if done(&frame) {
                return;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("data within 10 s")
            .expect("stream readable")
            .expect("stream still open");
        reader.push(&chunk);
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_agent_asking_for_binary_gets_the_same_config_as_json(pool: PgPool) {
    let s = setup(pool).await;
    add_apps(&s, 5).await;
    // Keys of every shape: user and app keys, one expiring (rotated out), across applications.
    sqlx::query(
        "INSERT INTO credentials (id, application_id, kind, key_hash, prefix, last4, expires_at)
         SELECT gen_random_uuid(), a.id, CASE WHEN g = 2 THEN 'app_key' ELSE 'user_key' END::credential_kind,
                sha256(('bin' || g || a.id)::bytea), 'tg_bin', 'abcd', CASE WHEN g = 1 THEN now() + interval '1 day' END
         FROM applications a, generate_series(1, 3) g",
    )
    .execute(&s.app.pool)
    .await
    .unwrap();
    // A rejected application between others, keys and all: it and its keys stay out, and the
    // keys of the applications after it still name the right one.
    sqlx::query(
        "UPDATE applications SET state = 'rejected'
         WHERE id = (SELECT id FROM applications WHERE name LIKE 'App %' ORDER BY id OFFSET 2 LIMIT 1)",
    )
    .execute(&s.app.pool)
    .await
    .unwrap();
    let mut json = open_stream(&s.app, &s.token, None).await;
    let ConfigMessage::Snapshot(expected) = json.next().await else { panic!("a snapshot first") };
    let rejected: uuid::Uuid = sqlx::query_scalar("SELECT id FROM applications WHERE state = 'rejected'")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert!(expected.applications.iter().all(|a| a.id != rejected), "the rejected application is left out");
    assert!(
        expected.credentials.iter().any(|c| c.expires_at.is_some()),
        "{} keys, {} apps",
        expected.credentials.len(),
        expected.applications.len()
    );

    let mut res = open_binary(&s.app, &s.token, None).await;
    let mut reader = tollgate_protocol::binary::FrameReader::new();
    let mut assembler = tollgate_protocol::binary::SnapshotAssembler::default();
    let mut snapshot = None;
    read_frames(&mut res, &mut reader, |frame| {
        snapshot = assembler.push(frame).expect("assembles");
        snapshot.is_some()
    })
    .await;
    let mut snapshot = snapshot.expect("a snapshot");
    snapshot.validate().expect("the binary snapshot validates");
    assert_eq!(snapshot.revision, expected.revision);
    // Same content; credential order is the database's and the build time differs.
    snapshot.generated_at = expected.generated_at;
    let mut expected = expected;
    for s in [&mut snapshot, &mut expected] {
        s.credentials.sort_by_key(|c| c.hash.0);
    }
    // The binary form keeps an expiry to the second, rounded down, as the agent does.
    for c in &mut expected.credentials {
        c.expires_at = c.expires_at.map(|at| jiff::Timestamp::from_second(at.as_second()).unwrap());
    }
    assert_eq!(snapshot, expected);

    // An agent that is up to date gets a heartbeat frame at its revision, no snapshot.
    let mut res = open_binary(&s.app, &s.token, Some(expected.revision)).await;
    let mut reader = tollgate_protocol::binary::FrameReader::new();
    let mut message = None;
    read_frames(&mut res, &mut reader, |frame| {
        assert_ne!(frame.kind, tollgate_protocol::binary::FrameKind::Head, "no snapshot for an agent up to date");
        if frame.kind == tollgate_protocol::binary::FrameKind::Message {
            message = Some(frame.message().expect("a message"));
        }
        message.is_some()
    })
    .await;
    let Some(ConfigMessage::Heartbeat(beat)) = message else { panic!("a heartbeat, got {message:?}") };
    assert_eq!(beat.revision, expected.revision);
}

/// A counter on the server's `/metrics` (0 when absent). Counters are shared by
/// every test in this process, so compare before and after, never absolutes.
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// A connection of the test's own, outside the server's pool, so holding it
/// never starves the server.
async fn own_connection(pool: &PgPool) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect_with(&pool.connect_options()).await.unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_build_whose_last_agent_hangs_up_is_stopped_in_postgres(pool: PgPool) {
    use tollgate_protocol::binary::{FrameKind, FrameReader};
    let s = setup(pool).await;
    add_apps(&s, 1).await;
    let cancelled_before = counter(&s.app, "tollgate_snapshot_builds_cancelled_total").await;

    // The hold: while this transaction lasts, the build cannot read the credentials,
    // so it cannot finish by itself however fast or slow the machine is.
    let mut hold = own_connection(&s.app.pool).await;
    sqlx::query("BEGIN").execute(&mut hold).await.unwrap();
    sqlx::query("LOCK TABLE credentials IN ACCESS EXCLUSIVE MODE").execute(&mut hold).await.unwrap();

    let mut res = open_binary(&s.app, &s.token, None).await;
    let mut reader = FrameReader::new();
    // The head frame is sent after the catalog was read, so from now on the build's
    // transaction holds a read lock on api_upstreams until it ends.
    read_frames(&mut res, &mut reader, |frame| frame.kind == FrameKind::Head).await;
    drop(res);

    // Postgres says when the build's transaction is over: this lock is granted only
    // then. Without cancellation the build waits on `hold` and this runs into the
    // lock timeout (a bound for failing, not a timing the test relies on).
    let mut probe = own_connection(&s.app.pool).await;
    sqlx::query("SET lock_timeout = '120s'").execute(&mut probe).await.unwrap();
    sqlx::query("BEGIN").execute(&mut probe).await.unwrap();
    sqlx::query("LOCK TABLE api_upstreams IN ACCESS EXCLUSIVE MODE")
        .execute(&mut probe)
        .await
        .expect("the build's transaction ends while the credentials are still held");
    sqlx::query("ROLLBACK").execute(&mut probe).await.unwrap();
    assert!(
        counter(&s.app, "tollgate_snapshot_builds_cancelled_total").await > cancelled_before,
        "the stopped build is counted as cancelled"
    );
    // Once the credentials are free, the next agent gets a whole snapshot from a new
    // build: the cancelled one is never served.
    sqlx::query("ROLLBACK").execute(&mut hold).await.unwrap();
    let mut res = open_binary(&s.app, &s.token, None).await;
    let mut reader = FrameReader::new();
    let mut assembler = tollgate_protocol::binary::SnapshotAssembler::default();
    let mut snapshot = None;
    read_frames(&mut res, &mut reader, |frame| {
        snapshot = assembler.push(frame).expect("assembles");
        snapshot.is_some()
    })
    .await;
    let snapshot = snapshot.expect("a snapshot");
    snapshot.validate().expect("the snapshot validates");
    assert_eq!(snapshot.applications.len(), 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn revoking_an_agent_ends_its_open_config_stream(pool: PgPool) {
    let s = setup(pool).await;
    let mut stream = open_stream(&s.app, &s.token, None).await;
    assert!(matches!(stream.next().await, ConfigMessage::Snapshot(_)));
    let id = gateways::list(&s.app.pool).await.unwrap()[0].id;
    gateways::revoke(&s.app.pool, id, &Actor::system("test")).await.unwrap();
    // Heartbeats may still arrive; the stream ends within a few heartbeat intervals.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the stream is still open 20 s after the revocation");
        match tokio::time::timeout(Duration::from_secs(10), stream.res.chunk()).await {
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Ok(Ok(Some(_))) => continue,
            Err(_) => panic!("no heartbeat and no end within 10 s"),
        }
    }
    let res = s.app.client.get(s.app.url("/agent/v1/config")).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(res.status(), 401, "the token cannot reopen it");
}

/// Whether the only agent is marked connected, and when the server last noted it.
async fn connection_of(pool: &PgPool) -> (bool, Option<time::OffsetDateTime>) {
    let (connected, at): (Option<bool>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT bool_or(connected), max(last_seen_at) FROM gateway_instances")
            .fetch_one(pool)
            .await
            .unwrap();
    (connected.unwrap_or(false), at)
}

/// Polls until the server has noted something of the agent after `since` (a stream's end),
/// or fails after 20 s (a dropped stream is seen at its next heartbeat, within 5 s).
async fn noted_after(pool: &PgPool, since: Option<time::OffsetDateTime>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (connected, at) = connection_of(pool).await;
        if at != since {
            return connected;
        }
        assert!(Instant::now() < deadline, "the server did not see the stream end within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_agent_restarted_at_once_stays_connected_when_its_old_stream_ends(pool: PgPool) {
    let s = setup(pool).await;
    let mut old = open_stream(&s.app, &s.token, None).await;
    assert!(matches!(old.next().await, ConfigMessage::Snapshot(_)));
    // The restarted agent connects before the server has seen the old stream go.
    let mut new = open_stream(&s.app, &s.token, None).await;
    assert!(matches!(new.next().await, ConfigMessage::Snapshot(_)));
    let (connected, opened) = connection_of(&s.app.pool).await;
    assert!(connected);
    drop(old);
    assert!(noted_after(&s.app.pool, opened).await, "the old stream's end marked a connected agent down");
    let (_, old_ended) = connection_of(&s.app.pool).await;
    drop(new);
    assert!(!noted_after(&s.app.pool, old_ended).await, "the agent's last stream ended: it is down");
}
