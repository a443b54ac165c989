//! A diagnostic reference for `bench/gateway`: the agent's HTTP stack with none of its
//! policy. Same hyper HTTP/1 server settings as the agent's proxy listener (keep-alive,
//! header read timeout, `TCP_NODELAY`), same pooled `hyper_util` legacy client (`TCP_NODELAY`,
//! pool timer, upstream timeout), same multi-threaded tokio runtime; but no routing table,
//! mapping rules, key check, limits, usage, metrics or header rewriting: `/bench/...` is
//! forwarded to the upstream without the `/bench` prefix and the response is streamed back.
//!
//! The gap between this and nginx is the cost of the transport stack; the gap between this
//! and the agent is the cost of the agent's pipeline. Since issue 13 the agent no longer uses
//! this stack (per-core single-threaded runtimes and hyper's connection-level client instead):
//! this stays as the reference for what the old stack cost.
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example bench_bare_proxy -- 127.0.0.1:18085 127.0.0.1:18080
//! ```

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{Either, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

type Body = Either<Incoming, Empty<Bytes>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: bench_bare_proxy LISTEN_ADDR UPSTREAM_HOST:PORT");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(serve(listen.clone(), upstream.clone()));
}

async fn serve(listen: String, upstream: String) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let upstream: &'static str = Box::leak(upstream.into_boxed_str());
    let listener = TcpListener::bind(&listen).await.expect("bind");
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let client = client.clone();
                async move { Ok::<_, Infallible>(forward(&client, upstream, request).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let Some(rest) = parts.uri.path().strip_prefix("/bench") else {
        return status(StatusCode::NOT_FOUND);
    };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let Ok(uri) = Uri::builder().scheme("http").authority(upstream).path_and_query(path_and_query).build() else {
        return status(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    let request = Request::from_parts(parts, body);
    match tokio::time::timeout(Duration::from_secs(30), client.request(request)).await {
        Ok(Ok(response)) => response.map(Either::Left),
        Ok(Err(_)) => status(StatusCode::BAD_GATEWAY),
        Err(_) => status(StatusCode::GATEWAY_TIMEOUT),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = code;
    response
}
