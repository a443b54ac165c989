//! WebSocket through the agent, with a real client (Python `websockets`, run from
//! `ws_client.py` by Debian's /usr/bin/python3) and a real WebSocket echo upstream
//! (tokio-tungstenite): admission as for any call, one call counted per connection, the
//! connection held under the connection limit, closed when idle and at the agent's stop.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::header::HeaderMap;
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tollgate_agent::Clock;
use tollgate_protocol::{Period, StatusClass};

use crate::harness::*;

/// The interpreter Debian's python3-websockets is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// A WebSocket echo server: records each handshake and counts the connections that ended.
struct WsEcho {
    addr: std::net::SocketAddr,
    handshakes: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    ended: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl WsEcho {
    async fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicUsize::new(0));
        let (record, end) = (handshakes.clone(), ended.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (record, end) = (record.clone(), end.clone());
                tokio::spawn(async move {
                    // tungstenite's callback type, whatever its error's size.
                    #[allow(clippy::result_large_err)]
                    let callback = |request: &Request, response: Response| {
                        record.lock().expect("lock").push((request.uri().to_string(), request.headers().clone()));
                        Ok(response)
                    };
                    if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await {
                        while let Some(Ok(message)) = ws.next().await {
                            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                                break;
                            }
                        }
                    }
                    end.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        WsEcho { addr, handshakes, ended, task }
    }

    fn url(&self) -> String {
        format!("http://{}/backend", self.addr)
    }

    fn handshakes(&self) -> Vec<(String, HeaderMap)> {
        self.handshakes.lock().expect("lock").clone()
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Python client, followed line by line.
struct Client {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Client {
    fn start(mode: &str, url: &str) -> Client {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/ws_client.py");
        let mut child = tokio::process::Command::new(PYTHON)
            .args([script, mode, url])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Client { child, lines }
    }

    /// The client's next line; `None` once it exited.
    async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(DEADLINE, self.lines.next_line()).await.expect("the client said something").expect("read")
    }

    /// Everything it says until it exits, which it must do successfully.
    async fn rest(mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.line().await {
            lines.push(line);
        }
        let status = tokio::time::timeout(DEADLINE, self.child.wait()).await.expect("exits").expect("status");
        assert!(status.success(), "the client failed after {lines:?}");
        lines
    }
}

fn ws_url(agent: &tollgate_agent::RunningAgent, path_and_query: &str) -> String {
    format!("ws://{}{path_and_query}", agent.proxy_addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_is_admitted_limited_and_counted_once_per_connection() {
    // 10 s into a minute: the three connections share one limit window.
    let (clock, _hands) = Clock::manual("2030-01-01T00:00:10Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let echo = WsEcho::start().await;
    let mut fixture = Fixture::new(&upstream, &[('l', Period::Minute, 2)]);
    fixture.snapshot.apis[0].upstreams[0].url = echo.url();
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = ws_url(&agent, &format!("/pets/list?user_key={}&room=7", fixture.key.as_str()));

    let refused = Client::start("refused", &ws_url(&agent, "/pets/list?room=7")).rest().await;
    assert_eq!(refused, ["refused 401"], "no key, no upgrade");
    assert!(echo.handshakes().is_empty(), "the refused handshake never reached the upstream");

    for _ in 0..2 {
        let said = Client::start("echo", &url).rest().await;
        assert_eq!(said, ["text hello through the agent", "binary 16384 True", "done 1000"]);
    }
    let limited = Client::start("refused", &url).rest().await;
    assert_eq!(limited, ["refused 429"], "the plan's limit holds for upgrades too");

    let handshakes = echo.handshakes();
    assert_eq!(handshakes.len(), 2);
    let (uri, headers) = &handshakes[0];
    assert_eq!(uri, "/backend/list?room=7", "the key stays at the agent");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
    assert_eq!(header("connection"), Some("upgrade"));
    assert_eq!(header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(header("sec-websocket-key").is_some());

    // Each connection is one call on `list` (and its parent `hits`), in the 1xx class of its
    // 101, however many messages went through.
    let m = fixture.metrics;
    eventually("two calls counted and one refusal", || async {
        let batches = cp.accepted_batches();
        let counted = |metric| -> u64 {
            batches
                .iter()
                .flat_map(|b| b.entries.iter())
                .filter(|e| e.metric == metric && e.status_class == StatusClass::Informational)
                .map(|e| e.count)
                .sum()
        };
        let refused: u64 = batches.iter().flat_map(|b| b.refused.iter()).map(|r| r.count).sum();
        (counted(m.list) == 2 && counted(m.hits) == 2 && refused == 1).then_some(())
    })
    .await;
    assert_eq!(cp.accepted_count(m.list), 2, "nothing counted but the handshakes");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_is_closed_at_the_agents_stop() {
    let upstream = Upstream::start().await;
    let echo = WsEcho::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    fixture.snapshot.apis[0].upstreams[0].url = echo.url();
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let mut client = Client::start("hold", &ws_url(&agent, &format!("/pets/list?user_key={}", fixture.key.as_str())));
    assert_eq!(client.line().await.as_deref(), Some("echo still there?"));
    assert_eq!(client.line().await.as_deref(), Some("open"));

    let stopping = Instant::now();
    agent.shutdown().await.expect("clean shutdown");
    assert!(stopping.elapsed() < Duration::from_secs(5), "the tunnel did not hold the stop for the drain");
    // No close frame: the agent splices bytes, it does not speak WebSocket (1006: closed
    // without one).
    assert_eq!(client.rest().await, ["closed 1006"]);
    eventually("the upstream side closed too", || async { (echo.ended.load(Ordering::SeqCst) == 1).then_some(()) })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_upgraded_connection_is_closed_and_counts_under_the_connection_limit() {
    let upstream = Upstream::start().await;
    let echo = WsEcho::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    fixture.snapshot.apis[0].upstreams[0].url = echo.url();
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.upgrade_idle_timeout = Duration::from_secs(3);
    settings.max_connections = Some(1);
    settings.workers = 1;
    let agent = start_ready(settings).await;
    let list = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    let mut client = Client::start("hold", &ws_url(&agent, &format!("/pets/list?user_key={}", fixture.key.as_str())));
    let opened = Instant::now();
    assert_eq!(client.line().await.as_deref(), Some("echo still there?"));
    assert_eq!(client.line().await.as_deref(), Some("open"));

    // The tunnel is one of the agent's open connections, HTTP or not.
    let answer = raw_get(agent.proxy_addr(), &format!("/pets/list?user_key={}", fixture.key.as_str()), &[]).await;
    assert!(opened.elapsed() < Duration::from_secs(3), "too slow to see the tunnel open");
    assert_eq!((answer.status, answer.error().as_str()), (503, "too_many_connections"));

    assert_eq!(client.rest().await, ["closed 1006"]);
    let idle_for = opened.elapsed();
    assert!(idle_for >= Duration::from_secs(3), "closed after {idle_for:?}, before the idle timeout");
    eventually("the upstream side closed too", || async { (echo.ended.load(Ordering::SeqCst) == 1).then_some(()) })
        .await;
    // Its place is free again (the upstream only speaks WebSocket: a plain GET is a 502).
    eventually("the connection's place given back", || async {
        (get(&list, &[]).await.error() != "too_many_connections").then_some(())
    })
    .await;
    let said = Client::start("echo", &ws_url(&agent, &format!("/pets/list?user_key={}", fixture.key.as_str())));
    assert_eq!(said.rest().await.last().map(String::as_str), Some("done 1000"));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_upstream_declines_is_an_ordinary_call_and_h2c_is_not_forwarded() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let key = fixture.key.as_str();

    let request = format!(
        "GET /pets/list?user_key={key} HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, close\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let answer = raw_exchange(agent.proxy_addr(), request.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"), "{}", answer.head);
    let seen = upstream.last();
    let header = |name: &str| seen.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!((header("connection").as_deref(), header("upgrade").as_deref()), (Some("upgrade"), Some("websocket")));

    // `Upgrade: h2c` asks the agent itself for HTTP/2: an ordinary HTTP/1.1 call upstream.
    let request = format!(
        "GET /pets/list?user_key={key} HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    );
    let answer = raw_exchange(agent.proxy_addr(), request.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"), "{}", answer.head);
    let seen = upstream.last();
    for hop in ["upgrade", "http2-settings"] {
        assert!(seen.headers.get(hop).is_none(), "{hop} reached the upstream");
    }
    // Also when another protocol in the list has a byte beyond ASCII.
    let mut request = format!(
        "GET /pets/list?user_key={key} HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, close\r\nUpgrade: h2c, "
    )
    .into_bytes();
    request.extend_from_slice(b"\xe9\r\n\r\n");
    let answer = raw_exchange(agent.proxy_addr(), &request).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"), "{}", answer.head);
    assert!(upstream.last().headers.get("upgrade").is_none(), "h2c reached the upstream");

    // A handshake with a body is refused: an upstream that declined the switch might read the
    // body as a request of its own, past the rules (the agent cannot ask it to close, as it
    // does for other bodies on a GET, while asking it to upgrade).
    let before = upstream.count();
    let smuggled = "GET /admin HTTP/1.1\r\nHost: svc\r\n\r\n";
    let request = format!(
        "GET /pets/list?user_key={key} HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, close\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Content-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let answer = raw_exchange(agent.proxy_addr(), request.as_bytes()).await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(answer.body.contains("upgrade_with_body"), "{}", answer.body);
    assert_eq!(upstream.count(), before, "nothing reached the upstream");

    // The first three were calls like any other: 2xx usage.
    let list = fixture.metrics.list;
    eventually("three calls counted", || async { (cp.accepted_count(list) == 3).then_some(()) }).await;
    agent.shutdown().await.expect("clean shutdown");
}
