//! The `tollgate` binary, run as an operator would.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use sqlx::PgPool;

use crate::helpers::database_url;

fn tollgate(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tollgate");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("tollgate output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[sqlx::test(migrations = false)]
async fn migrate_runs_twice_without_error(pool: PgPool) {
    let url = database_url(&pool).await;
    for _ in 0..2 {
        let out = tollgate(&["migrate"], &[("TOLLGATE_DATABASE_URL", &url)], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("is up to date"));
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert!(applied >= 1);
}

/// A rollback to an older release after an upgrade migrated the database: the message says
/// what happened and what to do, and the exit code is the one for a setup the operator fixes.
#[sqlx::test(migrations = false)]
async fn a_database_migrated_by_a_newer_release_is_refused_saying_what_to_do(pool: PgPool) {
    let url = database_url(&pool).await;
    assert!(tollgate(&["migrate"], &[("TOLLGATE_DATABASE_URL", &url)], None).status.success());
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20991231000000, 'from a newer release', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for command in ["migrate", "serve"] {
        let out = tollgate(&[command], &[("TOLLGATE_DATABASE_URL", &url), ("TOLLGATE_LISTEN", "127.0.0.1:0")], None);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("migrated by a newer Tollgate: migration 20991231000000 is not in this build")
                && text.contains("restore the database backup taken before the upgrade"),
            "{command}: {text}"
        );
    }
}

#[test]
fn a_bad_setting_exits_non_zero_with_one_line_naming_it() {
    let cases = [
        ("TOLLGATE_DATABASE_URL", "not a url"),
        ("TOLLGATE_LISTEN", "localhost:http"),
        ("TOLLGATE_LOG_FORMAT", "xml"),
        ("TOLLGATE_DATABASE_MAX_CONNECTIONS", "lots"),
        // One connection is held for change notifications: one alone would starve the rest.
        ("TOLLGATE_DATABASE_MAX_CONNECTIONS", "1"),
        ("TOLLGATE_LOG", "tollgate=verbose"),
        ("TOLLGATE_PUBLIC_URL", "https://exa mple.com"),
        ("TOLLGATE_PUBLIC_URL", "http://"),
        ("TOLLGATE_GATEWAY_URL", "https://gate way.example"),
        // The client secret and the tokens would travel in clear text to another machine.
        (
            "TOLLGATE_OAUTH_PROVIDERS",
            r#"[{"id": "corp", "name": "Corp", "client_id": "c", "client_secret": "s",
                "auth_url": "https://sso.example.com/authorize", "token_url": "http://sso.example.com/token",
                "userinfo_url": "https://sso.example.com/userinfo"}]"#,
        ),
    ];
    for (name, value) in cases {
        let out = tollgate(&["migrate"], &[(name, value)], None);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with(&format!("error: {name}")), "{text}");
    }
    let out = tollgate(&["serve"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: TOLLGATE_DATABASE_URL: not set"), "{}", stderr(&out));
}

#[test]
fn an_address_in_use_exits_non_zero_naming_the_listen_setting() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tollgate(
        &["serve"],
        &[("TOLLGATE_LISTEN", &addr), ("TOLLGATE_DATABASE_URL", "postgres://x@127.0.0.1:1/x")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("TOLLGATE_LISTEN") && text.contains("already in use"), "{text}");
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let out = tollgate(&["migrate"], &[("TOLLGATE_DATABASE_URL", "postgres://app:hunter2secret@127.0.0.1:1/tg")], None);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("TOLLGATE_DATABASE_URL: cannot connect to 127.0.0.1:1/tg"), "{text}");
    assert!(!text.contains("hunter2secret"), "{text}");
    // The reason, not the pool's "timed out" after 5 s.
    assert!(text.contains("Connection refused"), "{text}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_unknown_database_is_said_so_without_postgres_source_lines(pool: PgPool) {
    let url = database_url(&pool).await;
    let missing = format!("{}/no_such_database_here", url.rsplit_once('/').unwrap().0);
    let out = tollgate(&["migrate"], &[("TOLLGATE_DATABASE_URL", &missing)], None);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("database \"no_such_database_here\" does not exist"), "{text}");
    assert!(!text.contains(" at line "), "{text}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admin_create_reads_the_password_from_stdin(pool: PgPool) {
    let url = database_url(&pool).await;
    let env = [("TOLLGATE_DATABASE_URL", url.as_str())];
    let args = ["admin", "create", "--email", "ops@example.com", "--password-stdin"];
    let out = tollgate(&args, &env, Some("a long enough passphrase\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let is_admin: bool = sqlx::query_scalar("SELECT is_admin FROM users WHERE email = 'ops@example.com'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(is_admin);
    let again = tollgate(&args, &env, Some("a long enough passphrase\n"));
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    let weak =
        tollgate(&["admin", "create", "--email", "weak@example.com", "--password-stdin"], &env, Some("password\n"));
    assert_eq!(weak.status.code(), Some(1));
    assert!(stderr(&weak).contains("password:"), "{}", stderr(&weak));
    // No terminal and nothing piped in: says how to give one, not that it is too short.
    let none = tollgate(&["admin", "create", "--email", "none@example.com"], &env, None);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no password") && stderr(&none).contains("--password-stdin"), "{}", stderr(&none));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn import_prints_the_slug_and_operation_count_or_a_located_error(pool: PgPool) {
    let url = database_url(&pool).await;
    let env = [("TOLLGATE_DATABASE_URL", url.as_str())];
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/weather.openapi.yaml");
    let out = tollgate(&["import", demo, "--name", "Forecasts"], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "imported forecasts with 4 operations");

    let dir = std::env::temp_dir().join(format!("tollgate-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        "{\"openapi\": \"3.0.3\", \"info\": {\"title\": \"T\", \"version\": \"1\"},\n \"paths\": {\"pets\": {}}}",
    )
    .unwrap();
    let out = tollgate(&["import", bad.to_str().unwrap()], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/paths/pets (line 2): a path must start with `/`"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn serve_logs_json_on_request_and_stops_cleanly_on_sigterm(pool: PgPool) {
    let (mut child, lines, serving) = serve_logging_json(&pool).await;
    let event: serde_json::Value = serde_json::from_str(&serving).expect("log lines are JSON");
    assert_eq!(event["level"], "INFO");
    assert!(!serving.contains("password"), "{serving}");
    let addr = event["addr"].as_str().expect("addr field").to_owned();
    let res = crate::helpers::plain_client().get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // An agent holds its endless config stream open, as in production.
    let (_, token) =
        tollgate_core::gateways::create(&pool, "sigterm-agent", &tollgate_core::audit::Actor::system("test"))
            .await
            .unwrap();
    let mut stream = crate::helpers::plain_client()
        .get(format!("http://{addr}/agent/v1/config"))
        .bearer_auth(token.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.chunk().await.unwrap().is_some(), "the snapshot arrives");

    let asked = std::time::Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.0.wait().unwrap();
    // Open agent streams end at once instead of holding shutdown for its 10 s grace period.
    assert!(asked.elapsed() < std::time::Duration::from_secs(8), "stopped after {:?}", asked.elapsed());
    assert!(exit.success(), "exit {exit:?}; log: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("tollgate stopped")), "{rest:?}");
    // The server's connections close as it exits; Postgres notices a moment
    // later, and the test database can only be dropped once it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if others < i64::from(pool.size()) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Agents post their status every 10 s: the log records what changed, not
/// every heartbeat. `serve` mounts no development pages.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn serve_logs_agent_state_changes_not_heartbeats_and_has_no_mail_viewer(pool: PgPool) {
    let (_child, lines, serving) = serve_logging_json(&pool).await;
    let mut lines = lines.map(|l| l.expect("log line"));
    let event: serde_json::Value = serde_json::from_str(&serving).unwrap();
    let addr = event["addr"].as_str().unwrap().to_owned();
    let client = crate::helpers::plain_client();

    let res = client.get(format!("http://{addr}/dev/mail")).send().await.unwrap();
    assert_eq!(res.status(), 404, "the mail viewer is for `tollgate dev` only");

    let (_, token) =
        tollgate_core::gateways::create(&pool, "edge-1", &tollgate_core::audit::Actor::system("test")).await.unwrap();
    let status = |revision| tollgate_protocol::AgentStatus {
        protocol_version: tollgate_protocol::PROTOCOL_VERSION,
        agent_version: "0.1.0".into(),
        applied_revision: Some(revision),
        rejected: None,
    };
    // A first report, two heartbeats repeating it, then a new revision.
    for revision in [1, 1, 1, 2] {
        let res = client
            .post(format!("http://{addr}/agent/v1/status"))
            .bearer_auth(token.as_str())
            .json(&status(revision))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    // Lines are written as requests finish: once this one's is out, the reports' are too.
    let res = client.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let event: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
        let done = event["message"] == "request" && event["span"]["path"] == "/healthz";
        seen.push(event);
        if done {
            break;
        }
    }
    let changes: Vec<_> = seen.iter().filter(|e| e["message"] == "agent status changed").collect();
    assert_eq!(changes.len(), 2, "the first report and the new revision: {seen:?}");
    assert_eq!(changes[0]["level"], "INFO");
    assert_eq!(changes[1]["applied_revision"], 2, "{:?}", changes[1]);
    assert!(
        !seen.iter().any(|e| e["message"] == "request" && e["span"]["path"] == "/agent/v1/status"),
        "status reports are not logged per request at info: {seen:?}"
    );
    assert!(
        seen.iter().any(|e| e["message"] == "request" && e["span"]["path"] == "/dev/mail" && e["status"] == 404),
        "{seen:?}"
    );
}

/// `tollgate serve` on a free port against the test's database, logging JSON
/// at `info`: the process (killed on drop, so a failed assertion does not
/// leave it holding the database), its remaining log lines, and the line
/// announcing its address, waited for: output, not a sleep, is the signal.
async fn serve_logging_json(
    pool: &PgPool,
) -> (KillOnDrop, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>, String) {
    use std::io::{BufRead, BufReader};

    let url = database_url(pool).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_DATABASE_URL", &url)
        .env("TOLLGATE_LISTEN", "127.0.0.1:0")
        .env("TOLLGATE_LOG", "info")
        .env("TOLLGATE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tollgate serve");
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let mut lines = BufReader::new(stderr).lines();
    let serving = lines
        .by_ref()
        .map(|l| l.expect("log line"))
        .find(|l| l.contains("tollgate is serving"))
        .expect("the server announces itself");
    (child, lines, serving)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
