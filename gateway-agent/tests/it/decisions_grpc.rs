//! Envoy's gRPC `ext_authz` (`TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN`) driven by a real tonic
//! client over loopback, with `CheckRequest`s built as Envoy's filter builds them (see
//! docs/integrations/envoy.md). No Envoy binary runs here.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::data::accesslog::v3::{HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties};
use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_client::AccessLogServiceClient;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, Identifier, LogEntries,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use jiff::Timestamp;
use tollgate_agent::{Clock, RunningAgent, ServerUrl, Settings};
use tollgate_protocol::{KeyKind, Snapshot, StatusClass};
use tonic::transport::Channel;

use crate::decisions::{doc_block, header_key_fixture};
use crate::harness::*;
use crate::reports::by_class;

fn ten_past() -> Timestamp {
    "2030-01-01T00:00:10Z".parse().expect("time")
}

/// Settings with only the gRPC decision listener on, on a free loopback port.
fn grpc_settings(server: ServerUrl, state_dir: &std::path::Path, clock: Option<Clock>) -> Settings {
    let mut settings = settings(server, state_dir, clock);
    settings.authz_grpc_listen = Some("127.0.0.1:0".parse().expect("address"));
    settings
}

async fn client(agent: &RunningAgent) -> AuthorizationClient<Channel> {
    let addr: SocketAddr = agent.authz_grpc_addr().expect("the gRPC listener is on");
    AuthorizationClient::connect(format!("http://{addr}")).await.expect("connects")
}

/// A `CheckRequest` as Envoy's filter sends it: the original method, path with query and
/// authority in `attributes.request.http`, and the headers lower-cased, pseudo-headers included.
fn envoy_check(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let host = "shop.example.com";
    let mut map: HashMap<String, String> = [(":authority", host), (":method", method), (":path", path)]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    map.insert("x-request-id".into(), "6f1b3c1e-0000-4000-8000-000000000001".into());
    for (name, value) in headers {
        map.insert(name.to_ascii_lowercase(), (*value).to_owned());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1".into(),
                    method: method.into(),
                    headers: map,
                    path: path.into(),
                    host: host.into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    size: -1,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

async fn check(client: &mut AuthorizationClient<Channel>, request: CheckRequest) -> CheckResponse {
    client.check(request).await.expect("the check is answered").into_inner()
}

fn ok(response: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(response.status.as_ref().map(|s| s.code), Some(0), "{response:?}");
    match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not allowed: {other:?}"),
    }
}

fn denied(response: &CheckResponse) -> &DeniedHttpResponse {
    assert_ne!(response.status.as_ref().map(|s| s.code), Some(0), "{response:?}");
    match &response.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => denied,
        other => panic!("not denied: {other:?}"),
    }
}

/// (status, `error` of the JSON body) of a denial.
fn refusal(response: &CheckResponse) -> (i32, String) {
    let denied = denied(response);
    let body: serde_json::Value = serde_json::from_str(&denied.body).expect("a JSON body");
    (denied.status.as_ref().map_or(0, |s| s.code), body["error"].as_str().unwrap_or_default().to_owned())
}

fn value<'a>(options: &'a [HeaderValueOption], name: &str) -> Option<&'a str> {
    options.iter().filter_map(|o| o.header.as_ref()).find(|h| h.key == name).map(|h| h.value.as_str())
}

/// Method, path, headers, and the (status, error) Envoy answers the client.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, (i32, &'a str));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_grpc_check_contract() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(grpc_settings(cp.url(), dir.path(), Some(clock))).await;
    assert_eq!(agent.authz_addr(), None, "the HTTP decision endpoint stays off");
    let mut client = client(&agent).await;
    let key = fixture.key.as_str();

    // Allowed: the caller's headers overwrite a client's own, the key header is removed, the
    // client's answer gets the RateLimit headers.
    let answer = check(
        &mut client,
        envoy_check("GET", "/pets/items/1?a=b", &[("x-api-key", key), ("x-tollgate-plan", "forged")]),
    )
    .await;
    let allowed = ok(&answer);
    assert_eq!(value(&allowed.headers, "x-tollgate-application"), Some(&*fixture.app.to_string()));
    assert_eq!(value(&allowed.headers, "x-tollgate-plan"), Some(&*fixture.plan.to_string()));
    assert!(value(&allowed.headers, "x-tollgate-api").is_some_and(|slug| slug.starts_with("pets-")));
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    assert!(allowed.headers.iter().all(|o| o.append_action == overwrite), "{:?}", allowed.headers);
    assert_eq!(allowed.headers_to_remove, vec!["x-api-key".to_owned()]);
    assert!(allowed.query_parameters_to_remove.is_empty());
    assert_eq!(value(&allowed.response_headers_to_add, "ratelimit-limit"), Some("2"));
    assert_eq!(value(&allowed.response_headers_to_add, "ratelimit-remaining"), Some("1"));
    assert_eq!(upstream.count(), 0, "a decision never reaches the upstream");

    assert_eq!(
        ok(&check(&mut client, envoy_check("GET", "/pets/items/2", &[("x-api-key", key)])).await).headers.len(),
        3
    );
    // Over the day's limit of 2: Envoy answers the client 429 with the agent's body and headers.
    let over = check(&mut client, envoy_check("GET", "/pets/items/3", &[("x-api-key", key)])).await;
    assert_eq!(refusal(&over), (429, "limit_exceeded".to_owned()));
    let headers = &denied(&over).headers;
    assert_eq!(value(headers, "retry-after"), Some("86390"));
    assert_eq!(value(headers, "content-type"), Some("application/json"));
    assert_eq!((value(headers, "ratelimit-limit"), value(headers, "ratelimit-remaining")), (Some("2"), Some("0")));
    assert_eq!(value(headers, "x-tollgate-refusal"), None, "the body's copy is for nginx only");
    assert_eq!(over.status.as_ref().map(|s| s.code), Some(tonic::Code::ResourceExhausted as i32));
    let message = |answer: &CheckResponse| {
        let body: serde_json::Value = serde_json::from_str(&denied(answer).body).expect("a JSON body");
        body["message"].as_str().unwrap_or_default().to_owned()
    };
    assert!(message(&over).contains("allows 2 `get_item` per day"), "the limit named: {}", message(&over));
    let missing = check(&mut client, envoy_check("GET", "/pets/items/1", &[])).await;
    assert!(message(&missing).contains("`x-api-key` header"), "where the key goes: {}", message(&missing));
    assert!(value(&denied(&missing).headers, "www-authenticate").is_some_and(|v| v.starts_with("Key realm=")));
    let wrong_method = check(&mut client, envoy_check("DELETE", "/pets/items/1", &[("x-api-key", key)])).await;
    assert_eq!(value(&denied(&wrong_method).headers, "allow"), Some("GET, HEAD, POST"));

    let cases: [Case<'_>; 5] = [
        ("GET", "/pets/items/1", vec![], (401, "missing_credentials")),
        ("GET", "/pets/items/1", vec![("x-api-key", "tg_uk_nonsense")], (403, "invalid_credentials")),
        ("GET", "/pets/nothing", vec![("x-api-key", key)], (404, "no_matching_rule")),
        // The original method decides which rules apply: no DELETE rule, but a GET one.
        ("DELETE", "/pets/items/1", vec![("x-api-key", key)], (405, "method_not_allowed")),
        ("GET", "/pets/items/%2e%2e/admin", vec![("x-api-key", key)], (400, "invalid_path")),
    ];
    for (method, path, headers, (status, error)) in cases {
        let answer = check(&mut client, envoy_check(method, path, &headers)).await;
        assert_eq!(refusal(&answer), (status, error.to_owned()), "{method} {path}");
    }
    let wrong = new_key(KeyKind::UserKey);
    let answer = check(&mut client, envoy_check("GET", "/pets/items/1", &[("x-api-key", wrong.as_str())])).await;
    assert_eq!(refusal(&answer), (403, "invalid_credentials".to_owned()));
    // A check without the HTTP request's attributes decides nothing.
    let empty = check(&mut client, CheckRequest::default()).await;
    assert_eq!(refusal(&empty), (400, "invalid_decision_request".to_owned()));

    agent.shutdown().await.expect("clean shutdown");
    let m = fixture.metrics;
    assert_eq!((cp.accepted_count(m.get_item), cp.accepted_count(m.hits)), (2, 2), "counted once per allowed check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_grpc_removes_a_key_sent_in_the_query() {
    let upstream = Upstream::start().await;
    // The standard fixture reads `user_key` from the query.
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(grpc_settings(cp.url(), dir.path(), None)).await;
    let mut client = client(&agent).await;
    let path = format!("/pets/items/1?a=b&user_key={}&USER_KEY={}", fixture.key.as_str(), fixture.key.as_str());
    let answer = check(&mut client, envoy_check("GET", &path, &[])).await;
    let allowed = ok(&answer);
    assert_eq!(allowed.query_parameters_to_remove, vec!["user_key".to_owned(), "USER_KEY".to_owned()]);
    assert!(allowed.headers_to_remove.is_empty(), "{:?}", allowed.headers_to_remove);
    // After a `;`, which some upstreams read as a separator: Envoy splits at `&` only, so the
    // whole pair that hides the key goes.
    let path = format!("/pets/items/1?b=2&a=1;user_key={}", fixture.key.as_str());
    let answer = check(&mut client, envoy_check("GET", &path, &[])).await;
    assert_eq!(ok(&answer).query_parameters_to_remove, vec!["a".to_owned()]);
    agent.shutdown().await.expect("clean shutdown");
    assert_eq!(cp.accepted_count(fixture.metrics.get_item), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_grpc_without_a_config_is_unavailable_then_decides_from_disk() {
    // No config yet: UNAVAILABLE, so that Envoy's failure policy applies.
    let down = ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let empty_dir = TempDir::new();
    let agent =
        tollgate_agent::Agent::start(grpc_settings(down.clone(), empty_dir.path(), None)).await.expect("starts");
    let mut client_without = client(&agent).await;
    let status = client_without.check(envoy_check("GET", "/pets/items/1", &[])).await.expect_err("no decision");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("not_ready"), "{status:?}");
    agent.shutdown().await.expect("clean shutdown");

    // The last good config, from disk after a restart with the management server down.
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(grpc_settings(cp.url(), dir.path(), Some(clock.clone()))).await;
    let key = fixture.key.as_str();
    ok(&check(&mut client(&agent).await, envoy_check("GET", "/pets/items/1", &[("x-api-key", key)])).await);
    let saved = dir.path().join("config.bin");
    eventually("the config on disk", || {
        let saved = saved.clone();
        async move {
            let bytes = std::fs::read(&saved).ok()?;
            let snapshot: Snapshot = tollgate_protocol::binary::decode_snapshot(&bytes).ok()?;
            (snapshot.revision == fixture.snapshot.revision).then_some(())
        }
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    drop(cp);
    let agent = start_ready(grpc_settings(down, dir.path(), Some(clock))).await;
    let mut client = client(&agent).await;
    ok(&check(&mut client, envoy_check("GET", "/pets/items/1", &[("x-api-key", key)])).await);
    let over = check(&mut client, envoy_check("GET", "/pets/items/1", &[("x-api-key", key)])).await;
    assert_eq!(refusal(&over), (429, "limit_exceeded".to_owned()), "the count before the restart holds");
    agent.shutdown().await.expect("clean shutdown");
}

/// One HTTP access-log entry as Envoy's gRPC logger sends it with
/// `additional_request_headers_to_log: [<header>]`.
fn log_entry(header: &str, decision: Option<&str>, status: u32) -> HttpAccessLogEntry {
    HttpAccessLogEntry {
        request: Some(HttpRequestProperties {
            path: "/pets/items/1".into(),
            request_headers: decision.map(|id| (header.to_owned(), id.to_owned())).into_iter().collect(),
            ..HttpRequestProperties::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some(UInt32Value { value: status }),
            ..HttpResponseProperties::default()
        }),
        ..HttpAccessLogEntry::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_access_log_reports_the_response_code_once() {
    // The values of the documented access-log config.
    let als = doc_block("envoy.md", " als");
    assert!(als.contains("cluster_name: tollgate_agent_grpc"), "{als}");
    let header = als
        .lines()
        .skip_while(|line| !line.contains("additional_request_headers_to_log"))
        .nth(1)
        .and_then(|line| line.trim().strip_prefix("- "))
        .expect("the logged header")
        .to_owned();
    let log_name = als.lines().find_map(|l| l.trim().strip_prefix("log_name: ")).expect("log_name").to_owned();

    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = grpc_settings(cp.url(), dir.path(), Some(clock));
    settings.authz_reports = true;
    let agent = start_ready(settings).await;
    let addr = agent.authz_grpc_addr().expect("on");
    let mut client = client(&agent).await;
    let key = fixture.key.as_str();
    let mut decisions = Vec::new();
    for path in ["/pets/items/1", "/pets/items/2"] {
        let answer = check(&mut client, envoy_check("GET", path, &[("x-api-key", key)])).await;
        let id = value(&ok(&answer).headers, &header).expect("the decision names itself to the upstream").to_owned();
        decisions.push(id);
    }
    assert_ne!(decisions[0], decisions[1]);

    // The upstream answered the first call 503. Its report comes twice (counted once), with an
    // id the agent never gave and without an id (neither counted); the second call's never comes.
    let mut logs = AccessLogServiceClient::connect(format!("http://{addr}")).await.expect("connects");
    let message = StreamAccessLogsMessage {
        identifier: Some(Identifier { node: None, log_name }),
        log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
            log_entry: vec![
                log_entry(&header, Some(&decisions[0]), 503),
                log_entry(&header, Some(&decisions[0]), 200),
                log_entry(&header, Some("00000000000000ff"), 500),
                log_entry(&header, None, 500),
            ],
        })),
    };
    let stream = tonic::codegen::tokio_stream::iter(vec![message]);
    logs.stream_access_logs(stream).await.expect("the stream is taken");
    let get_item = fixture.metrics.get_item;
    eventually("the reported call counted as 5xx", || {
        let counted = by_class(&cp, get_item);
        async move { (counted == vec![(StatusClass::ServerError, 1)]).then_some(()) }
    })
    .await;

    let metrics = get(&format!("http://{}/metrics", agent.admin_addr()), &[]).await.body;
    for line in [
        r#"tollgate_agent_decision_reports_total{outcome="counted"} 1"#,
        r#"tollgate_agent_decision_reports_total{outcome="unknown"} 2"#,
        r#"tollgate_agent_decision_reports_total{outcome="expired"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // At shutdown the unreported call is counted as the decision saw it.
    agent.shutdown().await.expect("clean shutdown");
    assert_eq!(by_class(&cp, get_item), vec![(StatusClass::Success, 1), (StatusClass::ServerError, 1)]);
    assert_eq!(cp.accepted_count(fixture.metrics.hits), 2, "each allowed call counted once");
}

/// An API with upstream groups: the allowed `ok_response` names the chosen group among the
/// upstream headers (here the one group, by weight), so Envoy can route by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ok_response_names_the_upstream_group() {
    use tollgate_protocol::{Routing, Upstream as UpstreamUrl, UpstreamGroup};
    let upstream = Upstream::start().await;
    let mut fixture = header_key_fixture(&upstream);
    fixture.snapshot.routing = vec![Routing {
        api_id: fixture.snapshot.apis[0].id,
        groups: vec![UpstreamGroup {
            name: "canary".into(),
            weight: 1,
            upstreams: vec![UpstreamUrl { url: upstream.url("/backend") }],
        }],
        plans: vec![],
        applications: vec![],
    }];
    fixture.snapshot.declare_features();
    fixture.snapshot.validate().expect("valid routing snapshot");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(grpc_settings(cp.url(), dir.path(), None)).await;
    let mut client = client(&agent).await;
    let forged = [("x-api-key", fixture.key.as_str()), ("x-tollgate-upstream-group", "forged")];
    let answer = check(&mut client, envoy_check("GET", "/pets/items/1", &forged)).await;
    let allowed = ok(&answer);
    assert_eq!(value(&allowed.headers, "x-tollgate-upstream-group"), Some("canary"));
    assert!(value(&allowed.response_headers_to_add, "x-tollgate-upstream-group").is_none());
    agent.shutdown().await.expect("clean shutdown");
}
