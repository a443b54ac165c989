//! Usage reports from agents: what was forwarded, what was refused, and recent failed calls,
//! per application.
//!
//! A [`UsageBatch`] carries four independent lists; each request an agent answers lands in at
//! most one of `entries` and `refused`, and, sampled, in `failed_calls`:
//!
//! * [`UsageBatch::entries`]: requests the agent **forwarded** upstream, per (application,
//!   metric, minute, status class of the upstream's answer). This is **usage**: what limits
//!   and billing count. A request is counted on every metric it touched (parents included).
//! * [`UsageBatch::refused`]: requests the agent **answered itself** (a refusal such as 403 or
//!   429, or its own 400/408/502/504 after admitting the request) that it could attribute to an
//!   application, per (application, minute, status). **Not usage**: never counted against
//!   limits, never billed; they exist so that status and latency charts show refusals. Counted
//!   once per request, not per metric.
//! * [`UsageBatch::failed_calls`]: a bounded sample of individual calls that failed — every
//!   request in `refused`, and forwarded requests whose upstream answered 400 or more — for a
//!   "recent failed calls" table. Not counted anywhere else: a failed call is also in
//!   `entries` (forwarded) or in `refused` (answered by the agent), which are what counts.
//! * [`UsageBatch::credentials_used`]: the minute of each credential's latest use, for "last
//!   used" in the developer portal.
//!
//! A request is *attributable* to an application when it presents a credential the agent
//! finds in its table — the key's hash is known (and, for `app_id` + `app_key`, the key
//! belongs to that `app_id`) — whatever happens next: the key may be expired, of another
//! API, or its application suspended. Only the key's holder can be blamed this way; a bare
//! `app_id` never is. Requests without such a credential (401, unknown keys, unknown paths,
//! malformed requests) are in no list; the agent's Prometheus metrics count them.
//!
//! Batches are idempotent by id, so an agent may resend a spooled batch until it sees a
//! [`UsageAck`]. Every list but `entries` is omitted when empty and reads as empty when
//! absent, so batches of older agents parse and older servers ignore the newer lists.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::key::KeyHash;
use crate::snapshot::ValidationError;

/// Upper bounds (inclusive, in milliseconds) of all latency buckets but the last; the last
/// bucket holds everything slower than 5 s. Changing them is a protocol change.
pub const LATENCY_BUCKET_BOUNDS_MS: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// Number of latency buckets: one per bound plus the overflow bucket.
pub const LATENCY_BUCKETS: usize = LATENCY_BUCKET_BOUNDS_MS.len() + 1;

/// Index of the bucket for `latency`: the first bound it does not exceed.
pub fn latency_bucket(latency: Duration) -> usize {
    let micros = latency.as_micros();
    LATENCY_BUCKET_BOUNDS_MS.iter().position(|&bound| micros <= u128::from(bound) * 1000).unwrap_or(LATENCY_BUCKETS - 1)
}

/// One flush of an agent's counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBatch {
    /// A UUIDv7 made by the agent when it seals the batch: the idempotency key, and
    /// time-ordered so the server can expire remembered ids by age.
    pub id: Uuid,
    pub agent_id: Uuid,
    pub entries: Vec<UsageEntry>,
    /// Credentials that admitted requests the agent forwarded, each with the minute of its
    /// latest use, at most once per batch. An agent lists a credential again only when its
    /// latest use moved to a later minute, so the server keeps the maximum it has seen per
    /// hash (batches may arrive late or twice). Omitted when empty; absent from batches of
    /// agents older than this field, which therefore reads as empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials_used: Vec<CredentialUse>,
    /// Requests the agent answered itself and could attribute to an application, per
    /// (application, minute, status); not usage (see the module docs). At most
    /// [`MAX_REFUSED_PER_BATCH`]. Omitted when empty; absent from older agents' batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedEntry>,
    /// A sample of the calls that failed since the previous batch, oldest first, at most
    /// [`MAX_FAILED_CALLS_PER_BATCH`] (and at most [`FAILED_CALLS_PER_APPLICATION`] per
    /// application, by the agent's sampling). Not counted anywhere: the same requests are in
    /// `entries` or `refused`. Omitted when empty; absent from older agents' batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_calls: Vec<FailedCall>,
    /// Failed calls of the same period that the agent saw but left out of `failed_calls`
    /// (sampling under load). Omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_calls_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The most [`UsageBatch::refused`] entries one batch may hold (agents split larger seals).
pub const MAX_REFUSED_PER_BATCH: usize = 5000;
/// The most [`UsageBatch::failed_calls`] one batch may hold.
pub const MAX_FAILED_CALLS_PER_BATCH: usize = 1000;
/// The most failed calls of one application an agent puts into one batch (its latest ones).
/// A sampling rule of the agent, not checked by [`UsageBatch::validate`].
pub const FAILED_CALLS_PER_APPLICATION: usize = 20;
/// The longest [`FailedCall::path`], in bytes; agents cut longer paths at a character
/// boundary at or below it.
pub const MAX_FAILED_CALL_PATH_BYTES: usize = 256;
/// The longest [`FailedCall::method`], in bytes; agents cut longer (extension) methods.
pub const MAX_FAILED_CALL_METHOD_BYTES: usize = 32;
/// The longest [`FailedCall::error`] code, in bytes.
pub const MAX_ERROR_CODE_BYTES: usize = 64;
/// The longest [`FailedCall::key_prefix`], in bytes (`tg_adm_` and 4 characters is 11).
pub const MAX_KEY_PREFIX_BYTES: usize = 16;

/// Requests the agent answered itself for one (application, minute, status): refusals
/// attributable to the application (see the module docs). Not usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedEntry {
    pub application_id: Uuid,
    /// Start of the UTC minute the requests arrived in, Unix seconds (a multiple of 60).
    pub minute: i64,
    /// The status the agent answered, 400..=599 (e.g. 403, 404, 410, 429, 502, 504).
    pub status: u16,
    /// Number of requests (each counts 1, whatever its mapping rules' deltas). At least 1.
    pub count: u64,
    /// The same requests by latency from request received to the agent's answer, buckets as
    /// in [`UsageEntry::latency_buckets`]; they sum to `count`.
    pub latency_buckets: [u64; LATENCY_BUCKETS],
    /// The upstream group the agent had chosen when it gave up on the call (a 502 or 504 of
    /// the group's targets), as in [`UsageEntry::group`]; absent for refusals before that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One call that failed: refused by the agent (an error code is given) or answered 400 or
/// more by the upstream (no error code), attributable to an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCall {
    pub application_id: Uuid,
    /// The API the request was routed to (by host and base path). Usually the application's
    /// own; another API's when the key was presented to an API its application does not
    /// subscribe to (`error` is then `invalid_credentials`).
    pub api_id: Uuid,
    /// When the agent received the request, RFC 3339 in UTC (may carry a fraction of a second).
    pub at: Timestamp,
    /// The request method as sent (`GET`, …), at most [`MAX_FAILED_CALL_METHOD_BYTES`].
    pub method: String,
    /// The operation the request counted on: the metric of the most specific mapping rule that
    /// matched (an imported operation's method, or a hand-made rule's metric), a metric of the
    /// API `api_id`. Absent when no rule matched (`no_matching_rule`, or an API that passes
    /// unmatched requests) or the request was refused before rules were applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Uuid>,
    /// The request path as received (percent-encoding kept, base path included), without the
    /// query string, cut to at most [`MAX_FAILED_CALL_PATH_BYTES`]. Starts with `/`.
    pub path: String,
    /// The status the client got, 400..=599.
    pub status: u16,
    /// The agent's `snake_case` error code (the `error` of its JSON answer, e.g.
    /// `limit_exceeded`) when the agent answered; absent when the status is the upstream's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The visible prefix of the key the request presented (`tg_uk_1AbC`, as the developer
    /// portal shows it: [`crate::key::display_prefix`]); for `app_id` + `app_key`, of the
    /// `app_key`. Never more of the key. Absent if the key is not in Tollgate's key format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Microseconds from request received to the answer's head (the upstream's, or the
    /// agent's own).
    pub latency_us: u64,
    /// The id the agent gave the answer in its `X-Tollgate-Request-Id` header, so a developer
    /// can quote the call and the provider find it; absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
}

/// The latest use of one credential seen by the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialUse {
    /// The credential, as in [`crate::Credential::hash`].
    pub hash: KeyHash,
    /// Start of the UTC minute of the latest use, Unix seconds (multiple of 60).
    pub minute: i64,
}

/// Counts for one (application, metric, minute, status class).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    pub application_id: Uuid,
    pub metric: Uuid,
    /// Start of the UTC minute, in Unix seconds (a multiple of 60).
    pub minute: i64,
    /// Class of the upstream's response status.
    pub status_class: StatusClass,
    /// Usage of the metric: the sum of the mapping-rule deltas (parents included), which is
    /// what limits and billing count.
    pub count: u64,
    /// Requests that touched the metric, by latency from request received to upstream response
    /// head; bucket `i` counts latencies in `(LATENCY_BUCKET_BOUNDS_MS[i-1], LATENCY_BUCKET_BOUNDS_MS[i]]`
    /// (see [`latency_bucket`]). Not cumulative.
    pub latency_buckets: [u64; LATENCY_BUCKETS],
    /// The upstream group that served the requests ([`crate::routing`]); absent for an API
    /// without routing (its one group, [`crate::routing::DEFAULT_GROUP`]) and from older
    /// agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The server's answer to a [`UsageBatch`]: counted now, or already counted before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAck {
    pub batch_id: Uuid,
    /// The batch had been received before and was not counted again.
    pub duplicate: bool,
}

/// HTTP status class, serialised as `"2xx"` etc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StatusClass {
    /// Only `101 Switching Protocols` ends a request with a 1xx status (WebSocket upgrades).
    #[serde(rename = "1xx")]
    Informational,
    #[serde(rename = "2xx")]
    Success,
    #[serde(rename = "3xx")]
    Redirection,
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
}

impl StatusClass {
    /// `None` outside 100..=599.
    pub fn from_status(status: u16) -> Option<StatusClass> {
        match status {
            100..=199 => Some(StatusClass::Informational),
            200..=299 => Some(StatusClass::Success),
            300..=399 => Some(StatusClass::Redirection),
            400..=499 => Some(StatusClass::ClientError),
            500..=599 => Some(StatusClass::ServerError),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

impl UsageBatch {
    /// Checks what the server relies on before counting: a v7 id; whole minutes; each
    /// (application, metric, minute, status class) at most once in `entries`, so merging is
    /// unambiguous; each credential at most once in `credentials_used`; each (application,
    /// minute, status) at most once in `refused`, with a 4xx/5xx status, a count of at least 1
    /// and latency buckets summing to it; and failed calls within their bounds (see
    /// [`FailedCall`]). Whether minutes and instants are plausible for the server's clock is
    /// the server's to check.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.id.get_version_num() != 7 {
            return Err(ValidationError::new("id", "batch ids are UUIDv7"));
        }
        let mut seen = HashSet::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            whole_minute(format_args!("entries[{i}].minute"), entry.minute)?;
            group_name(format_args!("entries[{i}].group"), entry.group.as_deref())?;
            let key = (entry.application_id, entry.metric, entry.minute, entry.status_class, entry.group.as_deref());
            if !seen.insert(key) {
                return Err(ValidationError::new(
                    format!("entries[{i}]"),
                    "second entry for this application, metric, minute, status class and group",
                ));
            }
        }
        let mut hashes = HashSet::with_capacity(self.credentials_used.len());
        for (i, used) in self.credentials_used.iter().enumerate() {
            whole_minute(format_args!("credentials_used[{i}].minute"), used.minute)?;
            if !hashes.insert(used.hash) {
                return Err(ValidationError::new(
                    format!("credentials_used[{i}].hash"),
                    "second entry for this credential",
                ));
            }
        }
        self.validate_refused()?;
        self.validate_failed_calls()
    }

    fn validate_refused(&self) -> Result<(), ValidationError> {
        if self.refused.len() > MAX_REFUSED_PER_BATCH {
            return Err(ValidationError::new(
                "refused",
                format!("{} entries, more than the {MAX_REFUSED_PER_BATCH} a batch may hold", self.refused.len()),
            ));
        }
        let mut seen = HashSet::with_capacity(self.refused.len());
        for (i, entry) in self.refused.iter().enumerate() {
            whole_minute(format_args!("refused[{i}].minute"), entry.minute)?;
            error_status(format_args!("refused[{i}].status"), entry.status)?;
            group_name(format_args!("refused[{i}].group"), entry.group.as_deref())?;
            if entry.count == 0 {
                return Err(ValidationError::new(format!("refused[{i}].count"), "an entry counts at least 1 request"));
            }
            let sampled = entry.latency_buckets.iter().try_fold(0u64, |sum, &n| sum.checked_add(n));
            if sampled != Some(entry.count) {
                return Err(ValidationError::new(
                    format!("refused[{i}].latency_buckets"),
                    format!("the buckets sum to {sampled:?} requests, not to the count of {}", entry.count),
                ));
            }
            if !seen.insert((entry.application_id, entry.minute, entry.status, entry.group.as_deref())) {
                return Err(ValidationError::new(
                    format!("refused[{i}]"),
                    "second entry for this application, minute, status and group",
                ));
            }
        }
        Ok(())
    }

    fn validate_failed_calls(&self) -> Result<(), ValidationError> {
        if self.failed_calls.len() > MAX_FAILED_CALLS_PER_BATCH {
            return Err(ValidationError::new(
                "failed_calls",
                format!(
                    "{} calls, more than the {MAX_FAILED_CALLS_PER_BATCH} a batch may hold",
                    self.failed_calls.len()
                ),
            ));
        }
        for (i, call) in self.failed_calls.iter().enumerate() {
            validate_failed_call(i, call)?;
        }
        Ok(())
    }

    /// Takes out the failed-call records that are not valid: they are samples for people to
    /// read, and one bad record (an agent's bug, an upstream status no class holds) must not
    /// cost the batch its usage. Returns how many went.
    pub fn drop_invalid_failed_calls(&mut self) -> u64 {
        let before = self.failed_calls.len();
        let mut index = 0;
        self.failed_calls.retain(|call| {
            index += 1;
            validate_failed_call(index - 1, call).is_ok()
        });
        (before - self.failed_calls.len()) as u64
    }
}

/// One failed-call record within its bounds (see [`FailedCall`]); `i` names it in errors.
fn validate_failed_call(i: usize, call: &FailedCall) -> Result<(), ValidationError> {
    let at = |field: &str| format!("failed_calls[{i}].{field}");
    let method = call.method.as_bytes();
    if method.is_empty() || method.len() > MAX_FAILED_CALL_METHOD_BYTES || !method.iter().all(|&b| is_tchar(b)) {
        return Err(ValidationError::new(
            at("method"),
            format!("an HTTP method of 1 to {MAX_FAILED_CALL_METHOD_BYTES} token characters"),
        ));
    }
    if !call.path.starts_with('/')
        || call.path.len() > MAX_FAILED_CALL_PATH_BYTES
        || call.path.chars().any(char::is_control)
    {
        return Err(ValidationError::new(
            at("path"),
            format!("a path starts with `/`, has no control characters and at most {MAX_FAILED_CALL_PATH_BYTES} bytes"),
        ));
    }
    error_status(format_args!("failed_calls[{i}].status"), call.status)?;
    if let Some(code) = &call.error
        && (code.is_empty()
            || code.len() > MAX_ERROR_CODE_BYTES
            || !code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        return Err(ValidationError::new(
            at("error"),
            format!("an error code is 1 to {MAX_ERROR_CODE_BYTES} characters of a-z, 0-9 and _"),
        ));
    }
    if let Some(prefix) = &call.key_prefix
        && (prefix.is_empty()
            || prefix.len() > MAX_KEY_PREFIX_BYTES
            || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ValidationError::new(
            at("key_prefix"),
            format!("a key prefix is 1 to {MAX_KEY_PREFIX_BYTES} characters of A-Z, a-z, 0-9 and _"),
        ));
    }
    Ok(())
}

fn whole_minute(path: std::fmt::Arguments<'_>, minute: i64) -> Result<(), ValidationError> {
    if minute.rem_euclid(60) != 0 {
        return Err(ValidationError::new(path.to_string(), format!("{minute} is not the start of a minute")));
    }
    Ok(())
}

fn error_status(path: std::fmt::Arguments<'_>, status: u16) -> Result<(), ValidationError> {
    if !(400..=599).contains(&status) {
        return Err(ValidationError::new(path.to_string(), format!("{status} is not a 4xx or 5xx status")));
    }
    Ok(())
}

/// A character of an HTTP token (RFC 9110 `tchar`), as methods are.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An entry's upstream group, when it names one, is a valid group name.
fn group_name(at: std::fmt::Arguments<'_>, group: Option<&str>) -> Result<(), ValidationError> {
    match group {
        Some(name) if !crate::routing::is_group_name(name) => {
            Err(ValidationError::new(at.to_string(), format!("{name:?} is not an upstream group name")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_inclusive_upper_bounds() {
        assert_eq!(latency_bucket(Duration::ZERO), 0);
        assert_eq!(latency_bucket(Duration::from_millis(5)), 0);
        assert_eq!(latency_bucket(Duration::from_micros(5001)), 1);
        assert_eq!(latency_bucket(Duration::from_millis(5000)), 9);
        assert_eq!(latency_bucket(Duration::from_millis(5001)), 10);
        assert_eq!(latency_bucket(Duration::from_secs(3600)), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::from_status(101), Some(StatusClass::Informational));
        assert_eq!(StatusClass::from_status(204), Some(StatusClass::Success));
        assert_eq!(StatusClass::from_status(429), Some(StatusClass::ClientError));
        assert_eq!(StatusClass::from_status(599), Some(StatusClass::ServerError));
        assert_eq!(StatusClass::from_status(600), None);
        for class in [StatusClass::Success, StatusClass::ServerError] {
            let json = serde_json::to_string(&class).expect("serialise");
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
    }

    #[test]
    fn validation() {
        let entry = UsageEntry {
            application_id: Uuid::from_u128(1),
            metric: Uuid::from_u128(2),
            minute: 120,
            status_class: StatusClass::Success,
            count: 3,
            latency_buckets: [0; LATENCY_BUCKETS],
            group: None,
        };
        let mut batch = UsageBatch {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            agent_id: Uuid::from_u128(3),
            entries: vec![entry.clone()],
            credentials_used: Vec::new(),
            refused: Vec::new(),
            failed_calls: Vec::new(),
            failed_calls_dropped: 0,
        };
        assert_eq!(batch.validate(), Ok(()));
        batch.entries.push(entry);
        assert_eq!(batch.validate().expect_err("dup").path, "entries[1]");
        batch.entries[1].minute = 121;
        assert_eq!(batch.validate().expect_err("minute").path, "entries[1].minute");
        batch.id = Uuid::from_u128(4);
        assert_eq!(batch.validate().expect_err("v7").path, "id");
    }

    #[test]
    fn credential_use_validation() {
        let used = CredentialUse { hash: KeyHash([7; 32]), minute: 120 };
        let mut batch = UsageBatch {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            agent_id: Uuid::from_u128(3),
            entries: Vec::new(),
            credentials_used: vec![used.clone()],
            refused: Vec::new(),
            failed_calls: Vec::new(),
            failed_calls_dropped: 0,
        };
        assert_eq!(batch.validate(), Ok(()));
        batch.credentials_used.push(CredentialUse { hash: KeyHash([8; 32]), minute: -60 });
        assert_eq!(batch.validate(), Ok(()));
        batch.credentials_used.push(used);
        assert_eq!(batch.validate().expect_err("dup").path, "credentials_used[2].hash");
        batch.credentials_used[2].hash = KeyHash([9; 32]);
        batch.credentials_used[1].minute = 61;
        assert_eq!(batch.validate().expect_err("minute").path, "credentials_used[1].minute");
    }

    fn empty_batch() -> UsageBatch {
        UsageBatch {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            agent_id: Uuid::from_u128(3),
            entries: Vec::new(),
            credentials_used: Vec::new(),
            refused: Vec::new(),
            failed_calls: Vec::new(),
            failed_calls_dropped: 0,
        }
    }

    fn refused(minute: i64, status: u16, count: u64) -> RefusedEntry {
        let mut latency_buckets = [0; LATENCY_BUCKETS];
        latency_buckets[0] = count;
        RefusedEntry { application_id: Uuid::from_u128(1), minute, status, count, latency_buckets, group: None }
    }

    fn failed_call() -> FailedCall {
        FailedCall {
            application_id: Uuid::from_u128(1),
            api_id: Uuid::from_u128(2),
            at: Timestamp::from_second(125).expect("valid"),
            method: "GET".into(),
            metric: Some(Uuid::from_u128(3)),
            path: "/pets/items/7".into(),
            status: 429,
            error: Some("limit_exceeded".into()),
            key_prefix: Some("tg_uk_1AbC".into()),
            latency_us: 180,
            request_id: Some(Uuid::from_u128(4)),
        }
    }

    #[test]
    fn refused_validation() {
        let mut batch = empty_batch();
        batch.refused = vec![refused(120, 429, 3), refused(120, 403, 1), refused(180, 429, 2)];
        assert_eq!(batch.validate(), Ok(()));
        let fail = |change: fn(&mut UsageBatch)| {
            let mut bad = batch.clone();
            change(&mut bad);
            bad.validate().expect_err("invalid").path
        };
        assert_eq!(fail(|b| b.refused.push(refused(120, 429, 1))), "refused[3]");
        assert_eq!(fail(|b| b.refused[1].minute = 121), "refused[1].minute");
        assert_eq!(fail(|b| b.refused[1].status = 200), "refused[1].status");
        assert_eq!(fail(|b| b.refused[1].status = 600), "refused[1].status");
        assert_eq!(fail(|b| b.refused[2] = refused(180, 429, 0)), "refused[2].count");
        assert_eq!(fail(|b| b.refused[2].count = 5), "refused[2].latency_buckets");
        assert_eq!(fail(|b| b.refused[2].latency_buckets = [u64::MAX; LATENCY_BUCKETS]), "refused[2].latency_buckets");
        assert_eq!(
            fail(|b| b.refused = (0..=MAX_REFUSED_PER_BATCH as i64).map(|m| refused(m * 60, 429, 1)).collect()),
            "refused"
        );
    }

    #[test]
    fn failed_call_validation() {
        let mut batch = empty_batch();
        batch.failed_calls =
            vec![failed_call(), FailedCall { error: None, status: 500, metric: None, ..failed_call() }];
        batch.failed_calls.push(FailedCall { key_prefix: None, method: "M-SEARCH".into(), ..failed_call() });
        assert_eq!(batch.validate(), Ok(()));
        let fail = |change: fn(&mut FailedCall)| {
            let mut bad = batch.clone();
            change(&mut bad.failed_calls[1]);
            bad.validate().expect_err("invalid").path
        };
        assert_eq!(fail(|c| c.method = String::new()), "failed_calls[1].method");
        assert_eq!(fail(|c| c.method = "GET /".into()), "failed_calls[1].method");
        assert_eq!(fail(|c| c.method = "X".repeat(MAX_FAILED_CALL_METHOD_BYTES + 1)), "failed_calls[1].method");
        assert_eq!(fail(|c| c.path = "pets".into()), "failed_calls[1].path");
        assert_eq!(fail(|c| c.path = "/a\nb".into()), "failed_calls[1].path");
        assert_eq!(fail(|c| c.path = format!("/{}", "a".repeat(MAX_FAILED_CALL_PATH_BYTES))), "failed_calls[1].path");
        assert_eq!(fail(|c| c.status = 302), "failed_calls[1].status");
        assert_eq!(fail(|c| c.error = Some("Limit exceeded".into())), "failed_calls[1].error");
        assert_eq!(fail(|c| c.error = Some(String::new())), "failed_calls[1].error");
        assert_eq!(fail(|c| c.key_prefix = Some("tg_uk_1AbC…".into())), "failed_calls[1].key_prefix");
        assert_eq!(fail(|c| c.key_prefix = Some("x".repeat(MAX_KEY_PREFIX_BYTES + 1))), "failed_calls[1].key_prefix");
        let mut flood = empty_batch();
        flood.failed_calls = vec![failed_call(); MAX_FAILED_CALLS_PER_BATCH];
        assert_eq!(flood.validate(), Ok(()), "identical calls are allowed (two requests in one instant)");
        flood.failed_calls.push(failed_call());
        assert_eq!(flood.validate().expect_err("too many").path, "failed_calls");
    }

    #[test]
    fn new_lists_are_omitted_when_empty() {
        let json = serde_json::to_value(empty_batch()).expect("serialise");
        let keys: Vec<&str> = json.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["agent_id", "entries", "id"]);
    }
}
