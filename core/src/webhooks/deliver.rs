//! Sending deliveries: signed (Stripe's scheme), with a timeout, retried on a
//! fixed schedule, each claimed with `FOR UPDATE SKIP LOCKED` so replicas never
//! send one twice. `now` is a parameter so tests walk the schedule without waiting.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use serde_json::{Map, Value};
use sha2_hmac::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::target::{TargetPolicy, resolve};
use crate::Result;

/// The delay after each failed attempt: after the 1st, 30 s; after the 2nd, 2 min;
/// … The 10th failed attempt is the last: the delivery is then failed.
pub const RETRY_DELAYS: [Duration; 9] = [
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(24 * 3600),
];

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i32 = RETRY_DELAYS.len() as i32 + 1;

/// How long one attempt may take, connection to last byte read.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a response body is kept.
const EXCERPT_BYTES: usize = 2000;

/// Deliveries one round sends at most; the job comes back for the rest.
const ROUND: usize = 50;

/// The header carrying the timestamp and signature.
pub const SIGNATURE_HEADER: &str = "Tollgate-Signature";

/// The hex HMAC-SHA256, keyed by the subscription's secret, of `"<t>.<body>"`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `t=<unix seconds>,v1=<signature>`.
pub fn signature_header(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// How deliveries leave this server.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub policy: TargetPolicy,
    pub timeout: Duration,
}

impl Sender {
    pub fn new(policy: TargetPolicy) -> Sender {
        crate::identity::install_crypto_provider();
        Sender { policy, timeout: TIMEOUT }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
}

/// One attempt's outcome.
struct Attempt {
    headers: Map<String, Value>,
    status: Option<u16>,
    excerpt: Option<String>,
    error: Option<String>,
    duration_ms: i32,
}

/// Sends every delivery due at `now`, each in its own transaction holding its row. A
/// receiver that did not answer is not tried again in the same round: a hung one costs the
/// others one timeout a round, not one per delivery.
pub async fn run_due(pool: &PgPool, sender: &Sender, now: OffsetDateTime) -> Result<Round> {
    let mut round = Round::default();
    let started = Instant::now();
    let mut silent: Vec<Uuid> = Vec::new();
    for _ in 0..ROUND {
        let mut tx = pool.begin().await?;
        let Some(due) = sqlx::query!(
            "SELECT d.id, d.subscription_id, d.event, d.body, d.attempts, s.url, s.secret FROM webhook_deliveries d
             JOIN webhook_subscriptions s ON s.id = d.subscription_id
             WHERE d.next_attempt_at <= $1 AND NOT (d.subscription_id = ANY($2))
             ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED",
            now,
            &silent
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            break;
        };
        // Each attempt is signed and recorded at its own time: a round may take minutes, and
        // receivers refuse a signature older than a few.
        let at = now + started.elapsed();
        let attempt = send(sender, due.id, &due.event, &due.body, &due.url, &due.secret, at).await;
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        if attempt.status.is_none() {
            silent.push(due.subscription_id);
        }
        let attempts = due.attempts + 1;
        let next = match (ok, usize::try_from(due.attempts).ok().and_then(|n| RETRY_DELAYS.get(n))) {
            (false, Some(delay)) => Some(at + *delay),
            _ => None,
        };
        if !ok {
            tracing::info!(delivery = %due.id, attempts, status = attempt.status, error = attempt.error.as_deref(), "webhook delivery failed");
        }
        sqlx::query!(
            "UPDATE webhook_deliveries SET attempts = $2, last_attempt_at = $3::timestamptz, next_attempt_at = $4,
                    delivered_at = CASE WHEN $5 THEN $3::timestamptz END, request_headers = $6, response_status = $7,
                    response_body = $8, error = $9, duration_ms = $10
             WHERE id = $1",
            due.id,
            attempts,
            at,
            next,
            ok,
            Value::Object(attempt.headers),
            attempt.status.map(i32::from),
            attempt.excerpt,
            attempt.error,
            attempt.duration_ms
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if ok {
            round.delivered += 1;
        } else {
            round.failed += 1;
        }
    }
    Ok(round)
}

/// How long finished deliveries (delivered or failed) stay listed.
pub const KEEP_FINISHED: Duration = Duration::from_secs(30 * 86_400);

/// Deletes finished deliveries older than [`KEEP_FINISHED`], a batch at a time;
/// returns how many went. Deliveries still waiting for an attempt are kept.
pub async fn purge_finished(pool: &PgPool, now: OffsetDateTime) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let batch = sqlx::query!(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE next_attempt_at IS NULL AND created_at < $1 LIMIT 1000)",
            now - KEEP_FINISHED
        )
        .execute(pool)
        .await?
        .rows_affected();
        deleted += batch;
        if batch < 1000 {
            return Ok(deleted);
        }
    }
}

async fn send(
    sender: &Sender,
    id: Uuid,
    event: &str,
    body: &str,
    url: &str,
    secret: &str,
    now: OffsetDateTime,
) -> Attempt {
    let mut headers = Map::new();
    let mut put = |k: &str, v: String| {
        headers.insert(k.to_owned(), Value::String(v));
    };
    put("Content-Type", "application/json".into());
    put("User-Agent", concat!("Tollgate-Webhooks/", env!("CARGO_PKG_VERSION")).into());
    put("Tollgate-Event", event.into());
    put("Tollgate-Delivery", id.to_string());
    put(SIGNATURE_HEADER, signature_header(secret, now.unix_timestamp(), body));
    let started = Instant::now();
    let result = post(sender, url, &headers, body).await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    match result {
        Ok((status, excerpt)) => {
            Attempt { headers, status: Some(status), excerpt: Some(excerpt), error: None, duration_ms }
        }
        Err(error) => Attempt { headers, status: None, excerpt: None, error: Some(error), duration_ms },
    }
}

/// Posts `body`; the status and the start of the response body, or why there is none.
async fn post(
    sender: &Sender,
    url: &str,
    headers: &Map<String, Value>,
    body: &str,
) -> std::result::Result<(u16, String), String> {
    // Checked again at send time: the setting may have changed since the subscription was made.
    let url = super::target::parse_url(url, sender.policy).map_err(|e| e.to_string())?;
    // The lookup is inside the attempt's time too: a name server that never answers must not
    // hold the round.
    let addrs = tokio::time::timeout(sender.timeout, resolve(&url, sender.policy))
        .await
        .map_err(|_| format!("could not resolve the host within {} s", sender.timeout.as_secs()))??;
    let client = client(sender, &url, &addrs)?;
    let mut request = client.post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    let mut response = request.send().await.map_err(describe)?;
    let status = response.status().as_u16();
    let mut excerpt = Vec::new();
    while excerpt.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    excerpt.truncate(EXCERPT_BYTES);
    Ok((status, String::from_utf8_lossy(&excerpt).into_owned()))
}

/// A client pinned to the addresses that were checked, following no redirects
/// (a redirect could lead anywhere, private addresses included).
fn client(sender: &Sender, url: &Url, addrs: &[std::net::SocketAddr]) -> std::result::Result<reqwest::Client, String> {
    // No proxy from the environment either: a proxy would resolve the host itself, past the
    // addresses checked here.
    let mut builder =
        reqwest::Client::builder().timeout(sender.timeout).redirect(reqwest::redirect::Policy::none()).no_proxy();
    if let Some(domain) = url.domain() {
        builder = builder.resolve_to_addrs(domain, addrs);
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        format!("timed out after {} s", TIMEOUT.as_secs())
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        // Without the URL: a receiver's URL often carries its secret (Slack, Discord, Teams).
        err.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        // Our message is "<t>.<body>", so split the data at a dot-free point.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(signature_header("k", 5, "{}"), format!("t=5,v1={}", sign("k", 5, "{}")));
        assert_ne!(sign("k", 5, "{}"), sign("k", 6, "{}"));
    }

    #[test]
    fn the_schedule_ends_after_ten_attempts() {
        assert_eq!(MAX_ATTEMPTS, 10);
        assert!(RETRY_DELAYS.windows(2).all(|w| w[0] < w[1]));
    }
}
