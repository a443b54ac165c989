//! Response-code reports of allowed decisions (`TOLLGATE_AGENT_AUTHZ_REPORTS=on`): a real nginx
//! configured from docs/integrations/nginx.md sends its access-log lines over syslog (UDP) to
//! the agent, which counts each admitted call once, in the class of the status nginx answered.

use std::collections::BTreeMap;

use hyper::StatusCode;
use jiff::Timestamp;
use tollgate_agent::Clock;
use tollgate_protocol::StatusClass;
use uuid::Uuid;

use crate::decisions::{authz, decision_settings, doc_block, header_key_fixture, substitute};
use crate::harness::*;

/// Accepted usage of `metric` per status class.
pub fn by_class(cp: &ControlPlane, metric: Uuid) -> Vec<(StatusClass, u64)> {
    let mut classes: BTreeMap<StatusClass, u64> = BTreeMap::new();
    for entry in cp.accepted_batches().iter().flat_map(|b| b.entries.iter()).filter(|e| e.metric == metric) {
        *classes.entry(entry.status_class).or_default() += entry.count;
    }
    classes.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_lines_from_nginx_syslog() {
    let (clock, _hands) = Clock::manual("2030-01-01T00:00:10Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = decision_settings(cp.url(), dir.path(), Some(clock));
    settings.authz_reports = true;
    settings.authz_report_listen = Some("127.0.0.1:0".parse().expect("address"));
    let agent = start_ready(settings).await;

    let report = agent.report_addr().expect("the report socket is bound").to_string();
    let block = doc_block("nginx.md", "");
    let location = substitute(&doc_block("nginx.md", " report-location"), "127.0.0.1:8092", &report);
    let block = substitute(
        &block,
        "        auth_request /_tollgate_decision;\n",
        &format!("        auth_request /_tollgate_decision;\n{location}"),
    );
    let block = format!("{}{block}", doc_block("nginx.md", " report-http"));
    let (authz, upstream_addr) = (authz(&agent).to_string(), upstream.addr.to_string());
    let nginx = Nginx::start_http(|port| {
        let conf = substitute(&block, "127.0.0.1:8090", &authz);
        let conf = substitute(&conf, "127.0.0.1:8000", &upstream_addr);
        substitute(&conf, "listen 8080;", &format!("listen 127.0.0.1:{port};"))
    })
    .await;

    let key = fixture.key.as_str();
    assert_eq!(get(&nginx.url("/pets/items/1"), &[("X-Api-Key", key)]).await.status, StatusCode::OK);
    let failed = get(&nginx.url("/pets/status/503"), &[("X-Api-Key", key)]).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "the upstream's own answer");
    assert_eq!(get(&nginx.url("/pets/items/1"), &[]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 2);

    // Counted when nginx's lines arrive, each in its class (long before the 60 s wait ends).
    let hits = fixture.metrics.hits;
    let expected = vec![(StatusClass::Success, 1), (StatusClass::ServerError, 1)];
    eventually("both admitted calls counted from their reports", || {
        let counted = by_class(&cp, hits);
        let expected = expected.clone();
        async move { (counted == expected).then_some(()) }
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    assert_eq!(by_class(&cp, hits), expected, "nothing counted twice at shutdown");
    assert_eq!(by_class(&cp, fixture.metrics.get_item), vec![(StatusClass::Success, 1)]);
}

/// A shell the test starts in a process group of its own, so that its children (`tail -F`) end
/// with it.
struct Shell(std::process::Child);

impl Shell {
    fn start(script: &str) -> Shell {
        use std::os::unix::process::CommandExt as _;
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("bash runs");
        Shell(child)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = std::process::Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_access_log_shipped_over_udp() {
    let (clock, _hands) = Clock::manual("2030-01-01T00:00:10Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = decision_settings(cp.url(), dir.path(), Some(clock));
    settings.authz_reports = true;
    settings.authz_report_listen = Some("127.0.0.1:0".parse().expect("address"));
    let agent = start_ready(settings).await;
    let report = agent.report_addr().expect("the report socket is bound");

    let log = dir.path().join("access.json");
    let log_path = log.display().to_string();
    let static_block = format!(
        "{}{}",
        doc_block("traefik.md", " static"),
        substitute(&doc_block("traefik.md", " report-static"), "/var/log/traefik/access.json", &log_path)
    );
    let dynamic = substitute(&doc_block("traefik.md", " dynamic"), "127.0.0.1:8090", &authz(&agent).to_string());
    let dynamic = substitute(&dynamic, "127.0.0.1:8000", &upstream.addr.to_string());
    let traefik = Traefik::start(
        |port, dynamic_file| {
            let conf = substitute(&static_block, "\":8080\"", &format!("\"127.0.0.1:{port}\""));
            substitute(&conf, "/etc/traefik/tollgate.yml", &dynamic_file.display().to_string())
        },
        &dynamic,
    )
    .await;
    let probe = traefik.url("/pets/items/1");
    eventually("traefik to route to the decision", || {
        let probe = probe.clone();
        async move { (get(&probe, &[]).await.status == StatusCode::UNAUTHORIZED).then_some(()) }
    })
    .await;
    let shipper = substitute(&doc_block("traefik.md", " report-shipper"), "/var/log/traefik/access.json", &log_path);
    let shipper = substitute(&shipper, "/dev/udp/127.0.0.1/8092", &format!("/dev/udp/127.0.0.1/{}", report.port()));
    let _shipper = Shell::start(&shipper);

    let key = fixture.key.as_str();
    assert_eq!(get(&traefik.url("/pets/items/1"), &[("X-Api-Key", key)]).await.status, StatusCode::OK);
    let failed = get(&traefik.url("/pets/status/503"), &[("X-Api-Key", key)]).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "the upstream's own answer");

    let hits = fixture.metrics.hits;
    let expected = vec![(StatusClass::Success, 1), (StatusClass::ServerError, 1)];
    let seen = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("both admitted calls counted from the shipped lines", || {
        let counted = by_class(&cp, hits);
        let expected = expected.clone();
        async move { (counted == expected).then_some(()) }
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    assert_eq!(by_class(&cp, hits), expected, "nothing counted twice at shutdown: {}", seen());
}
