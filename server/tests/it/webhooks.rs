//! Webhooks end to end: a real receiver on loopback that fails twice then
//! succeeds, the retry schedule walked with the job's `now`, the signature
//! checked with the algorithm docs/WEBHOOKS.md gives, and the deliveries as the
//! admin API and the admin UI show them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, seed};
use tollgate_core::audit::Actor;
use tollgate_core::webhooks::TargetPolicy;
use tollgate_core::webhooks::deliver::{Round, Sender, purge_finished, run_due};
use tollgate_core::webhooks::subscriptions::{self, SubscriptionInput};

use crate::helpers::{TestApp, csrf_from, spawn_app_with};
use crate::portal::location;

/// One request as the receiver read it.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 server on loopback: answers 500 to the first `failures`
/// requests and 200 after, one request per connection.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break (head, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned());
                    }
                }
            };
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let n = {
                let mut list = store.lock().unwrap();
                list.push(Received { headers, body });
                list.len()
            };
            let (status, text) =
                if n <= failures { ("500 Internal Server Error", "not now") } else { ("200 OK", "thanks") };
            let response =
                format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (url, got)
}

/// Verifies `Tollgate-Signature` as docs/WEBHOOKS.md says: HMAC-SHA256 keyed by the
/// secret over `"<t>.<body>"`, hex, compared with `v1`. Returns `t`.
fn verify(secret: &str, header: &str, body: &str) -> i64 {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t= in the header"), v1.expect("v1= in the header"));
    let mut mac = <Hmac<sha2_hmac::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected, "the signature verifies");
    t
}

struct Admin {
    app: TestApp,
    token: String,
}

async fn admin_app(pool: PgPool, allow_private: bool) -> Admin {
    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let vars: &[(&str, &str)] = if allow_private { &[("TOLLGATE_WEBHOOKS_ALLOW_PRIVATE", "true")] } else { &[] };
    Admin { app: spawn_app_with(pool, vars).await, token: token.as_str().to_owned() }
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    async fn deliveries(&self, hook: &str) -> Vec<Value> {
        let (status, page) =
            self.call(reqwest::Method::GET, &format!("/admin/api/v1/webhooks/{hook}/deliveries"), None).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().unwrap().clone()
    }
}

fn at(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap_or_else(|| panic!("a timestamp, not {value}")), &Rfc3339).unwrap()
}

const SENDER: Sender = Sender { policy: TargetPolicy { allow_private: true }, timeout: Duration::from_secs(10) };

/// A receiver that accepts connections and never answers costs the others one timeout a
/// round, not one per delivery: its deliveries wait for the next round, and everyone else's
/// go out signed with the time they were sent.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_silent_receiver_does_not_hold_back_the_others(pool: PgPool) {
    let admin = admin_app(pool, true).await;
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_url = format!("http://{}/in", hung.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            open.push(socket);
        }
    });
    let (url, received) = receiver(0).await;
    let mut hooks = Vec::new();
    for target in [&hung_url, &url] {
        let body = json!({"url": target, "events": ["api.deprecated"]});
        let (status, hook) = admin.call(reqwest::Method::POST, "/admin/api/v1/webhooks", Some(body)).await;
        assert_eq!(status, 201, "{hook}");
        hooks.push(hook["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
    }
    // Three deliveries each, interleaved, due an hour from now (the server's own job leaves them).
    let later = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    for i in 0..6 {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event, body, next_attempt_at)
             VALUES (gen_random_uuid(), $1, gen_random_uuid(), 'api.deprecated', '{}', $2)",
        )
        .bind(hooks[i % 2])
        .bind(later + Duration::from_millis(i as u64))
        .execute(&admin.app.pool)
        .await
        .unwrap();
    }
    let quick = Sender { policy: TargetPolicy { allow_private: true }, timeout: Duration::from_secs(1) };
    let round = run_due(&admin.app.pool, &quick, later + Duration::from_secs(1)).await.unwrap();
    assert_eq!(round, Round { delivered: 3, failed: 1 }, "one try of the silent receiver");
    assert_eq!(received.lock().unwrap().len(), 3);
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND attempts = 0")
            .bind(hooks[0])
            .fetch_one(&admin.app.pool)
            .await
            .unwrap();
    assert_eq!(waiting, 2, "left for the next round");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_receiver_failing_twice_gets_the_signed_event_on_the_schedule(pool: PgPool) {
    let admin = admin_app(pool, true).await;
    let (url, received) = receiver(2).await;
    let (status, hook) = admin
        .call(
            reqwest::Method::POST,
            "/admin/api/v1/webhooks",
            Some(json!({"url": url, "description": "CRM", "events": ["api.deprecated"]})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(hook["events"], json!(["api.deprecated"]));
    // The secret is answered once: reading the subscription does not show it.
    let (_, read) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/webhooks/{hook_id}"), None).await;
    assert!(read.get("secret").is_none(), "{read}");

    // An event the subscription did not pick queues nothing; the one it picked, one delivery.
    let (_, apis) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    let api_id = apis["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = admin
        .call(reqwest::Method::PATCH, &format!("/admin/api/v1/apis/{api_id}"), Some(json!({"name": "Weather 2"})))
        .await;
    assert_eq!(status, 200);
    let sunset = (OffsetDateTime::now_utc() + Duration::from_secs(30 * 86_400)).format(&Rfc3339).unwrap();
    let (status, body) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{api_id}/lifecycle"),
            Some(json!({"state": "deprecated", "sunset_at": sunset})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let queued = admin.deliveries(&hook_id).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["event"], "api.deprecated");

    // First attempt: due at once (the server's own job may take it first; either way it fails).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        run_due(&admin.app.pool, &SENDER, OffsetDateTime::now_utc()).await.unwrap();
        let list = admin.deliveries(&hook_id).await;
        if list[0]["attempts"] == 1 {
            break list[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "the first attempt was never made: {list:?}");
    };
    assert_eq!(first["state"], "retrying");
    assert_eq!(first["response_status"], 500);
    assert_eq!(first["response_body"], "not now");
    let t1 = at(&first["last_attempt_at"]);
    assert_eq!(at(&first["next_attempt_at"]), t1 + Duration::from_secs(30), "the 1st retry waits 30 s");

    // Not due a second early; due on time.
    assert_eq!(run_due(&admin.app.pool, &SENDER, t1 + Duration::from_secs(29)).await.unwrap(), Round::default());
    let t2 = t1 + Duration::from_secs(30);
    assert_eq!(run_due(&admin.app.pool, &SENDER, t2).await.unwrap(), Round { delivered: 0, failed: 1 });
    let second = admin.deliveries(&hook_id).await[0].clone();
    assert_eq!(second["attempts"], 2);
    // Each attempt is stamped with its own time, a moment into the round.
    let t2 = at(&second["last_attempt_at"]);
    assert!(t2 - (t1 + Duration::from_secs(30)) < Duration::from_secs(5), "{second}");
    assert_eq!(at(&second["next_attempt_at"]), t2 + Duration::from_secs(120), "the 2nd retry waits 2 min");
    assert_eq!(run_due(&admin.app.pool, &SENDER, t2 + Duration::from_secs(119)).await.unwrap(), Round::default());
    assert_eq!(
        run_due(&admin.app.pool, &SENDER, t2 + Duration::from_secs(120)).await.unwrap(),
        Round { delivered: 1, failed: 0 }
    );

    let done = admin.deliveries(&hook_id).await[0].clone();
    let t3 = at(&done["last_attempt_at"]);
    assert_eq!(done["state"], "delivered");
    assert_eq!(done["attempts"], 3);
    assert_eq!(done["response_status"], 200);
    assert!(done["next_attempt_at"].is_null());
    assert!(done["duration_ms"].as_i64().is_some());
    let names: Vec<&str> =
        done["request_headers"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Tollgate-Signature") && names.contains(&"Tollgate-Event"), "{names:?}");

    // The receiver saw three signed copies of one event, stamped with each attempt's time.
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let times: Vec<i64> = got.iter().map(|r| verify(&secret, r.header("Tollgate-Signature"), &r.body)).collect();
    assert_eq!(times, vec![t1.unix_timestamp(), t2.unix_timestamp(), t3.unix_timestamp()]);
    assert!(got.iter().all(|r| r.body == got[0].body), "every attempt sends the same bytes");
    assert!(got.iter().all(|r| r.header("Tollgate-Event") == "api.deprecated"));
    assert!(got.iter().all(|r| r.header("Content-Type") == "application/json"));
    // A signature made with another secret does not verify.
    let forged = std::panic::catch_unwind(|| verify("whsec_other", got[0].header("Tollgate-Signature"), &got[0].body));
    assert!(forged.is_err());
    let event: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(event["type"], "api.deprecated");
    assert_eq!(event["data"]["entity"], "api");
    assert_eq!(event["data"]["id"], api_id.as_str());
    assert_eq!(event["data"]["before"]["state"], "published");
    assert_eq!(event["data"]["after"]["state"], "deprecated");
    assert_eq!(event["data"]["actor"], DEMO_ADMIN_EMAIL);
    assert!(event["id"].is_string() && event["created_at"].is_string(), "{event}");

    // The admin UI lists the delivery with its response, attempts and a Redeliver button.
    assert_eq!(location(&admin.app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let list = admin.app.get("/admin/webhooks").await.text().await.unwrap();
    assert!(list.contains(&url) && list.contains("api.deprecated"), "{list}");
    let res = admin.app.get(&format!("/admin/webhooks/{hook_id}")).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"data-testid="delivery-state">delivered<"#), "{page}");
    assert!(page.contains(r#"data-testid="delivery-status">200<"#), "{page}");
    assert!(page.contains(r#"data-testid="delivery-attempts">3<"#), "{page}");
    assert!(page.contains("Tollgate-Signature: t=") && page.contains("thanks"), "request and response are shown");
    assert_eq!(page.matches("<script").count(), page.matches("<script src=\"/static/js/").count(), "no inline script");

    // Redeliver: a new delivery of the same event, sent at once.
    let delivery = done["id"].as_str().unwrap();
    let res = admin
        .app
        .post_form(
            &format!("/admin/webhooks/{hook_id}/deliveries/{delivery}/redeliver"),
            &[("csrf_token", &csrf_from(&page))],
        )
        .await;
    assert_eq!(res.status(), 303);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        run_due(&admin.app.pool, &SENDER, OffsetDateTime::now_utc()).await.unwrap();
        if received.lock().unwrap().len() == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the redelivery was never sent");
    }
    let list = admin.deliveries(&hook_id).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["redelivery_of"], delivery);
    assert_eq!(list[0]["event_id"], done["event_id"]);
    let again: Value = serde_json::from_str(&received.lock().unwrap()[3].body).unwrap();
    assert_eq!(again["id"], event["id"], "a redelivery carries the same event id");

    // Finished deliveries are kept 30 days, then deleted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while admin.deliveries(&hook_id).await.iter().any(|d| d["state"] != "delivered") {
        assert!(std::time::Instant::now() < deadline, "the redelivery was never recorded as delivered");
        tokio::task::yield_now().await;
    }
    let now = OffsetDateTime::now_utc();
    assert_eq!(purge_finished(&admin.app.pool, now).await.unwrap(), 0);
    assert_eq!(purge_finished(&admin.app.pool, now + Duration::from_secs(31 * 86_400)).await.unwrap(), 2);
    assert!(admin.deliveries(&hook_id).await.is_empty());
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn subscriptions_are_checked_replaced_and_deleted(pool: PgPool) {
    let admin = admin_app(pool, false).await;
    let post = |body: Value| admin.call(reqwest::Method::POST, "/admin/api/v1/webhooks", Some(body));
    for (body, field) in [
        (json!({"url": "http://127.0.0.1:9/hooks"}), "url"),
        (json!({"url": "http://localhost/hooks"}), "url"),
        (json!({"url": "http://169.254.169.254/"}), "url"),
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"url": "https://example.com/", "events": ["application.exploded"]}), "events"),
        (json!({"url": "https://example.com/", "events": ["key.revoked", "key.revoked"]}), "events"),
    ] {
        let (status, err) = post(body.clone()).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    // Every problem at once.
    let body = json!({"url": "ftp://example.com/", "description": "a".repeat(201),
                      "events": ["application.exploded", "key.revoked", "key.revoked"]});
    let (status, err) = post(body).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["url", "description", "events", "events"], "{err}");
    let (status, err) = post(json!({"url": "https://example.com/", "secret": "mine"})).await;
    assert_eq!(status, 400, "unknown fields are refused: {err}");

    let (status, hook) = post(json!({"url": "https://hooks.example.com/in"})).await;
    assert_eq!(status, 201, "{hook}");
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(hook["events"], json!([]), "no events named: every event");
    let id = hook["id"].as_str().unwrap();
    let path = format!("/admin/api/v1/webhooks/{id}");
    let (status, replaced) = admin
        .call(
            reqwest::Method::PUT,
            &path,
            Some(json!({"url": "https://hooks.example.com/v2", "events": ["key.revoked", "api.retired"]})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["events"], json!(["key.revoked", "api.retired"]));
    let (_, list) = admin.call(reqwest::Method::GET, "/admin/api/v1/webhooks", None).await;
    assert_eq!(list[0]["url"], "https://hooks.example.com/v2");
    assert_eq!(admin.call(reqwest::Method::DELETE, &path, None).await.0, 204);
    assert_eq!(admin.call(reqwest::Method::GET, &path, None).await.0, 404);
    assert_eq!(admin.call(reqwest::Method::GET, &format!("{path}/deliveries"), None).await.0, 404);
    let (_, audit) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?action=webhook.", None).await;
    assert_eq!(audit["total"], 3, "create, update and delete are audited: {audit}");

    // The admin UI's form says what is wrong beside the field and keeps what was typed.
    assert_eq!(location(&admin.app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let token = admin.app.csrf_token("/admin/webhooks").await;
    let res = admin
        .app
        .post_form(
            "/admin/webhooks",
            &[("csrf_token", &token), ("url", "http://10.1.2.3/in"), ("event_key.revoked", "on")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"id="url-error""#) && page.contains("private"), "{page}");
    assert!(page.contains(r#"value="http://10.1.2.3/in""#), "{page}");
    assert!(page.contains(r#"name="event_key.revoked" value="on" checked"#), "{page}");
    let res = admin.app.post_form("/admin/webhooks", &[("url", "https://hooks.example.com/in")]).await;
    assert_eq!(res.status(), 403, "no CSRF token, no subscription");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_delivery_to_a_private_address_is_refused_at_send_time(pool: PgPool) {
    // A subscription made while loopback was allowed, on a server that no longer allows it.
    let admin = admin_app(pool, false).await;
    let (url, received) = receiver(0).await;
    let input = SubscriptionInput { url, ..SubscriptionInput::default() };
    let loose = TargetPolicy { allow_private: true };
    let (hook, _) = subscriptions::create(&admin.app.pool, &input, loose, &Actor::system("test")).await.unwrap();
    // A developer signs up: `account.created`, for a subscription to every event.
    let token = admin.app.csrf_token("/signup").await;
    let res = admin
        .app
        .post_form(
            "/signup",
            &[
                ("csrf_token", &token),
                ("organisation", "Hooked Ltd"),
                ("email", "hooked@example.com"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    // The server's own job tries it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let created = loop {
        let list = admin.deliveries(&hook.id.to_string()).await;
        if let Some(d) = list.iter().find(|d| d["event"] == "account.created" && d["attempts"] == 1) {
            break d.clone();
        }
        assert!(std::time::Instant::now() < deadline, "never tried: {list:?}");
        tokio::task::yield_now().await;
    };
    assert_eq!(created["state"], "retrying");
    assert!(created["error"].as_str().unwrap().contains("private"), "{created}");
    assert!(created["response_status"].is_null());
    assert!(received.lock().unwrap().is_empty(), "nothing reached the loopback receiver");
    let event: Value = serde_json::from_str(created["request_body"].as_str().unwrap()).unwrap();
    assert_eq!(event["data"]["after"]["name"], "Hooked Ltd");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_developers_first_steps_and_an_admin_decision_raise_their_events(pool: PgPool) {
    let admin = admin_app(pool, false).await;
    // Every event; `.invalid` never resolves, so deliveries only wait in the table.
    let input = SubscriptionInput { url: "https://hooks.tollgate.invalid/in".into(), ..SubscriptionInput::default() };
    let strict = TargetPolicy { allow_private: false };
    let (hook, _) = subscriptions::create(&admin.app.pool, &input, strict, &Actor::system("test")).await.unwrap();

    let email = "first-steps@example.com";
    crate::portal::verified_developer(&admin.app, email).await;
    let (path, _key) = crate::portal::register_app(&admin.app, "Hooked app").await;
    let app_id = path.trim_start_matches("/apps/").trim_end_matches('/').to_owned();
    let actions = format!("/admin/api/v1/applications/{app_id}/actions");
    let suspend = || admin.call(reqwest::Method::POST, &actions, Some(json!({"action": "suspend"})));
    assert_eq!(suspend().await.0, 200);
    // A refused change raises nothing: its transaction, deliveries included, is rolled back.
    assert_eq!(suspend().await.0, 409);

    let (status, page) = admin
        .call(reqwest::Method::GET, &format!("/admin/api/v1/webhooks/{}/deliveries?per_page=100", hook.id), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let mut events: Vec<String> =
        page["items"].as_array().unwrap().iter().map(|d| d["event"].as_str().unwrap().to_owned()).collect();
    events.sort();
    assert_eq!(events, ["account.created", "application.created", "application.suspended", "key.created"]);
    for d in page["items"].as_array().unwrap() {
        let body: Value = serde_json::from_str(d["request_body"].as_str().unwrap()).unwrap();
        assert_eq!(body["type"], d["event"]);
        if d["event"].as_str().unwrap().starts_with("application.") {
            assert_eq!(body["data"]["id"], app_id.as_str(), "{body}");
        }
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_invoice_issued_by_the_billing_run_and_paid_raises_both_events(pool: PgPool) {
    let admin = admin_app(pool, false).await;
    let input = SubscriptionInput {
        url: "https://hooks.tollgate.invalid/billing".into(),
        events: vec!["invoice.issued".into(), "invoice.paid".into()],
        ..SubscriptionInput::default()
    };
    let strict = TargetPolicy { allow_private: false };
    let (hook, _) = subscriptions::create(&admin.app.pool, &input, strict, &Actor::system("test")).await.unwrap();
    let number = tollgate::cli::dev::demo_invoice(&admin.app.pool, &admin.app.base).await.unwrap().expect("an invoice");
    let (_, invoices) = admin.call(reqwest::Method::GET, "/admin/api/v1/invoices", None).await;
    let invoice = invoices["items"].as_array().unwrap().iter().find(|i| i["number"] == number.as_str()).unwrap();
    let id = invoice["id"].as_str().unwrap();
    let total = invoice["total"].as_str().unwrap();
    let (status, body) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/invoices/{id}/payments"),
            Some(json!({"amount": total, "reference": "BT-1"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let list = admin.deliveries(&hook.id.to_string()).await;
    let bodies: Vec<Value> =
        list.iter().rev().map(|d| serde_json::from_str(d["request_body"].as_str().unwrap()).unwrap()).collect();
    let kinds: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["invoice.issued", "invoice.paid"]);
    assert_eq!(bodies[0]["data"]["after"]["number"], number.as_str());
    assert_eq!(bodies[0]["data"]["after"]["state"], "pending");
    assert!(bodies.iter().all(|b| b["data"]["id"] == id));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admins_edit_a_subscriptions_url_and_events_in_the_ui(pool: PgPool) {
    let admin = admin_app(pool, false).await;
    let input = SubscriptionInput {
        url: "https://hooks.example.com/v1".into(),
        events: vec!["key.revoked".into()],
        ..SubscriptionInput::default()
    };
    let strict = TargetPolicy { allow_private: false };
    let (hook, secret) = subscriptions::create(&admin.app.pool, &input, strict, &Actor::system("test")).await.unwrap();
    assert_eq!(location(&admin.app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let page_path = format!("/admin/webhooks/{}", hook.id);
    let edit = format!("{page_path}/edit");
    // The form starts with what is stored.
    let page = admin.app.get(&page_path).await.text().await.unwrap();
    assert!(page.contains(r#"value="https://hooks.example.com/v1""#), "{page}");
    assert!(page.contains(r#"name="event_key.revoked" value="on" checked"#), "{page}");
    let token = csrf_from(&page);
    let good = [
        ("url", "https://hooks.example.com/v2"),
        ("description", "billing"),
        ("event_api.retired", "on"),
        ("event_key.created", "on"),
    ];
    // Without the CSRF token nothing changes.
    assert_eq!(admin.app.post_form(&edit, &good).await.status(), 403);
    // A private URL is refused beside the field, keeping what was typed.
    let res = admin
        .app
        .post_form(&edit, &[("csrf_token", token.as_str()), ("url", "http://10.1.2.3/in"), ("event_api.retired", "on")])
        .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"id="url-error""#) && page.contains("private"), "{page}");
    assert!(page.contains(r#"value="http://10.1.2.3/in""#), "{page}");
    assert!(page.contains(r#"name="event_api.retired" value="on" checked"#), "{page}");
    // An unknown event is refused beside the events.
    let res = admin
        .app
        .post_form(
            &edit,
            &[("csrf_token", token.as_str()), ("url", "https://hooks.example.com/v2"), ("event_nope", "on")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"id="events-error""#) && page.contains("use account.created"), "{page}");
    assert!(page.contains(r##"<a href="#events">Events: "##) && page.contains(r#"<fieldset id="events""#), "{page}");
    let (_, stored) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/webhooks/{}", hook.id), None).await;
    assert_eq!(
        (stored["url"].as_str(), &stored["events"]),
        (Some("https://hooks.example.com/v1"), &json!(["key.revoked"]))
    );
    // A good edit replaces URL, description and events; the secret stays.
    let mut form = vec![("csrf_token", token.as_str())];
    form.extend(good);
    let res = admin.app.post_form(&edit, &form).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, page_path.clone()));
    let (_, stored) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/webhooks/{}", hook.id), None).await;
    assert_eq!(stored["url"], "https://hooks.example.com/v2");
    assert_eq!(stored["description"], "billing");
    let mut events: Vec<String> = serde_json::from_value(stored["events"].clone()).unwrap();
    events.sort();
    assert_eq!(events, ["api.retired", "key.created"]);
    let kept: String = sqlx::query_scalar("SELECT secret FROM webhook_subscriptions WHERE id = $1")
        .bind(hook.id)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(kept, secret);
    let page = admin.app.get(&page_path).await.text().await.unwrap();
    assert!(page.contains("Deliveries to https://hooks.example.com/v2"), "{page}");
    let (_, audit) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?action=webhook.update", None).await;
    assert_eq!(audit["total"], 1, "only the accepted edit is audited: {audit}");
}
