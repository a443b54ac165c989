//! Usage reports from agents: what was forwarded, per application, metric and minute.
//!
//! Only requests the agent forwarded upstream are reported; requests it answered itself
//! (401, 403, 404, 429) show up in its Prometheus metrics instead. Batches are idempotent by
//! id, so an agent may resend a spooled batch until it sees a [`UsageAck`].
//!
//! A batch also says which credentials were used ([`UsageBatch::credentials_used`]): the
//! minute of each credential's latest use, for "last used" in the developer portal.

use std::collections::HashSet;
use std::time::Duration;

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
    /// Checks what the server relies on before counting: a v7 id, whole minutes, each
    /// (application, metric, minute, status class) at most once, so merging is unambiguous,
    /// and each credential at most once in `credentials_used`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.id.get_version_num() != 7 {
            return Err(ValidationError::new("id", "batch ids are UUIDv7"));
        }
        let mut seen = HashSet::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            if entry.minute.rem_euclid(60) != 0 {
                return Err(ValidationError::new(
                    format!("entries[{i}].minute"),
                    format!("{} is not the start of a minute", entry.minute),
                ));
            }
            let key = (entry.application_id, entry.metric, entry.minute, entry.status_class);
            if !seen.insert(key) {
                return Err(ValidationError::new(
                    format!("entries[{i}]"),
                    "second entry for this application, metric, minute and status class",
                ));
            }
        }
        let mut hashes = HashSet::with_capacity(self.credentials_used.len());
        for (i, used) in self.credentials_used.iter().enumerate() {
            if used.minute.rem_euclid(60) != 0 {
                return Err(ValidationError::new(
                    format!("credentials_used[{i}].minute"),
                    format!("{} is not the start of a minute", used.minute),
                ));
            }
            if !hashes.insert(used.hash) {
                return Err(ValidationError::new(
                    format!("credentials_used[{i}].hash"),
                    "second entry for this credential",
                ));
            }
        }
        Ok(())
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
        };
        let mut batch = UsageBatch {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            agent_id: Uuid::from_u128(3),
            entries: vec![entry.clone()],
            credentials_used: Vec::new(),
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
}
