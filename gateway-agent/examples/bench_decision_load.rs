//! Open-loop load for `bench/decisions`: decisions at a fixed rate over HTTP (a GET, as nginx,
//! Traefik or Envoy's HTTP filter ask) or gRPC (Envoy's `Authorization/Check`), whatever the
//! decider answers. `ghz` is not packaged for Debian and h2load cannot pace requests, so this
//! uses the agent's own dependencies (hyper, tonic, envoy-types).
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example bench_decision_load -- \
//!     http URL RATE SECONDS CONNECTIONS
//! cargo run --release -p tollgate-agent --example bench_decision_load -- \
//!     grpc http://HOST:PORT/ORIGINAL_PATH?QUERY RATE SECONDS CONNECTIONS
//! ```
//!
//! Each of CONNECTIONS connections sends every CONNECTIONS/RATE seconds, one request at a time
//! (RATE 0: as fast as answers come, for throughput). Two latencies per request: from its
//! *scheduled* send time (a stall shows in the percentiles instead of pausing the load, as
//! wrk2 does; this includes up to 1 ms of the runtime timer's granularity) and from its actual
//! send (the decider's service time plus loopback). `late` counts requests sent more than 1 ms
//! after their schedule: the load generator or the machine fell behind. A gRPC answer counts as
//! an error unless it is OK with an `ok_response`. Prints one line:
//! `requests errors late seconds p50 p99 p999 max send_p50 send_p99 send_p999` (µs).

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as Attributes};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request's latencies, µs: from its schedule, and from its send.
type Sample = (u64, u64);

#[derive(Default)]
struct Tally {
    samples: Vec<Sample>,
    errors: u64,
    late: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, url, rate, seconds, connections] = args.as_slice() else {
        eprintln!("usage: bench_decision_load http|grpc URL RATE SECONDS CONNECTIONS");
        std::process::exit(2);
    };
    let url: Uri = url.parse().expect("a URL");
    let rate: f64 = rate.parse().expect("requests per second (0: closed loop)");
    let duration = Duration::from_secs_f64(seconds.parse().expect("seconds"));
    let connections: usize = connections.parse().expect("connections");
    let grpc = match mode.as_str() {
        "http" => false,
        "grpc" => true,
        _ => panic!("mode is http or grpc"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let tally = runtime.block_on(async move {
        let start = Instant::now() + Duration::from_millis(100);
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(connections as f64 / rate));
        let tasks: Vec<_> = (0..connections)
            .map(|index| {
                // Connections start spread over one interval, so the load is even.
                let first = start + interval.unwrap_or_default().mul_f64(index as f64 / connections as f64);
                let url = url.clone();
                tokio::spawn(connection(grpc, url, first, interval, start + duration))
            })
            .collect();
        let mut tally = Tally::default();
        for task in tasks {
            let mut one = task.await.expect("connection task");
            tally.samples.append(&mut one.samples);
            tally.errors += one.errors;
            tally.late += one.late;
        }
        tally
    });
    let seconds = started.elapsed().as_secs_f64() - 0.1;
    let n = tally.samples.len();
    let at =
        |sorted: &[u64], q: f64| sorted.get(((n as f64 * q) as usize).min(n.saturating_sub(1))).copied().unwrap_or(0);
    let mut scheduled: Vec<u64> = tally.samples.iter().map(|s| s.0).collect();
    let mut sent: Vec<u64> = tally.samples.iter().map(|s| s.1).collect();
    scheduled.sort_unstable();
    sent.sort_unstable();
    println!(
        "{n} {} {} {seconds:.2} {} {} {} {} {} {} {}",
        tally.errors,
        tally.late,
        at(&scheduled, 0.5),
        at(&scheduled, 0.99),
        at(&scheduled, 0.999),
        scheduled.last().copied().unwrap_or(0),
        at(&sent, 0.5),
        at(&sent, 0.99),
        at(&sent, 0.999),
    );
}

/// One connection's requests: on schedule (`interval`), or back to back (`None`).
async fn connection(grpc: bool, url: Uri, first: Instant, interval: Option<Duration>, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut client = match Client::connect(grpc, &url).await {
        Some(client) => client,
        None => {
            tally.errors += 1;
            return tally;
        }
    };
    let mut scheduled = first;
    tokio::time::sleep_until(first.into()).await;
    while scheduled < end {
        if let Some(interval) = interval {
            tokio::time::sleep_until(scheduled.into()).await;
            let now = Instant::now();
            if now.duration_since(scheduled) > Duration::from_millis(1) {
                tally.late += 1;
            }
            let sent = Instant::now();
            let ok = client.decide().await;
            record(&mut tally, ok, scheduled, sent);
            scheduled += interval;
        } else {
            let sent = Instant::now();
            let ok = client.decide().await;
            record(&mut tally, ok, sent, sent);
            scheduled = Instant::now();
        }
    }
    tally
}

fn record(tally: &mut Tally, ok: bool, scheduled: Instant, sent: Instant) {
    if ok {
        tally.samples.push((scheduled.elapsed().as_micros() as u64, sent.elapsed().as_micros() as u64));
    } else {
        tally.errors += 1;
    }
}

enum Client {
    Http { sender: http1::SendRequest<Empty<Bytes>>, authority: String, path: String },
    Grpc { client: AuthorizationClient<tonic::transport::Channel>, check: Box<CheckRequest> },
}

impl Client {
    async fn connect(grpc: bool, url: &Uri) -> Option<Client> {
        let authority = url.authority().expect("host:port").to_string();
        let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        if grpc {
            let client = AuthorizationClient::connect(format!("http://{authority}")).await.ok()?;
            // As Envoy asks about the request: method, path with query, authority, headers.
            let http = HttpRequest {
                method: "GET".into(),
                path: path.clone(),
                host: authority.clone(),
                headers: [(":authority", authority.as_str()), (":method", "GET"), (":path", path.as_str())]
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
                protocol: "HTTP/1.1".into(),
                ..HttpRequest::default()
            };
            let check = CheckRequest {
                attributes: Some(AttributeContext {
                    request: Some(Attributes { http: Some(http), ..Attributes::default() }),
                    ..AttributeContext::default()
                }),
            };
            return Some(Client::Grpc { client, check: Box::new(check) });
        }
        let stream = TcpStream::connect(authority.as_str()).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(conn);
        Some(Client::Http { sender, authority, path })
    }

    async fn decide(&mut self) -> bool {
        match self {
            Client::Http { sender, authority, path } => {
                let request = Request::get(path.as_str())
                    .header(hyper::header::HOST, authority.as_str())
                    .body(Empty::new())
                    .expect("request");
                match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        response.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                }
            }
            Client::Grpc { client, check } => match client.check((**check).clone()).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    answer.status.is_some_and(|s| s.code == 0)
                        && matches!(answer.http_response, Some(HttpResponse::OkResponse(_)))
                }
                Err(_) => false,
            },
        }
    }
}
