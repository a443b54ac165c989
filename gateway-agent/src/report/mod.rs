//! Response codes of allowed decisions (`TOLLGATE_AGENT_AUTHZ_REPORTS=on`).
//!
//! A proxy that asks the decision endpoint forwards the call itself, so only it knows what the
//! upstream answered. With reports on, an allowed decision names itself to the upstream request
//! (`X-Tollgate-Decision: <id>`) and its usage waits here instead of being counted at once; the
//! proxy's access log sends the id back with the response's status (Envoy's gRPC access-log
//! service, [`envoy`]; nginx's syslog or any JSON-lines shipper, [`udp`]), and the usage is
//! counted then, in that status's class. A call whose report does not come within
//! [`REPORT_WAIT`] is counted in the 2xx class, as it would be without reports.
//!
//! Each call is counted exactly once: whichever of its report and its expiry comes first takes
//! it out of the table; a second report, or a report of an id the agent never gave, counts
//! nothing. Limits are not affected: they were counted at the decision.

pub(crate) mod envoy;
pub(crate) mod udp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue};
use jiff::Timestamp;
use tokio::sync::watch;
use uuid::Uuid;

use crate::hashing::FxBuildHasher;
use crate::telemetry::Metrics;
use crate::usage::aggregate::Aggregator;
use crate::usage::groups::GroupTag;
use metrics::Counter;

/// The header that names an allowed decision to the upstream request and to the access log.
pub(crate) static X_TOLLGATE_DECISION: HeaderName = HeaderName::from_static("x-tollgate-decision");

/// How long an allowed call's usage waits for its report. Longer than any upstream timeout a
/// proxy is likely to have, since an access log is written when the response ends.
pub(crate) const REPORT_WAIT: Duration = Duration::from_secs(60);

/// Calls waiting for their report at most; beyond, a call is counted at once (2xx).
const MAX_PENDING: usize = 1 << 20;

const SHARDS: usize = 16;

/// An allowed call's usage, waiting for its response code.
struct Waiting {
    app: Uuid,
    /// The upstream group chosen at the decision (`GroupTag::NONE` for an API without groups).
    group: GroupTag,
    metrics: Box<[(Uuid, u64)]>,
    at: Timestamp,
    latency: Duration,
    since: Instant,
}

/// Allowed calls waiting for their report, by decision id.
pub(crate) struct Pending {
    shards: Box<[Mutex<HashMap<u64, Waiting, FxBuildHasher>>]>,
    usage: Arc<Aggregator>,
    wait: Duration,
    outcomes: Outcomes,
}

/// `tollgate_agent_decision_reports_total` by outcome: how much of the status-class split is
/// exact (`counted`) and how much fell back to 2xx (`expired`, `not_held`).
struct Outcomes {
    counted: Counter,
    unknown: Counter,
    expired: Counter,
    not_held: Counter,
}

/// What became of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The call was counted in the report's status class.
    Counted,
    /// No call waits under that id: never given, already reported, or expired.
    Unknown,
}

impl Pending {
    pub fn new(usage: Arc<Aggregator>, wait: Duration, metrics: &Metrics) -> Pending {
        let outcomes = Outcomes {
            counted: metrics.decision_reports("counted"),
            unknown: metrics.decision_reports("unknown"),
            expired: metrics.decision_reports("expired"),
            not_held: metrics.decision_reports("not_held"),
        };
        Pending { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), usage, wait, outcomes }
    }

    /// Keeps an allowed call's usage until its report; the id to send with the call, or `None`
    /// when the table is full and the call was counted at once (2xx).
    pub fn hold(
        &self,
        app: Uuid,
        group: GroupTag,
        metrics: impl Iterator<Item = (Uuid, u64)>,
        at: Timestamp,
        latency: Duration,
    ) -> Option<DecisionId> {
        let id: u64 = rand::random();
        let metrics: Box<[(Uuid, u64)]> = metrics.collect();
        let mut shard = self.shard(id);
        if shard.len() >= MAX_PENDING / SHARDS {
            drop(shard);
            self.usage.record(app, group, metrics.iter().copied(), at, 200, latency);
            self.outcomes.not_held.increment(1);
            return None;
        }
        shard.insert(id, Waiting { app, group, metrics, at, latency, since: Instant::now() });
        Some(DecisionId(id))
    }

    /// Counts the call `id` names in the class of `status`; a status that is not an HTTP
    /// status (Envoy's 0 when no response was sent) counts in the 2xx class, as without reports.
    pub fn settle(&self, id: &str, status: u32) -> Settled {
        let call = DecisionId::parse(id).and_then(|id| self.shard(id.0).remove(&id.0));
        let Some(call) = call else {
            self.outcomes.unknown.increment(1);
            return Settled::Unknown;
        };
        let status = u16::try_from(status).ok().filter(|s| (100..=599).contains(s)).unwrap_or(200);
        self.usage.record(call.app, call.group, call.metrics.iter().copied(), call.at, status, call.latency);
        self.outcomes.counted.increment(1);
        Settled::Counted
    }

    /// Counts (2xx) every call that waited longer than the wait, or every call if `all`.
    pub fn expire(&self, all: bool) -> usize {
        let now = Instant::now();
        let mut expired = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.retain(|_, call| {
                if !all && now.duration_since(call.since) < self.wait {
                    return true;
                }
                self.usage.record(call.app, call.group, call.metrics.iter().copied(), call.at, 200, call.latency);
                expired += 1;
                false
            });
        }
        self.outcomes.expired.increment(expired as u64);
        expired
    }

    /// Expires calls once a second until `stop`.
    pub async fn run_expiry(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    let expired = self.expire(false);
                    if expired > 0 {
                        tracing::debug!(expired, "allowed calls without a report: counted as 2xx");
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting, FxBuildHasher>> {
        self.shards[(id as usize) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An allowed decision's id: 64 random bits, 16 lower-case hex digits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DecisionId(u64);

impl DecisionId {
    fn parse(text: &str) -> Option<DecisionId> {
        let text = text.trim();
        if text.len() != 16 {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(DecisionId)
    }

    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_str(&format!("{:016x}", self.0)).unwrap_or(HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_counts_once_in_its_reported_class() {
        let usage = Arc::new(Aggregator::new());
        let metrics = Metrics::new();
        let pending = Pending::new(usage.clone(), Duration::from_secs(60), &metrics);
        let (app, hits) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let at = Timestamp::from_second(120).expect("valid");
        let one = pending.hold(app, GroupTag::NONE, [(hits, 1)].into_iter(), at, Duration::ZERO).expect("held");
        let two = pending.hold(app, GroupTag::NONE, [(hits, 1)].into_iter(), at, Duration::ZERO).expect("held");
        assert_eq!(usage.drain().0, vec![], "nothing counted before the report");
        let one = one.header_value();
        let one = one.to_str().expect("text");
        assert_eq!(pending.settle(one, 503), Settled::Counted);
        assert_eq!(pending.settle(one, 200), Settled::Unknown, "a second report counts nothing");
        assert_eq!(pending.settle("0123456789abcdeg", 200), Settled::Unknown);
        let (entries, _) = usage.drain();
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].status_class, entries[0].count), (tollgate_protocol::StatusClass::ServerError, 1));
        assert_eq!(pending.expire(false), 0, "not yet");
        assert_eq!(pending.expire(true), 1);
        let two = two.header_value();
        assert_eq!(pending.settle(two.to_str().expect("text"), 500), Settled::Unknown, "expired");
        let (entries, _) = usage.drain();
        assert_eq!((entries[0].status_class, entries[0].count), (tollgate_protocol::StatusClass::Success, 1));
        let text = metrics.render();
        for line in [r#"outcome="counted"} 1"#, r#"outcome="unknown"} 3"#, r#"outcome="expired"} 1"#] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
