//! The `tollgate-agent` binary: bad settings exit 2, SIGTERM stops it cleanly.

use std::process::Stdio;
use std::time::Duration;

use hyper::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tollgate-agent");

/// The binary as a gateway against `server`, logging JSON to a piped stderr, on free ports.
fn gateway(server: &str, dir: &TempDir) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("TOLLGATE_AGENT_SERVER", server)
        .env("TOLLGATE_AGENT_TOKEN", TOKEN)
        .env("TOLLGATE_AGENT_LISTEN", "127.0.0.1:0")
        .env("TOLLGATE_AGENT_ADMIN_LISTEN", "127.0.0.1:0")
        .env("TOLLGATE_AGENT_STATE_DIR", dir.path())
        .env("TOLLGATE_AGENT_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[test]
fn bad_settings_exit_2_with_one_line_naming_the_setting() {
    let output = std::process::Command::new(BINARY)
        .env_clear()
        .env("TOLLGATE_AGENT_SERVER", "http://127.0.0.1:1")
        .env("TOLLGATE_AGENT_TOKEN", "tg_agt_secret_value")
        .env("TOLLGATE_AGENT_LISTEN", "localhost:http")
        .output()
        .expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: TOLLGATE_AGENT_LISTEN: "), "{stderr}");

    let output = std::process::Command::new(BINARY)
        .env_clear()
        .env("TOLLGATE_AGENT_SERVER", "http://127.0.0.1:1")
        .output()
        .expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: TOLLGATE_AGENT_TOKEN: "));
}

/// Startup failures past the settings name the setting to change, as bad settings do.
#[tokio::test]
async fn a_port_in_use_or_an_unusable_state_directory_names_its_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new();
    for (setting, value, says) in [
        ("TOLLGATE_AGENT_LISTEN", taken.as_str(), "another process has this address"),
        ("TOLLGATE_AGENT_ADMIN_LISTEN", taken.as_str(), "another process has this address"),
        ("TOLLGATE_AGENT_STATE_DIR", "/proc/self/no-such-dir", "/proc/self/no-such-dir"),
    ] {
        let output = gateway("http://127.0.0.1:1", &dir)
            .env(setting, value)
            .stdout(Stdio::null())
            .output()
            .await
            .expect("run the binary");
        assert_eq!(output.status.code(), Some(1), "{setting}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with(&format!("error: {setting}: ")), "{setting}: {stderr}");
        assert!(last.contains(says), "{setting}: {last}");
    }
}

#[test]
fn help_and_version_answer_and_no_argument_starts_a_gateway() {
    let run = |argument: &str| {
        // With settings that would start a gateway, so an ignored argument shows.
        let dir = TempDir::new();
        std::process::Command::new(BINARY)
            .arg(argument)
            .env_clear()
            .env("TOLLGATE_AGENT_SERVER", "http://127.0.0.1:1")
            .env("TOLLGATE_AGENT_TOKEN", "tg_agt_secret_value")
            .env("TOLLGATE_AGENT_LISTEN", "127.0.0.1:0")
            .env("TOLLGATE_AGENT_ADMIN_LISTEN", "127.0.0.1:0")
            .env("TOLLGATE_AGENT_STATE_DIR", dir.path())
            .output()
            .expect("run the binary")
    };
    let help = run("--help");
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("TOLLGATE_AGENT_SERVER") && text.contains("docs/AGENT.md"), "{text}");
    let version = run("--version");
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("tollgate-agent 0."));
    let bogus = run("--bogus-flag");
    assert_eq!(bogus.status.code(), Some(2));
    let text = String::from_utf8_lossy(&bogus.stderr);
    assert!(text.starts_with("error: unexpected argument `--bogus-flag`"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_agent_cleanly() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut child = gateway(&format!("http://{}", cp.addr), &dir)
        .env("TOLLGATE_AGENT_ACCESS_LOG", "on")
        .spawn()
        .expect("spawn the binary");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let started = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["message"] == "tollgate-agent started" {
                return event;
            }
        }
        panic!("the agent exited before starting");
    })
    .await
    .expect("the agent starts in time");
    let admin = started["admin_addr"].as_str().expect("admin_addr").to_owned();
    let proxy = started["proxy_addr"].as_str().expect("proxy_addr").to_owned();
    eventually("the binary to be ready", || {
        let url = format!("http://{admin}/ready");
        async move { (get(&url, &[]).await.status == StatusCode::OK).then_some(()) }
    })
    .await;
    let answer = get(&format!("http://{proxy}/pets/list?user_key={}", fixture.key.as_str()), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    // The access log line names the API and the decision, never the key.
    let access = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("\"decision\":\"proxied\"") {
                return line;
            }
        }
        panic!("no access log line");
    })
    .await
    .expect("an access log line");
    assert!(access.contains(&fixture.app.to_string()), "{access}");
    assert!(!access.contains(fixture.key.as_str()), "{access}");

    let pid = child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(kill.success());
    // Keep draining stderr so the agent never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status =
        tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits in time").expect("exit status");
    assert_eq!(status.code(), Some(0));
}

/// A stream in a binary format version this agent does not read is refused, and the log
/// says which version and which it reads (an agent reading only version 1 answers a version
/// 2 stream the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_an_unknown_format_version_is_refused_by_name() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.speak_format_version(tollgate_protocol::binary::FORMAT_VERSION + 1);
    let dir = TempDir::new();
    let mut child = gateway(&format!("http://{}", cp.addr), &dir).spawn().expect("spawn the binary");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let refused = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("format version 4") {
                return line;
            }
        }
        panic!("the agent exited without refusing the stream");
    })
    .await
    .expect("the agent refuses the stream in time");
    assert!(
        refused.contains("binary snapshot format version 4 is not supported (this build reads versions 1 to 3)"),
        "{refused}"
    );
    assert!(cp.statuses().iter().all(|s| s.applied_revision.is_none()), "nothing applied");
    child.kill().await.expect("stop the agent");
}

/// A server that cannot be reached is logged with the cause (hyper's own words are only
/// `client error (Connect)`, alike for a refused port, an unknown host and TLS to a plain port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_logged_with_its_cause() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let dir = TempDir::new();
    let mut child = gateway(&format!("http://127.0.0.1:{port}"), &dir).spawn().expect("spawn the binary");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let logged = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("cannot reach the management server") {
                return line;
            }
        }
        panic!("the agent exited without trying the server");
    })
    .await
    .expect("the agent tries the server in time");
    assert!(logged.contains("client error (Connect): "), "the cause follows: {logged}");
    assert!(logged.to_lowercase().contains("connection refused"), "{logged}");
    child.kill().await.expect("stop the agent");
}
