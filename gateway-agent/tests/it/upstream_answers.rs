//! What odd upstream answers do to the client and to the next request on the connection:
//! against a raw upstream that writes exactly the bytes each test names, so framing (chunked
//! with trailers, read to the close, informational answers, bytes past an answer) and
//! connection reuse are checked where they matter, through the proxy port.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate_protocol::Upstream as UpstreamUrl;

use tollgate_agent::RunningAgent;

use crate::harness::*;

/// A scripted upstream: for each request head it reads, the answer its path names, written
/// as raw bytes; records (connection number, path) of every request.
struct RawUpstream {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<(usize, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

fn answer_for(path: &str) -> (&'static [u8], bool) {
    match path {
        "/up/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
            false,
        ),
        // Bytes past the answer: never to be read as the next request's answer.
        "/up/extra" => {
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", false)
        }
        "/up/until-close" => (b"HTTP/1.0 200 OK\r\n\r\nuntil close", true),
        "/up/early-hints" => {
            (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
        }
        // The upstream's keep-alive ends right after this answer.
        "/up/then-close" => (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nclosed", true),
        "/up/head" => (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", false),
        // Not an HTTP status class (RFC 9110 §15): no usage class or failed-call record holds it.
        "/up/status600" => (b"HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nhi", false),
        // An upstream that stops waiting for a body (its own read timeout): it closes unanswered.
        "/up/give-up" => (b"", true),
        // A list of one repeated length (RFC 9110 8.6).
        "/up/length-list" => (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nhi", false),
        // A coding under the chunks: without this hop's header the client would take the
        // compressed bytes for the content.
        "/up/gzip-chunked" => {
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false)
        }
        // A tunnel accepted: what follows on the connection is the tunnel's, never a request.
        "/up/tunnel" => (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain", false),
    }
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut number = 0;
            while let Ok((mut socket, _)) = listener.accept().await {
                number += 1;
                let record = record.clone();
                let connection = number;
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                        buffer.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                        let (answer, close) = answer_for(&path);
                        let late = path == "/up/head-late";
                        record.lock().expect("lock").push((connection, path));
                        if late {
                            // Python's `http.server` with `do_HEAD = do_GET`: the head, then the
                            // body in a second write, here a whole answer for whoever is next.
                            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n").await;
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED").await;
                            continue;
                        }
                        if socket.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream { addr, seen, task }
    }

    fn seen(&self) -> Vec<(usize, String)> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A one-worker agent whose API (`/raw`, keyed by the fixture's key) goes to `raw` upstreams,
/// with a rule for each of `methods` on `/{x}`; the rest keeps the servers it talks to alive.
struct RawApi {
    agent: RunningAgent,
    key: String,
    _held: (Upstream, ControlPlane, TempDir),
}

impl RawApi {
    async fn start(raw: &[&RawUpstream], methods: &[&str]) -> RawApi {
        let unused = Upstream::start().await;
        let mut fixture = Fixture::new(&unused, &[]);
        let hits = fixture.metrics.hits;
        let api = &mut fixture.snapshot.apis[0];
        api.base_path = "/raw".into();
        api.upstreams = raw.iter().map(|raw| UpstreamUrl { url: format!("http://{}/up", raw.addr) }).collect();
        api.mapping_rules =
            methods.iter().zip(1..).map(|(method, position)| rule(method, "/{x}", hits, 1, position, false)).collect();
        fixture.snapshot.validate().expect("valid snapshot");
        let cp = ControlPlane::start(fixture.snapshot.clone()).await;
        let dir = TempDir::new();
        let mut config = settings(cp.url(), dir.path(), None);
        config.workers = 1;
        let agent = start_ready(config).await;
        RawApi { agent, key: fixture.key.as_str().to_owned(), _held: (unused, cp, dir) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_answers_are_framed_right_and_never_leak_into_the_next_request() {
    let raw = RawUpstream::start().await;
    let RawApi { agent, key, _held } = RawApi::start(&[&raw], &["GET", "HEAD", "POST"]).await;
    let url = |path: &str| format!("http://{}/raw/{path}?user_key={key}", agent.proxy_addr());

    let answer = get(&url("chunked"), &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "hello world"));
    // The answer's fields are read into the request's header map, emptied first: none of
    // the client's own fields come back.
    let answer = get(&url("plain"), &[("x-client-only", "yes"), ("accept", "text/plain")]).await;
    assert_eq!(answer.body, "plain");
    assert!(
        answer.headers.get("x-client-only").is_none() && answer.headers.get("accept").is_none(),
        "request fields in the answer: {:?}",
        answer.headers
    );
    let answer = get(&url("extra"), &[]).await;
    assert_eq!(answer.body, "hi");
    for _ in 0..3 {
        assert_eq!(get(&url("plain"), &[]).await.body, "plain", "bytes past an answer are never an answer");
    }
    assert_eq!(get(&url("until-close"), &[]).await.body, "until close");
    assert_eq!(get(&url("early-hints"), &[]).await.body, "ok");
    assert_eq!(get(&url("then-close"), &[]).await.body, "closed");
    assert_eq!(get(&url("plain"), &[]).await.body, "plain", "a connection the upstream closed is not used again");
    let head = send(hyper::Method::HEAD, &url("head"), &[], "").await;
    assert_eq!((head.status.as_u16(), head.body.as_str()), (200, ""));
    assert_eq!(get(&url("plain"), &[]).await.body, "plain", "a HEAD answer has no body to wait for");
    let head = send(hyper::Method::HEAD, &url("head-late"), &[], "").await;
    assert_eq!(head.status.as_u16(), 200);
    assert_eq!(get(&url("plain"), &[]).await.body, "plain", "a body sent late after a HEAD answer is no one's answer");
    let answer = get(&url("status600"), &[]).await;
    assert_eq!((answer.status.as_u16(), answer.error().as_str()), (502, "upstream_unavailable"), "{}", answer.body);

    let seen = raw.seen();
    let paths: Vec<&str> = seen.iter().map(|(_, path)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/up/chunked",
            "/up/plain",
            "/up/extra",
            "/up/plain",
            "/up/plain",
            "/up/plain",
            "/up/until-close",
            "/up/early-hints",
            "/up/then-close",
            "/up/plain",
            "/up/head",
            "/up/plain",
            "/up/head-late",
            "/up/plain",
            "/up/status600"
        ],
        "each request reached the upstream once"
    );
    let connection = |index: usize| seen[index].0;
    assert_eq!(connection(0), connection(1), "a chunked answer read to its end leaves the connection reusable");
    assert_ne!(connection(2), connection(3), "a connection with bytes past its answer is not reused");
    assert_eq!(connection(3), connection(4), "an ordinary connection is reused");
    assert_ne!(connection(8), connection(9), "nor one the upstream closed");
    let answer = get(&url("length-list"), &[]).await;
    let lengths: Vec<_> = answer.headers.get_all("content-length").iter().map(|v| v.to_str().unwrap_or("?")).collect();
    assert_eq!((answer.body.as_str(), lengths), ("hi", vec!["2"]), "one length goes on, not the list");

    // A transfer coding other than chunked alone is refused, on either path to the upstream.
    let answer = get(&url("gzip-chunked"), &[]).await;
    assert_eq!((answer.status.as_u16(), answer.error().as_str()), (502, "upstream_unavailable"), "{}", answer.body);
    let answer = send(hyper::Method::POST, &url("gzip-chunked"), &[], "with a body").await;
    assert_eq!((answer.status.as_u16(), answer.error().as_str()), (502, "upstream_unavailable"), "{}", answer.body);
    agent.shutdown().await.expect("clean shutdown");
}

/// `CONNECT` would ask the upstream for a tunnel: one that accepted would read the next
/// client's request inside it. The agent refuses it before routing, even where a rule for
/// any method would admit it; so it does `get`, which only such a rule would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_standard_methods_in_another_case_are_refused() {
    let raw = RawUpstream::start().await;
    let RawApi { agent, key, _held } = RawApi::start(&[&raw], &["ANY"]).await;
    let addr = agent.proxy_addr();
    let request = format!("CONNECT /raw/tunnel?user_key={key} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(addr, request.as_bytes()).await;
    assert_eq!(answer.status, 501, "{}", answer.head);
    assert!(answer.body.contains("tunnel_not_supported"), "{}", answer.body);
    let answer =
        raw_exchange(addr, format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
    assert_eq!(answer.status, 501, "authority form too: {}", answer.head);
    // A standard method in another case: no GET rule takes it, only ANY would, while some
    // servers run it as GET, past GET's own rules and limits.
    for method in ["get", "Post", "dElEtE"] {
        let request = format!("{method} /raw/x?user_key={key} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(addr, request.as_bytes()).await;
        assert_eq!(answer.status, 400, "{method}: {}", answer.head);
        assert!(answer.body.contains("invalid_method"), "{method}: {}", answer.body);
    }
    // An extension method of any case goes on.
    let request = format!("purge /raw/x?user_key={key} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_exchange(addr, request.as_bytes()).await.status, 200);
    assert_eq!(
        raw.seen().iter().map(|(_, path)| path.as_str()).collect::<Vec<_>>(),
        ["/up/x"],
        "only the extension method"
    );
    agent.shutdown().await.expect("clean shutdown");
}

/// A client that stalls its body until the upstream gives up on it (the upstream's own read
/// timeout, shorter than the agent's) is the client's failure: the answer is 408, and the
/// targets are not ejected for it (an attacker could empty a pool by stalling bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_giving_up_on_a_stalled_body_is_not_ejected() {
    let (first, second) = (RawUpstream::start().await, RawUpstream::start().await);
    let RawApi { agent, key, _held } = RawApi::start(&[&first, &second], &["GET", "POST"]).await;
    // Twice the failures that eject a target, spread over both.
    for _ in 0..10 {
        let stalled = format!(
            "POST /raw/give-up?user_key={key} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\nx"
        );
        let answer = raw_exchange(agent.proxy_addr(), stalled.as_bytes()).await;
        assert_eq!((answer.status, answer.error().as_str()), (408, "request_body_timeout"), "{}", answer.body);
    }
    let answer = get(&format!("http://{}/raw/plain?user_key={key}", agent.proxy_addr()), &[]).await;
    assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "plain"), "no target was ejected");
    agent.shutdown().await.expect("clean shutdown");
}
