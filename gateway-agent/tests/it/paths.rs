//! The path policy end to end: no path, encoding or normalisation trick gets a request to an
//! upstream path that no mapping rule allows. Against a real nginx (which decodes and
//! resolves dot-segments, as most servers do), and as a property over generated paths with a
//! model of the most permissive upstream as the oracle.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use tollgate_protocol::{Pattern, Snapshot, Upstream as UpstreamUrl};

use crate::harness::*;

/// The fixture's API moved to `/ngx`, proxied to `upstream`, with `rules` (GET, pattern).
fn api_at_ngx(fixture: &mut Fixture, upstream: String, rules: &[&str]) {
    let api = &mut fixture.snapshot.apis[0];
    api.base_path = "/ngx".into();
    api.upstreams = vec![UpstreamUrl { url: upstream }];
    api.mapping_rules = rules
        .iter()
        .enumerate()
        .map(|(i, pattern)| rule("GET", pattern, fixture.metrics.hits, 1, i as u32 + 1, false))
        .collect();
    fixture.snapshot.validate().expect("valid snapshot");
}

/// The attacks of the review, and their relatives.
const ATTACKS: &[&str] = &[
    "/ngx/items/..%2f..%2fadmin",
    "/ngx/items/..%2F..%2Fadmin",
    "/ngx/items/%2e%2e/%2e%2e/admin",
    "/ngx/items/%2E%2e/..%2fadmin",
    "/ngx/items/../../admin",
    "/ngx/items/./../../admin",
    "/ngx/items/..%5c..%5cadmin",
    "/ngx/items/..\\..\\admin",
    "/ngx/items/%c0%ae%c0%ae/%c0%ae%c0%ae/admin",
    "/ngx/items/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afadmin",
    "/ngx/items/%252e%252e%252f%252e%252e%252fadmin",
    "/ngx/items/..;/..;/admin",
    "/ngx/items/%00",
    "/ngx/items/x%00.json",
    "/ngx/items/%EF%BC%8E%EF%BC%8E%EF%BC%8F%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin",
    // NFKC look-alikes: U+FE30 is `..`, U+2100 `a/c`, U+FF1F `?`, NBSP a space around dots.
    "/ngx/items/%EF%B8%B0",
    "/ngx/items/%E2%84%80",
    "/ngx/items/1%EF%BC%9Fuser_key=x",
    "/ngx/items/%C2%A0..",
    "/ngx/items//admin",
    "/ngx/items/%zz",
    "/ngx/items/1%3Fuser_key=x",
    "/ngx/items/1%23",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_behind_the_agent_only_ever_serves_paths_a_rule_allows() {
    let nginx = Nginx::start(
        r#"location /up/items/ { return 200 "item $uri\n"; }
    location / { return 200 "outside $uri\n"; }"#,
    )
    .await;
    let unused = Upstream::start().await;
    let mut fixture = Fixture::new(&unused, &[]);
    api_at_ngx(&mut fixture, nginx.url("/up"), &["/items/{id}$"]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let key = fixture.key.as_str();

    // nginx itself resolves the attack: asked directly, it serves /admin.
    let direct = raw_get(nginx_addr(&nginx), "/up/items/..%2f..%2fadmin", &[]).await;
    assert_eq!(direct.body, "outside /admin\n", "the upstream normalises as the review says");

    let ok = raw_get(agent.proxy_addr(), &format!("/ngx/items/42?user_key={key}"), &[]).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "item /up/items/42\n"));
    for attack in ATTACKS {
        let answer = raw_get(agent.proxy_addr(), &format!("{attack}?user_key={key}"), &[]).await;
        assert_eq!(answer.status, 400, "{attack}: {}", answer.body);
        assert_eq!(answer.error(), "invalid_path", "{attack}");
    }
    let served = nginx.served();
    let through_agent: Vec<_> = served.iter().skip(1).collect();
    assert_eq!(through_agent.len(), 1, "only the allowed call reached nginx: {served:?}");
    assert_eq!(through_agent[0], &("/up/items/42".to_owned(), "/up/items/42".to_owned()));
    agent.shutdown().await.expect("clean shutdown");
}

fn nginx_addr(nginx: &Nginx) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], nginx.port))
}

/// Path segments that mean something to some server somewhere, and ordinary ones.
const PIECES: &[&str] = &[
    "items",
    "items",
    "files",
    "docs",
    "admin",
    "7",
    "a.b",
    ".profile",
    "",
    ".",
    "..",
    "...",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%2f",
    "%2F",
    "x%3F",
    "x%23y",
    "..%2f..%2fadmin",
    "%5c",
    "\\",
    "..\\admin",
    "%00",
    "x%0a",
    "%c0%ae",
    "%c0%af",
    "%e0%80%ae",
    "%252e%252e",
    "%252f",
    "..;",
    "..;x=1",
    "x;y",
    ";",
    "%ef%bc%8e%ef%bc%8e",
    "\u{ff0e}\u{ff0e}",
    "\u{ff0f}",
    "a%20b",
    "%69tems",
    "%",
    "%zz",
    "caf%C3%A9",
    "%ff",
    "%2500",
];

/// Segments any server reads as they are.
const ORDINARY: &[&str] = &["7", "42", "a.b", "report.pdf", "x;y", "caf%C3%A9", "items", ""];

/// How the most permissive upstream could read a path: percent-decoded twice (overlong
/// UTF-8 decoded as its ASCII), Unicode look-alikes folded, `\` as `/`, `;parameters`
/// dropped, dot-segments resolved and empty segments merged.
fn upstream_reading(raw: &str) -> String {
    let mut bytes = percent_decode(raw.as_bytes());
    if bytes.contains(&b'%') {
        bytes = percent_decode(&bytes);
    }
    let bytes = fold_overlong(&bytes);
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| match c {
            '\u{ff0e}' | '\u{fe52}' | '\u{2024}' => '.',
            '\u{ff0f}' | '\u{2215}' | '\u{2044}' | '\\' | '\u{ff3c}' | '\u{fe68}' => '/',
            c => c,
        })
        .collect();
    let mut out: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or_default().trim();
        match segment {
            "" | "." => {}
            _ if segment.chars().all(|c| c == '.') => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Overlong two- and three-byte UTF-8 forms of ASCII, read as the ASCII (old decoders did).
fn fold_overlong(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i..] {
            [a @ (0xc0 | 0xc1), b, ..] if b & 0xc0 == 0x80 => {
                out.push(((a & 0x1f) << 6) | (b & 0x3f));
                i += 2;
            }
            [0xe0, b @ (0x80 | 0x81), c, ..] if c & 0xc0 == 0x80 => {
                out.push(((b & 0x3f) << 6) | (c & 0x3f));
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[test]
fn the_oracle_reads_paths_as_a_permissive_upstream_would() {
    assert_eq!(upstream_reading("/up/items/..%2f..%2fadmin"), "/admin");
    assert_eq!(upstream_reading("/up/items/%c0%ae%c0%ae/x"), "/up/x");
    assert_eq!(upstream_reading("/up/items/%252e%252e/x"), "/up/x");
    assert_eq!(upstream_reading("/up/items/..;/x"), "/up/x");
    assert_eq!(upstream_reading("/up/items/\u{ff0e}\u{ff0e}\u{ff0f}x"), "/up/x");
    assert_eq!(upstream_reading("/up//items/7/"), "/up/items/7");
}

#[test]
fn generated_paths_never_reach_the_upstream_outside_an_allowed_rule() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let rules = ["/items/{id}$", "/files/{name}", "/docs"];
    let (upstream, cp, agent, key, _dir) = runtime.block_on(async {
        let upstream = Upstream::start().await;
        let mut fixture = Fixture::new(&upstream, &[]);
        api_at_ngx(&mut fixture, upstream.url("/up"), &rules);
        let snapshot: Snapshot = fixture.snapshot.clone();
        let cp = ControlPlane::start(snapshot).await;
        let dir = TempDir::new();
        let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
        (upstream, cp, agent, fixture.key.as_str().to_owned(), dir)
    });
    let patterns: Vec<Pattern> = rules.iter().map(|r| Pattern::parse(r).expect("pattern")).collect();
    let allowed =
        |reading: &str| reading.strip_prefix("/up").is_some_and(|rest| patterns.iter().any(|p| p.matches(rest)));
    let outcomes = Arc::new(Mutex::new((0usize, 0usize)));
    // Mostly paths under a rule's prefix, so that both outcomes are common.
    let head =
        prop_oneof![4 => prop::sample::select(&["items", "files", "docs"][..]), 1 => prop::sample::select(PIECES)];
    let tail = prop_oneof![3 => prop::sample::select(ORDINARY), 2 => prop::sample::select(PIECES)];
    let path = (head, prop::collection::vec(tail, 0..4)).prop_map(|(head, tail)| {
        let mut path = format!("/ngx/{head}");
        for piece in tail {
            path.push('/');
            path.push_str(piece);
        }
        path
    });
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() });
    let result = runner.run(&path, |path| {
        let before = upstream.count();
        let answer = runtime.block_on(raw_get(agent.proxy_addr(), &format!("{path}?user_key={key}"), &[]));
        let seen = upstream.seen.lock().expect("lock")[before..].to_vec();
        let mut counts = outcomes.lock().expect("lock");
        if seen.is_empty() {
            counts.1 += 1;
            prop_assert_ne!(answer.status, 200, "{} answered 200 without reaching the upstream", path);
            return Ok(());
        }
        counts.0 += 1;
        prop_assert_eq!(seen.len(), 1);
        let received = seen[0].uri.split('?').next().unwrap_or_default().to_owned();
        let matched = format!("/up{}", &path["/ngx".len()..]);
        prop_assert_eq!(&received, &matched, "the upstream receives exactly the path that was matched");
        let reading = upstream_reading(&received);
        if !allowed(&reading) {
            return Err(TestCaseError::fail(format!("{path} reached the upstream as {received}, read as {reading}")));
        }
        Ok(())
    });
    let (proxied, refused) = *outcomes.lock().expect("lock");
    println!("generated paths: {proxied} proxied, {refused} refused");
    if let Err(err) = result {
        panic!("{err}");
    }
    // The property is only worth something if both kinds of path were generated.
    assert!(proxied >= 20 && refused >= 20, "proxied {proxied}, refused {refused}");
    runtime.block_on(agent.shutdown()).expect("clean shutdown");
    drop(cp);
}

/// `;parameters` are dropped by Tomcat, Spring and Jetty before routing and kept by most other
/// servers: where that changes which rules match (a literal segment), the upstream's server
/// would decide what runs and what is counted, so the call is refused; where it does not (a
/// parameter on a `{param}` segment), it goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_that_change_which_rule_matches_are_refused() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let key = fixture.key.as_str();
    let url = |path: &str| format!("http://{}/pets/{path}?user_key={key}", agent.proxy_addr());

    let answer = get(&url("items/7;v=1"), &[]).await;
    assert_eq!(answer.status.as_u16(), 200, "a parameter on a {{id}} segment: {}", answer.body);
    let before = upstream.count();
    // `list;x` matches no rule as it is, and `/list$` once its parameter is dropped; `items;x/7`
    // likewise `/items/{id}$`.
    for (path, segment) in [("list;x", 2), ("items;jsessionid=1/7", 2)] {
        let answer = get(&url(path), &[]).await;
        assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "invalid_path"), "{path}: {}", answer.body);
        assert!(answer.body.contains(&format!("Segment {segment} ")), "{path}: {}", answer.body);
    }
    assert_eq!(upstream.count(), before, "refused calls never reach the upstream");
    agent.shutdown().await.expect("clean shutdown");
}
