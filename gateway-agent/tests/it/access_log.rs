//! The JSON access log (`TOLLGATE_AGENT_ACCESS_LOG=json`): one line per request from the
//! proxy and the decision endpoint, with the fields log shippers need and never the key.

use std::path::Path;

use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::Value;
use tollgate_agent::AccessLogMode;

use crate::decisions::{authz, decision_settings};
use crate::harness::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The log's lines once there are `count` of them.
async fn lines(path: &Path, count: usize) -> Vec<Value> {
    eventually(&format!("{count} access log lines"), || async move {
        let text = std::fs::read_to_string(path).ok()?;
        let lines: Vec<Value> =
            text.lines().map(|line| serde_json::from_str(line).expect("each line is a JSON object")).collect();
        (lines.len() >= count).then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_and_refused_calls_are_logged_as_json_lines_without_the_key() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let log = dir.path().join("access.jsonl");
    let mut settings = decision_settings(cp.url(), dir.path(), None);
    settings.access_log = AccessLogMode::Json;
    settings.access_log_path = Some(log.clone());
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();
    let authz = authz(&agent);
    let key = fixture.key.as_str();
    let api = fixture.snapshot.apis[0].id.to_string();
    let app = fixture.app.to_string();
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");

    // The key in the query and in a header too.
    let both = [("x-api-key", key), ("traceparent", traceparent.as_str())];
    let ok = get(&format!("http://{proxy}/pets/items/7?a=1&user_key={key}"), &both).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let unruled = get(&format!("http://{proxy}/pets/nothing?user_key={key}"), &[("x-api-key", key)]).await;
    assert_eq!(unruled.status, StatusCode::NOT_FOUND);
    let unknown = get(&format!("http://{proxy}/nowhere?user_key={key}"), &[("traceparent", "00-bad-01")]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let allowed = get(&format!("http://{authz}/pets/items/1?user_key={key}"), &both).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    let missing = get(&format!("http://{authz}/pets/items/1"), &[("x-api-key", key)]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);

    let lines = lines(&log, 5).await;
    assert_eq!(lines.len(), 5, "one line per request: {lines:?}");
    for line in &lines {
        let at: Timestamp = line["timestamp"].as_str().expect("timestamp").parse().expect("RFC 3339");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "UTC: {at}");
        assert!(line["duration_us"].is_u64(), "{line}");
        assert_eq!(line["method"], "GET");
    }
    let [ok, unruled, unknown, allowed, missing] = &lines[..] else { unreachable!() };

    assert_eq!(ok["path"], "/pets/items/7", "no query string");
    assert_eq!((ok["status"].as_u64(), ok["upstream_status"].as_u64()), (Some(200), Some(200)));
    assert_eq!((&ok["decision"], &ok["code"]), (&Value::from("admitted"), &Value::Null));
    assert_eq!((&ok["api_id"], &ok["application_id"]), (&Value::from(&*api), &Value::from(&*app)));
    assert_eq!(ok["bytes"], 2, "the upstream's `ok`");
    assert_eq!(ok["trace_id"], TRACE);

    assert_eq!(unruled["path"], "/pets/nothing");
    assert_eq!(unruled["status"], 404);
    assert_eq!((&unruled["decision"], &unruled["code"]), (&Value::from("refused"), &Value::from("no_matching_rule")));
    assert_eq!((&unruled["api_id"], &unruled["application_id"]), (&Value::from(&*api), &Value::from(&*app)));
    assert_eq!((&unruled["upstream_status"], &unruled["trace_id"]), (&Value::Null, &Value::Null));
    assert!(unruled["bytes"].as_u64().is_some_and(|bytes| bytes > 0), "{unruled}");

    assert_eq!(unknown["path"], "/nowhere");
    assert_eq!((&unknown["decision"], &unknown["code"]), (&Value::from("refused"), &Value::from("unknown_api")));
    assert_eq!((&unknown["api_id"], &unknown["application_id"]), (&Value::Null, &Value::Null));
    assert_eq!(unknown["trace_id"], Value::Null, "an invalid traceparent is not logged");

    assert_eq!(allowed["path"], "/pets/items/1", "the decided request's path");
    assert_eq!((&allowed["decision"], &allowed["code"]), (&Value::from("admitted"), &Value::from("allowed")));
    assert_eq!((&allowed["api_id"], &allowed["application_id"]), (&Value::from(&*api), &Value::from(&*app)));
    assert_eq!(allowed["trace_id"], TRACE);

    assert_eq!(missing["status"], 401);
    assert_eq!(
        (&missing["decision"], &missing["code"]),
        (&Value::from("refused"), &Value::from("missing_credentials"))
    );

    agent.shutdown().await.expect("clean shutdown");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains(key), "the key is in the access log: {text}");
    assert!(!text.contains("user_key"), "a query string is in the access log: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_json_log_off_nothing_is_written() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let log = dir.path().join("access.jsonl");
    for mode in [AccessLogMode::Off, AccessLogMode::On] {
        let mut settings = settings(cp.url(), dir.path(), None);
        settings.access_log = mode;
        settings.access_log_path = Some(log.clone());
        let agent = start_ready(settings).await;
        let proxy = agent.proxy_addr();
        let ok = get(&format!("http://{proxy}/pets/items/7?user_key={}", fixture.key.as_str()), &[]).await;
        assert_eq!(ok.status, StatusCode::OK);
        let refused = get(&format!("http://{proxy}/nowhere"), &[]).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
        agent.shutdown().await.expect("clean shutdown");
        // The file would be opened at start were the JSON log on.
        assert!(!log.exists(), "{mode:?} wrote {log:?}");
    }
}
