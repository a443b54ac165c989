//! Open-loop load for `bench/gateway`'s latency run: requests at a fixed rate whatever the
//! target answers, latency counted from each request's *scheduled* send time, so a stall
//! shows in the percentiles instead of pausing the load (no coordinated omission, as wrk2
//! and oha's correction do). Neither wrk2 nor oha is packaged for Debian; this needs only
//! the standard library and `nix`'s safe epoll and timerfd.
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example bench_open_loop -- URL RATE SECONDS CONNECTIONS
//! ```
//!
//! Request `k` is due at `k / RATE` seconds. It goes out on the first idle one of
//! CONNECTIONS keep-alive connections (one request at a time on each); when all are busy it
//! waits for one, and its latency includes the wait. Prints one line:
//! `requests errors p50_us p99_us p999_us max_us send_p99_us late_p99_us`: the latency
//! percentiles from each request's due time, then the p99 from when it was written and the
//! p99 of how late the generator itself wrote. A generator short of CPU (it shares a core
//! with whatever else the run starts) shows in the last two, not as the target's latency.
//!
//! One thread, non-blocking sockets and epoll, as wrk is built: the generator shares a core
//! with the upstream, and a thread per connection spent that core on wake-ups (the direct
//! upstream's own p99 reached 22 ms at 25k requests a second). Sends are timed by a periodic
//! `timerfd` at nanosecond resolution, armed once, with the timer slack set to 1 ns; an async runtime's millisecond timer ticks would add up to a
//! millisecond of the generator's own lateness, four times the 250 µs the latency target
//! allows. About five system calls a request: the timer's wake-up and read, the write, the
//! answer's wake-up and its read.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// Requests still unanswered this long after the last one was due count as errors.
const GRACE_NS: u64 = 5_000_000_000;
/// The epoll token of the send timer; connections use their index.
const TIMER: u64 = u64::MAX;

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
    let (Ok(rate), Ok(seconds), Ok(connections)) = (rate.parse::<f64>(), seconds.parse::<f64>(), connections.parse())
    else {
        eprintln!("bench_open_loop: RATE and SECONDS are numbers, CONNECTIONS a whole number");
        std::process::exit(2);
    };
    if rate <= 0.0 || seconds <= 0.0 || connections == 0 {
        eprintln!("bench_open_loop: RATE, SECONDS and CONNECTIONS must be above zero");
        std::process::exit(2);
    }
    match run(&target, rate, seconds, connections) {
        Ok(mut outcome) => {
            for values in [&mut outcome.latencies, &mut outcome.from_send, &mut outcome.lateness] {
                values.sort_unstable();
            }
            let at = |values: &[u64], q: f64| {
                values
                    .get(((values.len() as f64 * q) as usize).min(values.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(0)
            };
            let l = &outcome.latencies;
            println!(
                "{} {} {} {} {} {} {} {}",
                l.len(),
                outcome.errors,
                at(l, 0.5),
                at(l, 0.99),
                at(l, 0.999),
                l.last().copied().unwrap_or(0),
                at(&outcome.from_send, 0.99),
                at(&outcome.lateness, 0.99)
            );
        }
        Err(err) => {
            eprintln!("bench_open_loop: {err}");
            std::process::exit(1);
        }
    }
}

struct Outcome {
    latencies: Vec<u64>,
    /// Microseconds from each answered request's write to its answer.
    from_send: Vec<u64>,
    /// Microseconds from each request's due time to its write.
    lateness: Vec<u64>,
    errors: u64,
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

/// One keep-alive connection and the request it is waiting on, if any.
struct Connection {
    stream: Option<TcpStream>,
    /// When the request in flight was due (monotonic nanoseconds).
    due: Option<u64>,
    /// When it was written.
    sent: u64,
    buffer: Vec<u8>,
}

fn run(target: &Target, rate: f64, seconds: f64, connections: usize) -> io::Result<Outcome> {
    // Timer expiries as exact as the kernel can make them, for every target alike.
    nix::sys::prctl::set_timerslack(1)?;
    let poll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
    poll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
    let mut conns = Vec::with_capacity(connections);
    let mut idle = VecDeque::with_capacity(connections);
    for index in 0..connections {
        let stream = connect(target)?;
        poll.add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, index as u64))?;
        conns.push(Connection { stream: Some(stream), due: None, sent: 0, buffer: Vec::with_capacity(4096) });
        idle.push_back(index);
    }
    let total = (rate * seconds).round() as u64;
    // Whole nanoseconds, so the timer's period and the schedule agree exactly.
    let interval = ((1e9 / rate).round() as u64).max(1);
    let start = now_ns()? + 100_000_000;
    let due_of = |k: u64| start + k * interval;
    let deadline = due_of(total) + GRACE_NS;
    let spec = |ns: u64| TimeSpec::new((ns / 1_000_000_000) as _, (ns % 1_000_000_000) as _);
    timer.set(Expiration::IntervalDelayed(spec(start), spec(interval)), TimerSetTimeFlags::TFD_TIMER_ABSTIME)?;
    let mut outcome = Outcome {
        latencies: Vec::with_capacity(total as usize),
        from_send: Vec::with_capacity(total as usize),
        lateness: Vec::with_capacity(total as usize),
        errors: 0,
    };
    let mut next = 0u64;
    let mut in_flight = 0usize;
    let mut events = vec![EpollEvent::empty(); connections + 1];
    let mut chunk = vec![0u8; 64 * 1024];
    while next < total || in_flight > 0 {
        let now = now_ns()?;
        if now > deadline {
            outcome.errors += in_flight as u64 + (total - next);
            break;
        }
        // Everything due goes out on an idle connection; the rest waits for one.
        while next < total && due_of(next) <= now {
            let Some(index) = idle.pop_front() else { break };
            let conn = &mut conns[index];
            if send(conn, target, &poll, index).is_err() {
                outcome.errors += 1;
                idle.push_back(index);
            } else {
                let sent = now_ns()?;
                conn.due = Some(due_of(next));
                conn.sent = sent;
                outcome.lateness.push(sent.saturating_sub(due_of(next)) / 1000);
                in_flight += 1;
            }
            next += 1;
            if next == total {
                timer.unset()?;
            }
        }
        // The timer or an answer wakes the loop; the timeout only bounds a stalled run.
        let ready = match poll.wait(&mut events, EpollTimeout::from(1000u16)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(err) => return Err(err.into()),
        };
        for event in &events[..ready] {
            if event.data() == TIMER {
                // A periodic timerfd goes on only once read (the kernel re-arms it there).
                let _ = nix::unistd::read(&timer, &mut [0u8; 8]);
                continue;
            }
            let index = event.data() as usize;
            let conn = &mut conns[index];
            match receive(conn, &mut chunk) {
                Ok(Some(success)) => {
                    let due = conn.due.take().unwrap_or(now);
                    in_flight -= 1;
                    if success {
                        let answered = now_ns()?;
                        outcome.latencies.push(answered.saturating_sub(due) / 1000);
                        outcome.from_send.push(answered.saturating_sub(conn.sent) / 1000);
                    } else {
                        outcome.errors += 1;
                    }
                    idle.push_back(index);
                }
                Ok(None) => {}
                Err(_) => {
                    // Closed or broken: the request fails, the next one reconnects.
                    if conn.due.take().is_some() {
                        in_flight -= 1;
                        outcome.errors += 1;
                    }
                    if let Some(stream) = conn.stream.take() {
                        let _ = poll.delete(&stream);
                    }
                    conn.buffer.clear();
                    idle.push_back(index);
                }
            }
        }
    }
    Ok(outcome)
}

fn connect(target: &Target) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(&target.address)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Writes the request (reconnecting a closed connection first). A request this small goes
/// whole into an empty socket buffer.
fn send(conn: &mut Connection, target: &Target, poll: &Epoll, index: usize) -> io::Result<()> {
    if conn.stream.is_none() {
        let stream = connect(target)?;
        poll.add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, index as u64))?;
        conn.stream = Some(stream);
    }
    let stream = conn.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
    match stream.write(&target.request) {
        Ok(n) if n == target.request.len() => Ok(()),
        Ok(_) => Err(io::Error::other("a short write of a small request")),
        Err(err) => Err(err),
    }
}

/// Reads what has arrived; `Some(success)` once the whole answer is in.
fn receive(conn: &mut Connection, chunk: &mut [u8]) -> io::Result<Option<bool>> {
    let stream = conn.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
    // One read takes a small answer whole; another only when the chunk came back full.
    loop {
        match stream.read(chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                conn.buffer.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    break;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    match parse_response(&conn.buffer)? {
        Some((used, success)) => {
            if used != conn.buffer.len() || conn.due.is_none() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes nobody asked for"));
            }
            conn.buffer.clear();
            Ok(Some(success))
        }
        None => Ok(None),
    }
}

/// A whole HTTP/1.1 response at the start of `bytes`: its length and whether it was a 2xx;
/// `None` while it is incomplete.
fn parse_response(bytes: &[u8]) -> io::Result<Option<(usize, bool)>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| bad("a response head that is not text"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).ok_or_else(|| bad("no status"))?;
    let success = status.starts_with('2');
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| bad("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let mut at = head_end + 4;
    if !chunked {
        let end = at + length.unwrap_or(0);
        return Ok((bytes.len() >= end).then_some((end, success)));
    }
    loop {
        let Some(line_end) = bytes[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = std::str::from_utf8(&bytes[at..at + line_end]).map_err(|_| bad("chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("chunk size"))?;
        at += line_end + 2;
        if size == 0 {
            // No trailers from the targets measured: the last chunk ends with one CRLF.
            return Ok((bytes.len() >= at + 2).then_some((at + 2, success)));
        }
        at += size + 2;
        if bytes.len() < at {
            return Ok(None);
        }
    }
}

/// The monotonic clock in nanoseconds: the clock the timer is armed on.
fn now_ns() -> io::Result<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    Ok(now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64)
}
