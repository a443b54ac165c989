//! Writes the agent config used by `bench/gateway`: a protocol [`Snapshot`] in the agent's
//! on-disk form (`STATE_DIR/config.json`), so an agent whose management server is down
//! serves it straight from disk.
//!
//! ```sh
//! cargo run --release -p tollgate-agent --example bench_config -- STATE_DIR UPSTREAM_URL
//! ```
//!
//! One API (`bench`, base path `/bench`, user key in the `user_key` query parameter) with a
//! `hits` metric, seven methods and seven mapping rules, all evaluated on every request
//! (none is `last`); a plan with hour and month limits on `hits` of 10^12 (nothing is ever
//! refused); the benchmark's application and 10,000 other applications with a key each, so
//! the key lookup searches a populated table. Prints the benchmark key (a well-formed
//! `tg_uk_…` key made from fixed entropy, so runs are reproducible) on stdout.

use std::io::Write;

use jiff::Timestamp;
use tollgate_protocol::key::ENTROPY_BYTES;
use tollgate_protocol::{
    Api, Application, ApplicationState, AuthMode, Credential, KeyHash, KeyKind, KeyLocation, Lifecycle, Limit,
    MappingRule, Metric, NoMatch, Period, Plan, RuleOrigin, SecretKey, Snapshot, TimeZoneName, Upstream,
};
use uuid::Uuid;

const OTHER_APPS: u128 = 10_000;
const GENEROUS: u64 = 1_000_000_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state_dir, upstream] = args.as_slice() else {
        eprintln!("usage: bench_config STATE_DIR UPSTREAM_URL");
        std::process::exit(2);
    };

    let api = Uuid::from_u128(1);
    let hits = Uuid::from_u128(100);
    let plan = Uuid::from_u128(200);
    // (method, pattern, metric system name); the benchmark requests `GET /items/{id}`.
    let rules = [
        ("GET", "/items$", "list_items"),
        ("POST", "/items$", "create_item"),
        ("GET", "/items/{id}/reviews$", "list_reviews"),
        ("GET", "/items/{id}$", "get_item"),
        ("PUT", "/items/{id}$", "update_item"),
        ("DELETE", "/items/{id}$", "delete_item"),
        ("GET", "/search", "search"),
    ];
    let mut metrics = vec![Metric { id: hits, system_name: "hits".into(), parent: None }];
    let mut mapping_rules = Vec::new();
    for (i, (method, pattern, name)) in rules.iter().enumerate() {
        let id = Uuid::from_u128(101 + i as u128);
        metrics.push(Metric { id, system_name: (*name).into(), parent: Some(hits) });
        mapping_rules.push(MappingRule {
            http_method: (*method).into(),
            pattern: (*pattern).into(),
            metric: id,
            delta: 1,
            position: i as u32 + 1,
            last: false,
            origin: RuleOrigin::Import,
        });
    }

    let mut snapshot = Snapshot::new(1, Timestamp::now());
    snapshot.apis.push(Api {
        id: api,
        slug: "bench".into(),
        hosts: vec![],
        base_path: "/bench".into(),
        upstreams: vec![Upstream { url: upstream.clone() }],
        lifecycle: Lifecycle::Published,
        auth: AuthMode::UserKey { location: KeyLocation::Query { name: "user_key".into() } },
        metrics,
        mapping_rules,
        on_no_match: NoMatch::NotFound,
    });
    snapshot.plans.push(Plan {
        id: plan,
        api_id: api,
        time_zone: TimeZoneName::new("Europe/Paris").expect("zone"),
        limits: vec![
            Limit { metric: hits, period: Period::Hour, max: GENEROUS },
            Limit { metric: hits, period: Period::Month, max: GENEROUS },
        ],
    });

    let key = SecretKey::from_entropy(KeyKind::UserKey, [7; ENTROPY_BYTES]);
    for n in 0..=OTHER_APPS {
        let app = Uuid::from_u128(1_000_000 + n);
        snapshot.applications.push(Application { id: app, plan_id: plan, state: ApplicationState::Live, app_id: None });
        let hash = if n == 0 { key.hash() } else { KeyHash::of(&format!("tg_uk_bench_other_{n}")) };
        snapshot.credentials.push(Credential { hash, kind: KeyKind::UserKey, application_id: app, expires_at: None });
    }
    if let Err(err) = snapshot.validate() {
        eprintln!("invalid snapshot: {err}");
        std::process::exit(1);
    }

    std::fs::create_dir_all(state_dir).expect("state dir");
    let path = std::path::Path::new(state_dir).join("config.json");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("config.json"));
    serde_json::to_writer(&mut file, &snapshot).expect("write");
    file.flush().expect("flush");
    println!("{}", key.as_str());
}
