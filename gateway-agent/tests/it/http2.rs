//! HTTP/2 to clients, here h2c with prior knowledge (over TLS it is negotiated by ALPN):
//! the same admission, limits, headers and usage as HTTP/1.1, and routing by the request's
//! `:authority`. The client is curl (with nghttp2), and hyper's own HTTP/2 client for many
//! streams on one connection.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::Timestamp;
use tollgate_agent::Clock;
use tollgate_protocol::{ApplicationState, AuthMode, Credential, KeyKind, KeyLocation, Lifecycle, NoMatch, Period};
use uuid::Uuid;

use crate::harness::*;

/// An HTTP/2 connection (h2c with prior knowledge) to `proxy`, driven by a task of its own.
async fn http2_connection(
    proxy: std::net::SocketAddr,
) -> (hyper::client::conn::http2::SendRequest<Empty<Bytes>>, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let stream = tokio::net::TcpStream::connect(proxy).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("an HTTP/2 connection");
    (sender, tokio::spawn(connection))
}

/// What curl got from one request.
#[derive(Debug)]
struct Curled {
    /// `1.1` or `2`, as curl spoke it.
    version: String,
    status: u16,
    /// Lowercased names.
    headers: BTreeMap<String, String>,
    body: String,
}

impl Curled {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn error(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Runs curl with `args` (a URL among them) and reads its answer.
async fn curl(args: &[&str]) -> Curled {
    let run = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-w", "\n%{http_version}"])
        .args(args)
        .output();
    let output = tokio::time::timeout(DEADLINE, run).await.expect("curl in time").expect("curl runs");
    assert!(output.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    let (body, version) = rest.rsplit_once('\n').expect("the version line");
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Curled { version: version.to_owned(), status, headers, body: body.to_owned() }
}

/// What a client learns from an answer, and must learn alike over both protocols.
fn seen_by_client(answer: &Curled) -> (u16, String, [Option<String>; 5]) {
    (
        answer.status,
        answer.error(),
        [
            answer.header("ratelimit-limit").map(str::to_owned),
            answer.header("ratelimit-remaining").map(str::to_owned),
            answer.header("ratelimit-reset").map(str::to_owned),
            answer.header("retry-after").map(str::to_owned),
            answer.header("x-upstream").map(str::to_owned),
        ],
    )
}

/// Usage of `app` in accepted batches: (metric, status class) → count, and refused calls.
fn usage_of(cp: &ControlPlane, app: Uuid) -> (BTreeMap<(Uuid, String), u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut refused = 0;
    for batch in cp.accepted_batches() {
        for entry in batch.entries.iter().filter(|e| e.application_id == app) {
            let class = serde_json::to_string(&entry.status_class).expect("class");
            *counts.entry((entry.metric, class)).or_default() += entry.count;
        }
        refused += batch.refused.iter().filter(|r| r.application_id == app).map(|r| r.count).sum::<u64>();
    }
    (counts, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_meets_the_limits_headers_and_usage_of_http1() {
    // 10 s into a minute: no request straddles a window.
    let (clock, _hands) = Clock::manual("2030-01-01T00:00:10Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[('l', Period::Minute, 3)]);
    // Two applications on the same plan: one calls over HTTP/1.1, the other over HTTP/2.
    let (h2_app, h2_key) = fixture.add_app(ApplicationState::Live, None);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |path: &str, key: &str| format!("http://{}/pets{path}?user_key={key}", agent.proxy_addr());

    let mut answers = Vec::new();
    for (protocol, key) in [("--http1.1", fixture.key.as_str()), ("--http2-prior-knowledge", h2_key.as_str())] {
        let mut seen = Vec::new();
        for path in ["/list", "/list", "/items/7", "/list", "/list", "/nothing"] {
            let answer = curl(&[protocol, &url(path, key)]).await;
            assert_eq!(answer.version, if protocol == "--http1.1" { "1.1" } else { "2" }, "{answer:?}");
            seen.push(seen_by_client(&answer));
        }
        let refused_without_key = curl(&[protocol, &format!("http://{}/pets/list", agent.proxy_addr())]).await;
        seen.push(seen_by_client(&refused_without_key));
        answers.push(seen);
    }
    let statuses: Vec<u16> = answers[1].iter().map(|answer| answer.0).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 404, 401], "{:?}", answers[1]);
    let limited = &answers[1][4];
    assert_eq!(
        (limited.1.as_str(), limited.2[0].as_deref(), limited.2[1].as_deref()),
        ("limit_exceeded", Some("3"), Some("0"))
    );
    assert_eq!(limited.2[3].as_deref(), Some("50"), "Retry-After: to the end of the minute");
    assert_eq!(answers[0], answers[1], "HTTP/1.1 and HTTP/2 answer alike");

    let list_2xx = (fixture.metrics.list, "\"2xx\"".to_owned());
    let (h1_usage, h1_refused) = eventually("both applications' usage reported", || async {
        let (h1, h2) = (usage_of(&cp, fixture.app), usage_of(&cp, h2_app));
        let complete =
            |(usage, refused): &(BTreeMap<(Uuid, String), u64>, u64)| usage.get(&list_2xx) == Some(&3) && *refused == 2;
        (complete(&h1) && complete(&h2)).then_some(h1)
    })
    .await;
    assert_eq!(usage_of(&cp, h2_app), (h1_usage, h1_refused), "the same usage, call for call");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_routes_by_the_authority_and_forwards_as_http1() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let auth = AuthMode::UserKey { location: KeyLocation::Header { name: "x-api-key".into() } };
    let (api, app) = add_api(&mut fixture, "/", Lifecycle::Published, auth, upstream.url("/h"));
    let api_entry = fixture.snapshot.apis.iter_mut().find(|a| a.id == api).expect("api");
    api_entry.hosts = vec!["api.example.test".into()];
    api_entry.on_no_match = NoMatch::Pass;
    let key = new_key(KeyKind::UserKey);
    fixture.snapshot.credentials.push(Credential {
        hash: key.hash(),
        kind: KeyKind::UserKey,
        application_id: app,
        expires_at: None,
    });
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let connect_to = format!("api.example.test:80:{}:{}", proxy.ip(), proxy.port());
    let key_header = format!("x-api-key: {}", key.as_str());

    // curl sends the URL's host as `:authority` (there is no `Host` in HTTP/2).
    let answer = curl(&[
        "--http2-prior-knowledge",
        "--connect-to",
        &connect_to,
        "-H",
        &key_header,
        "-H",
        "cookie: a=1",
        "-H",
        "cookie: b=2",
        "http://api.example.test/anything?x=1",
    ])
    .await;
    assert_eq!((answer.version.as_str(), answer.status), ("2", 200), "{answer:?}");
    let seen = upstream.last();
    assert_eq!(seen.uri, "/h/anything?x=1");
    let header = |name: &str| seen.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("host"), Some(upstream.addr.to_string()));
    assert_eq!(header("x-forwarded-host").as_deref(), Some("api.example.test"));
    assert_eq!(header("x-api-key"), None, "the credential stays at the agent");
    assert_eq!(
        seen.headers.get_all("cookie").iter().collect::<Vec<_>>(),
        ["a=1; b=2"],
        "one Cookie field for the HTTP/1.1 upstream"
    );
    // Another authority: only the any-host APIs answer there.
    let answer = curl(&["--http2-prior-knowledge", "-H", &key_header, &format!("http://{proxy}/anything")]).await;
    assert_eq!((answer.status, answer.error().as_str()), (404, "unknown_api"));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_http2_connection_carries_concurrent_streams_and_a_big_head_is_431() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.max_header_bytes = 8 * 1024;
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();

    let (sender, _connection) = http2_connection(proxy).await;
    let requests = (0..32).map(|n| {
        let mut sender = sender.clone();
        let uri = format!("http://{proxy}/pets/items/{n}?user_key={}", fixture.key.as_str());
        async move {
            let request = Request::get(uri).body(Empty::<Bytes>::new()).expect("request");
            let response = sender.send_request(request).await.expect("a response");
            let status = response.status();
            let body = response.into_body().collect().await.expect("body").to_bytes();
            (status, body)
        }
    });
    let mut set = tokio::task::JoinSet::new();
    for request in requests {
        set.spawn(request);
    }
    let answers = tokio::time::timeout(DEADLINE, set.join_all()).await.expect("answered in time");
    assert!(answers.iter().all(|(status, body)| *status == StatusCode::OK && body == "ok"), "{answers:?}");
    assert_eq!(upstream.count(), 32);

    let answer = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &format!("x-big: {}", "a".repeat(16 * 1024)),
        &format!("http://{proxy}/pets/list?user_key={}", fixture.key.as_str()),
    ])
    .await;
    assert_eq!((answer.version.as_str(), answer.status), ("2", 431));
    assert_eq!(upstream.count(), 32, "refused before any handler");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_an_http2_connections_streams_finish() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.upstream_timeout = std::time::Duration::from_secs(20);
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();

    let (sender, connection) = http2_connection(proxy).await;
    // Slow requests in flight as streams of one connection, then stop.
    const IN_FLIGHT: usize = 4;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let mut sender = sender.clone();
        let uri = format!("http://{proxy}/pets/slow?user_key={}", fixture.key.as_str());
        set.spawn(async move {
            let request = Request::get(uri).body(Empty::<Bytes>::new()).expect("request");
            sender.send_request(request).await.map(|response| response.status())
        });
    }
    drop(sender);
    eventually("every stream to reach the upstream", || async { (upstream.count() == IN_FLIGHT).then_some(()) }).await;
    agent.shutdown().await.expect("clean shutdown");
    let statuses = set.join_all().await;
    assert!(statuses.iter().all(|s| matches!(s, Ok(StatusCode::OK))), "{statuses:?}");
    assert_eq!(cp.accepted_count(fixture.metrics.hits), IN_FLIGHT as u64, "counted before the stop ended");
    // The agent said GOAWAY and closed the connection once its streams were done.
    let ended = tokio::time::timeout(DEADLINE, connection).await.expect("the connection ended");
    assert!(ended.expect("task").is_ok(), "a clean end");
}

/// An HTTP/2 connection with no open stream is closed after the idle timeout, as an idle
/// HTTP/1.1 one is: a client that sends the preface, or half a header block, and then nothing
/// must not keep its place under the connection limit for ever. A stream still being answered
/// keeps its connection, however long the upstream takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_with_no_open_stream_is_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    // HEADERS on stream 1 without END_HEADERS: the rest of the block never comes.
    const HALF_A_HEADER_BLOCK: &[u8] = b"\0\0\x01\x01\x04\0\0\0\x01\x82";

    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.client_idle_timeout = std::time::Duration::from_millis(300);
    settings.upstream_timeout = std::time::Duration::from_secs(20);
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();

    let closed = |sent: Vec<u8>| async move {
        let mut stream = tokio::net::TcpStream::connect(proxy).await.expect("connect");
        stream.write_all(&sent).await.expect("write");
        let mut sink = Vec::new();
        // The agent's SETTINGS and GOAWAY, then the end (or a reset).
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut sink)).await.is_ok()
    };
    let silent = closed(PREFACE_AND_SETTINGS.to_vec());
    let half = closed([PREFACE_AND_SETTINGS, HALF_A_HEADER_BLOCK].concat());
    let (silent, half) = tokio::join!(silent, half);
    assert!(silent, "a connection that sent only the preface is still open after {DEADLINE:?}");
    assert!(half, "a connection with half a header block is still open after {DEADLINE:?}");
    assert_eq!(upstream.count(), 0);

    // The upstream takes 3 s, ten times the idle timeout: the open stream keeps the connection.
    let (mut sender, _connection) = http2_connection(proxy).await;
    let request = Request::get(format!("http://{proxy}/pets/slow?user_key={}", fixture.key.as_str()))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response =
        tokio::time::timeout(DEADLINE, sender.send_request(request)).await.expect("in time").expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");
}
