//! OpenTelemetry traces of the management server: an OTLP/HTTP receiver in the test process
//! takes the span batches, one span per request, named by the route pattern.

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn_app_with;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

type Bodies = web::Data<Mutex<Vec<String>>>;

async fn receive(bodies: Bodies, request: actix_web::HttpRequest, body: web::Bytes) -> HttpResponse {
    if request.headers().get("content-type").is_none_or(|v| v != "application/json") {
        return HttpResponse::BadRequest().finish();
    }
    bodies.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
    HttpResponse::Ok().json(serde_json::json!({}))
}

/// A stand-in collector on loopback; returns its base URL and what it received.
fn start_receiver() -> (String, Bodies) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bodies: Bodies = web::Data::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let server =
        HttpServer::new(move || App::new().app_data(kept.clone()).route("/v1/traces", web::post().to(receive)))
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
    tokio::spawn(server);
    (base, bodies)
}

fn spans(bodies: &Bodies) -> Vec<Value> {
    let mut spans = Vec::new();
    for body in bodies.lock().unwrap().iter() {
        let request: Value = serde_json::from_str(body).unwrap();
        let resource = &request["resourceSpans"][0];
        assert_eq!(resource["resource"]["attributes"][0]["value"]["stringValue"], "tollgate-under-test");
        spans.extend(resource["scopeSpans"][0]["spans"].as_array().unwrap().iter().cloned());
    }
    spans
}

fn attr(span: &Value, key: &str) -> Value {
    let kv = span["attributes"].as_array().and_then(|a| a.iter().find(|kv| kv["key"] == key));
    let Some(value) = kv.map(|kv| &kv["value"]) else { return Value::Null };
    match value["stringValue"].as_str() {
        Some(s) => Value::from(s),
        None => value["intValue"].as_str().and_then(|n| n.parse::<i64>().ok()).map_or(Value::Null, Value::from),
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_span_per_request_named_by_its_route_continuing_the_callers_trace(pool: PgPool) {
    let (collector, bodies) = start_receiver();
    let app = spawn_app_with(
        pool,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_SERVICE_NAME", "tollgate-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ],
    )
    .await;
    // Not traced: the operator endpoints and static files.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/static/css/tollgate.css").await.status(), 200);
    let unsampled = app
        .client
        .get(app.url("/login"))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 200);
    let id = uuid::Uuid::new_v4();
    let traced = app
        .client
        .get(app.url(&format!("/admin/api/v1/apis/{id}")))
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("authorization", "Bearer tg_adm_not_a_token")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), 401);
    // Last: spans are sent in order, so once this one is in, every earlier one is too.
    assert_eq!(app.get("/").await.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(15);
    let spans = loop {
        let spans = spans(&bodies);
        if spans.iter().any(|span| attr(span, "http.route") == "/") {
            break spans;
        }
        assert!(Instant::now() < deadline, "timed out waiting for the home page's span: {spans:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(spans.len(), 2, "health, static files and unsampled traces leave no span: {spans:#?}");
    let api = spans.iter().find(|s| attr(s, "http.route") == "/admin/api/v1/apis/{id}").expect("the API's span");
    assert_eq!(api["name"], "GET /admin/api/v1/apis/{id}");
    assert_eq!((&api["traceId"], &api["parentSpanId"]), (&Value::from(CLIENT_TRACE), &Value::from(CLIENT_SPAN)));
    assert_ne!(api["spanId"], CLIENT_SPAN);
    assert_eq!(api["kind"], 2);
    assert_eq!((attr(api, "http.request.method"), attr(api, "http.response.status_code")), ("GET".into(), 401.into()));
    let raw = bodies.lock().unwrap().concat();
    assert!(!raw.contains(&id.to_string()), "the raw path is not recorded, its pattern is: {raw}");
    assert!(!raw.contains("tg_adm_not_a_token"), "{raw}");

    let home = spans.iter().find(|s| attr(s, "http.route") == "/").expect("the home page's span");
    assert_eq!(home["parentSpanId"], Value::Null, "a trace of its own");
    assert_ne!(home["traceId"], CLIENT_TRACE);
    assert_eq!(attr(home, "http.response.status_code"), 200);
}
