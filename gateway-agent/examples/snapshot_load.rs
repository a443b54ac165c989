//! Measures how fast an agent loads a large config and how much memory it then holds.
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example snapshot_load -- generate 1000000 /tmp/big
//! cargo run --release -p tollgate-agent --example snapshot_load -- stream /tmp/big
//! cargo run --release -p tollgate-agent --example snapshot_load -- disk /tmp/big
//! ```
//!
//! `generate` writes `config.json` (the on-disk form) and `stream.ndjson` (one snapshot
//! line) with N keys, N applications and 1,000 APIs of 10 mapping rules (10k routes).
//! `stream` serves the line from disk to an agent and times snapshot-to-ready; `disk`
//! starts an agent whose management server is down and times load-from-disk-to-ready. Each
//! runs in its own process so the RSS figures are the agent's alone.

use std::io::Write;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tollgate_agent::{Agent, ServerUrl, Settings, Token};
use tollgate_protocol::{
    Api, Application, ApplicationState, AuthMode, ConfigMessage, Credential, KeyHash, KeyKind, KeyLocation, Lifecycle,
    Limit, MappingRule, Metric, NoMatch, Period, Plan, RuleOrigin, Snapshot, TimeZoneName, Upstream,
};
use uuid::Uuid;

const APIS: usize = 1000;
const RULES_PER_API: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tollgate_agent::init_logging(
        &std::env::var("LOG").unwrap_or_else(|_| "warn,tollgate_agent=info".into()),
        tollgate_agent::LogFormat::Human,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate", n, dir] => generate(n.parse().expect("a number of keys"), dir),
        ["stream", dir] => runtime.block_on(stream(dir)),
        ["disk", dir] => runtime.block_on(disk(dir)),
        _ => eprintln!("usage: snapshot_load generate N DIR | stream DIR | disk DIR"),
    }
}

fn generate(keys: usize, dir: &str) {
    let started = Instant::now();
    let mut snapshot = Snapshot::new(1, Timestamp::now());
    for a in 0..APIS {
        let api = Uuid::from_u128(a as u128 + 1);
        let hits = Uuid::from_u128((1 << 64) + a as u128);
        let methods: Vec<Uuid> =
            (0..RULES_PER_API).map(|r| Uuid::from_u128((2 << 64) + (a * RULES_PER_API + r) as u128)).collect();
        let mut metrics = vec![Metric { id: hits, system_name: "hits".into(), parent: None }];
        metrics.extend(methods.iter().enumerate().map(|(r, id)| Metric {
            id: *id,
            system_name: format!("op{r}"),
            parent: Some(hits),
        }));
        snapshot.apis.push(Api {
            id: api,
            slug: format!("api-{a}"),
            hosts: vec![],
            base_path: format!("/api{a}"),
            upstreams: vec![Upstream { url: "http://127.0.0.1:9".into() }],
            lifecycle: Lifecycle::Published,
            auth: AuthMode::UserKey { location: KeyLocation::Query { name: "user_key".into() } },
            metrics,
            mapping_rules: methods
                .iter()
                .enumerate()
                .map(|(r, id)| MappingRule {
                    http_method: "GET".into(),
                    pattern: format!("/things{r}/{{id}}$"),
                    metric: *id,
                    delta: 1,
                    position: r as u32,
                    last: false,
                    origin: RuleOrigin::Import,
                })
                .collect(),
            on_no_match: NoMatch::NotFound,
        });
        snapshot.plans.push(Plan {
            id: Uuid::from_u128((3 << 64) + a as u128),
            api_id: api,
            time_zone: TimeZoneName::new("Europe/Paris").expect("zone"),
            limits: vec![
                Limit { metric: hits, period: Period::Minute, max: 600 },
                Limit { metric: hits, period: Period::Month, max: 1_000_000 },
            ],
        });
    }
    for k in 0..keys {
        let app = Uuid::from_u128((4 << 64) + k as u128);
        snapshot.applications.push(Application {
            id: app,
            plan_id: Uuid::from_u128((3 << 64) + (k % APIS) as u128),
            state: ApplicationState::Live,
            app_id: None,
        });
        snapshot.credentials.push(Credential {
            hash: KeyHash::of(&format!("tg_uk_generated_{k}")),
            kind: KeyKind::UserKey,
            application_id: app,
            expires_at: None,
        });
    }
    std::fs::create_dir_all(dir).expect("dir");
    let mut disk = std::io::BufWriter::new(std::fs::File::create(format!("{dir}/config.json")).expect("file"));
    serde_json::to_writer(&mut disk, &snapshot).expect("write");
    disk.flush().expect("flush");
    let mut line = std::io::BufWriter::new(std::fs::File::create(format!("{dir}/stream.ndjson")).expect("file"));
    serde_json::to_writer(&mut line, &ConfigMessage::Snapshot(snapshot)).expect("write");
    line.write_all(b"\n").expect("write");
    line.flush().expect("flush");
    let size = std::fs::metadata(format!("{dir}/stream.ndjson")).expect("size").len();
    println!("generated {keys} keys in {:?}: {} MB per snapshot", started.elapsed(), size >> 20);
}

/// Serves `stream.ndjson` as the config stream, then waits.
async fn serve_stream(dir: String) -> (std::net::SocketAddr, tokio::sync::broadcast::Sender<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (sender, _) = tokio::sync::broadcast::channel::<Vec<u8>>(16);
    let lines = sender.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let path = format!("{dir}/stream.ndjson");
            let mut more = lines.subscribe();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                if !head.starts_with(b"GET /agent/v1/config") {
                    let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let mut file = tokio::fs::File::open(path).await.expect("stream file");
                let _ = tokio::io::copy(&mut file, &mut socket).await;
                // Keep the stream open, as a server would.
                while let Ok(line) = more.recv().await {
                    let _ = socket.write_all(&line).await;
                }
            });
        }
    });
    (addr, sender)
}

async fn start_and_time(
    server: std::net::SocketAddr,
    state_dir: std::path::PathBuf,
    what: &str,
    deltas: Option<tokio::sync::broadcast::Sender<Vec<u8>>>,
) {
    let url = ServerUrl::parse(&format!("http://{server}")).expect("url");
    let mut settings = Settings::new(url, Token::new("tg_agt_bench"), state_dir);
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.admin_listen = "127.0.0.1:0".parse().expect("addr");
    let started = Instant::now();
    let agent = Agent::start(settings).await.expect("agent");
    let ready = format!("{}/ready", agent.admin_addr());
    loop {
        let mut socket = tokio::net::TcpStream::connect(agent.admin_addr()).await.expect("connect");
        socket.write_all(b"GET /ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{what}: ready after {:?} wall, {} CPU ({ready})", started.elapsed(), cpu_time());
    println!("  at ready:  {}", memory());
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("  3 s later: {}", memory());
    if let Some(deltas) = deltas {
        // Revoke key 12345 and time until the proxy refuses it.
        let key = "tg_uk_generated_12345";
        let request = format!(
            "GET /api{}/things0/1?user_key={key} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            12345 % APIS
        );
        let proxy = agent.proxy_addr();
        let status = |request: String| async move {
            let mut socket = tokio::net::TcpStream::connect(proxy).await.expect("connect");
            socket.write_all(request.as_bytes()).await.expect("write");
            let mut answer = String::new();
            let _ = socket.read_to_string(&mut answer).await;
            answer.get(9..12).unwrap_or_default().to_owned()
        };
        println!("  key before revocation: {}", status(request.clone()).await);
        let delta = tollgate_protocol::Delta {
            base_revision: 1,
            revision: 2,
            changes: vec![tollgate_protocol::Change::RevokeCredential { hash: KeyHash::of(key) }],
        };
        let mut line = serde_json::to_vec(&ConfigMessage::Delta(delta)).expect("json");
        line.push(b'\n');
        let sent = Instant::now();
        deltas.send(line).expect("a stream is open");
        while status(request.clone()).await != "403" {}
        println!("  revoked key refused {:?} after the delta was sent", sent.elapsed());
    }
    agent.shutdown().await.expect("shutdown");
}

async fn stream(dir: &str) {
    let (server, deltas) = serve_stream(dir.to_owned()).await;
    let state = std::env::temp_dir().join(format!("snapshot-load-{}", Uuid::new_v4().simple()));
    start_and_time(server, state.clone(), "snapshot over the stream", Some(deltas)).await;
    let _ = std::fs::remove_dir_all(state);
}

async fn disk(dir: &str) {
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    start_and_time(dead, dir.into(), "snapshot from disk, server down", None).await;
}

/// User + system CPU time of this process so far (less sensitive to a busy machine than
/// wall time).
fn cpu_time() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    let total = ticks(11) + ticks(12);
    format!("{:.2}s", total as f64 / 100.0)
}

/// Current and peak resident set size.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.trim_start_matches(name).trim().to_owned())
            .unwrap_or_default()
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}
