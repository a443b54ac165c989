//! Open-loop load for `bench/gateway`'s latency run: requests at a fixed rate whatever the
//! target answers, latency counted from each request's *scheduled* send time, so a stall
//! shows in the percentiles instead of pausing the load (no coordinated omission, as wrk2
//! and oha's correction do). Neither wrk2 nor oha is packaged for Debian; this needs nothing
//! beyond the standard library.
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example bench_open_loop -- URL RATE SECONDS CONNECTIONS
//! ```
//!
//! Each of CONNECTIONS keep-alive connections is a thread that sends every CONNECTIONS/RATE
//! seconds, one request at a time; a late answer delays that connection's next request, whose
//! latency then includes the wait. Prints one line: `requests errors p50_us p99_us p999_us max_us`.
//!
//! Threads with blocking sockets, not an async runtime: tokio's timers fire on millisecond
//! ticks, which would add up to a millisecond of the generator's own lateness to every
//! figure, four times the 250 µs the latency target allows. `thread::sleep` wakes within
//! the kernel's timer slack (50 µs by default), the same for every target of a run.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, seconds, connections] = args.as_slice() else {
        eprintln!("usage: bench_open_loop URL RATE SECONDS CONNECTIONS");
        std::process::exit(2);
    };
    let Some(target) = Target::parse(url) else {
        eprintln!("bench_open_loop: {url} is not an http://host:port/path URL");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("requests per second");
    let duration = Duration::from_secs_f64(seconds.parse().expect("seconds"));
    let connections: usize = connections.parse().expect("connections");
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..connections)
        .map(|index| {
            let target = target.clone();
            // Connections start spread over one interval, so the load is even.
            let first = start + interval.mul_f64(index as f64 / connections as f64);
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || connection(&target, first, interval, start + duration))
                .expect("a thread per connection")
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for thread in threads {
        let (mut l, e) = thread.join().expect("connection thread");
        latencies.append(&mut l);
        errors += e;
    }
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

#[derive(Clone)]
struct Target {
    address: String,
    request: Vec<u8>,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let rest = url.strip_prefix("http://")?;
        let (address, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").into_bytes();
        Some(Target { address: address.to_owned(), request })
    }
}

fn connection(target: &Target, first: Instant, interval: Duration, end: Instant) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut stream: Option<BufReader<TcpStream>> = None;
    let mut scheduled = first;
    while scheduled < end {
        let now = Instant::now();
        if scheduled > now {
            thread::sleep(scheduled - now);
        }
        if stream.is_none() {
            match TcpStream::connect(&target.address) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(BufReader::with_capacity(16 * 1024, s));
                }
                Err(_) => {
                    errors += 1;
                    scheduled += interval;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        match exchange(s, &target.request) {
            Ok(true) => latencies.push(scheduled.elapsed().as_micros() as u64),
            Ok(false) => errors += 1,
            Err(_) => {
                errors += 1;
                stream = None;
            }
        }
        scheduled += interval;
    }
    (latencies, errors)
}

/// Sends one request and reads its whole answer; `Ok(true)` for a 2xx.
fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> io::Result<bool> {
    stream.get_mut().write_all(request)?;
    let mut line = String::new();
    read_line(stream, &mut line)?;
    let success = line.split(' ').nth(1).is_some_and(|status| status.starts_with('2'));
    let mut length = None;
    let mut chunked = false;
    loop {
        read_line(stream, &mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<u64>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    if chunked {
        loop {
            read_line(stream, &mut line)?;
            let size = u64::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
            skip(stream, size)?;
            read_line(stream, &mut line)?;
            if size == 0 {
                break;
            }
        }
    } else {
        skip(stream, length.unwrap_or(0))?;
    }
    Ok(success)
}

fn read_line(stream: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<()> {
    line.clear();
    if stream.read_line(line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn skip(stream: &mut BufReader<TcpStream>, bytes: u64) -> io::Result<()> {
    let copied = io::copy(&mut stream.by_ref().take(bytes), &mut io::sink())?;
    if copied < bytes {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}
