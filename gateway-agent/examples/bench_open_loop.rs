//! Open-loop load for `bench/gateway`'s latency run: requests at a fixed rate whatever the
//! target answers, latency counted from each request's *scheduled* send time, so a stall
//! shows in the percentiles instead of pausing the load (no coordinated omission, as wrk2
//! and oha's correction do). Neither wrk2 nor oha is packaged for Debian; this needs nothing
//! the agent does not already build.
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example bench_open_loop -- URL RATE SECONDS CONNECTIONS
//! ```
//!
//! Each of CONNECTIONS keep-alive connections sends every CONNECTIONS/RATE seconds, one
//! request at a time; a late answer delays that connection's next request, whose latency
//! then includes the wait. Prints one line: `requests errors p50_us p99_us p999_us max_us`.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, seconds, connections] = args.as_slice() else {
        eprintln!("usage: bench_open_loop URL RATE SECONDS CONNECTIONS");
        std::process::exit(2);
    };
    let url: Uri = url.parse().expect("a URL");
    let rate: f64 = rate.parse().expect("requests per second");
    let seconds: f64 = seconds.parse().expect("seconds");
    let connections: usize = connections.parse().expect("connections");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (mut latencies, errors) = runtime.block_on(run(url, rate, Duration::from_secs_f64(seconds), connections));
    latencies.sort_unstable();
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    let us = |v: Option<&u64>| v.copied().unwrap_or(0);
    println!(
        "{} {} {} {} {} {}",
        latencies.len(),
        errors,
        us(at(0.5)),
        us(at(0.99)),
        us(at(0.999)),
        us(latencies.last())
    );
}

async fn run(url: Uri, rate: f64, duration: Duration, connections: usize) -> (Vec<u64>, u64) {
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..connections)
        .map(|index| {
            let url = url.clone();
            // Connections start spread over one interval, so the load is even.
            let first = start + interval.mul_f64(index as f64 / connections as f64);
            tokio::spawn(connection(url, first, interval, start + duration))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.expect("connection task");
        latencies.append(&mut l);
        errors += e;
    }
    (latencies, errors)
}

async fn connection(url: Uri, first: Instant, interval: Duration, end: Instant) -> (Vec<u64>, u64) {
    let authority = url.authority().expect("host:port").clone();
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sender = None;
    let mut scheduled = first;
    while scheduled < end {
        tokio::time::sleep_until(scheduled.into()).await;
        if sender.is_none() {
            let Ok(stream) = TcpStream::connect(authority.as_str()).await else {
                errors += 1;
                scheduled += interval;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let Ok((s, conn)) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await else {
                errors += 1;
                scheduled += interval;
                continue;
            };
            tokio::spawn(conn);
            sender = Some(s);
        }
        let Some(s) = sender.as_mut() else { continue };
        let request = Request::get(path.as_str())
            .header(hyper::header::HOST, authority.as_str())
            .body(Empty::new())
            .expect("request");
        let ok = match s.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response.into_body().collect().await.is_ok() && status.is_success()
            }
            Err(_) => {
                sender = None;
                false
            }
        };
        if ok {
            latencies.push(scheduled.elapsed().as_micros() as u64);
        } else {
            errors += 1;
        }
        scheduled += interval;
    }
    (latencies, errors)
}
