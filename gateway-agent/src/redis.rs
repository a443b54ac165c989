//! Optional shared counters in Redis, for limits that hold across a cluster of agents.
//!
//! One Lua script per request checks every limit and, only if all have room, increments
//! every counter and sets its TTL to the window's end: Redis runs scripts atomically, so
//! agents sharing a Redis can never over-admit together. When Redis fails or is slow the
//! agent falls back to its local counters at once (the request is not failed), reports
//! `tollgate_agent_redis_up 0`, logs once, and probes in the background until Redis is back.
//! What it admits meanwhile is owed to Redis, and added to the shared counters before they
//! are used again: otherwise the calls of an outage would be admitted a second time after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use metrics::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script, TlsCertificates};
use tokio::sync::watch;

use crate::enforce::counters::{Check, CounterKey, Outcome, RETENTION_SECS, tightest};
use crate::settings::RedisUrl;
use crate::telemetry::Metrics;

/// The most a request waits for Redis before counting locally.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a down Redis is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

const SCRIPT: &str = r"
-- KEYS: counters. ARGV: per counter, amount, max and TTL in ms (0: none).
-- Returns {0, index, used} for the counter without room whose window ends last (the one
-- to wait for), or {1, used...}: every counter after the increments.
local refused, refused_ttl, refused_used = nil, -1, 0
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[3 * i - 2]) > tonumber(ARGV[3 * i - 1]) then
    local ttl = tonumber(ARGV[3 * i])
    if ttl == 0 then ttl = math.huge end
    if ttl > refused_ttl then
      refused, refused_ttl, refused_used = i - 1, ttl, used
    end
  end
end
if refused then
  return {0, refused, refused_used}
end
local after = {1}
for i = 1, #KEYS do
  after[i + 1] = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  local ttl = tonumber(ARGV[3 * i])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return after
";

/// Usage admitted while Redis was down, per counter: what to add, and when the counter's
/// window (and retention) ends, in Unix milliseconds (`None`: never).
type Owed = HashMap<String, (u64, Option<i64>)>;

pub(crate) struct SharedCounters {
    manager: ConnectionManager,
    script: Script,
    up: AtomicBool,
    owed: Mutex<Owed>,
    url: RedisUrl,
    /// `tollgate_agent_redis_up`.
    gauge: Gauge,
}

impl SharedCounters {
    /// Does not connect yet; see [`SharedCounters::probe`]. A `rediss://` URL is verified
    /// against `ca` (PEM), else the system's roots.
    pub fn new(url: &RedisUrl, ca: Option<Vec<u8>>, metrics: &Metrics) -> Result<SharedCounters, redis::RedisError> {
        let client = match ca {
            Some(ca) => {
                Client::build_with_tls(url.expose(), TlsCertificates { client_tls: None, root_cert: Some(ca) })?
            }
            None => Client::open(url.expose())?,
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REQUEST_TIMEOUT))
            .set_response_timeout(Some(REQUEST_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(PROBE_INTERVAL);
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        let gauge = metrics.redis_up();
        gauge.set(0.0);
        Ok(SharedCounters {
            manager,
            script: Script::new(SCRIPT),
            up: AtomicBool::new(false),
            owed: Mutex::new(HashMap::new()),
            url: url.clone(),
            gauge,
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        self.gauge.set(if up { 1.0 } else { 0.0 });
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!(redis = %self.url, "redis reachable: using shared counters");
            } else {
                tracing::warn!(redis = %self.url, "redis unavailable: falling back to local counters");
            }
        }
    }

    /// Pings Redis and, once it answers and has been paid what is owed, records it up.
    pub async fn probe(&self) -> bool {
        let mut connection = self.manager.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        let up = matches!(tokio::time::timeout(REQUEST_TIMEOUT * 2, ping).await, Ok(Ok(_))) && self.settle().await;
        self.set_up(up);
        // Calls counted locally while the first settlement ran.
        if up && !self.settle().await {
            self.set_up(false);
        }
        up
    }

    /// Notes the usage of `checks`, admitted locally while Redis is down, as owed to it.
    pub fn owe(&self, checks: &[Check], now: Timestamp) {
        let mut owed = self.owed.lock().unwrap_or_else(PoisonError::into_inner);
        for check in checks {
            let expires =
                check.window_end.map(|end| end.as_millisecond().max(now.as_millisecond()) + RETENTION_SECS * 1000);
            let entry = owed.entry(redis_key(&check.key)).or_insert((0, expires));
            entry.0 = entry.0.saturating_add(check.amount);
        }
    }

    /// Adds what is owed to the shared counters (each with its expiry), in one pipeline;
    /// `false`, with the debt kept, if Redis did not take it.
    async fn settle(&self) -> bool {
        let owed = std::mem::take(&mut *self.owed.lock().unwrap_or_else(PoisonError::into_inner));
        if owed.is_empty() {
            return true;
        }
        let now = Timestamp::now().as_millisecond();
        let mut pipeline = redis::pipe();
        for (key, &(amount, expires)) in &owed {
            // A window that has ended (and its retention) needs nothing.
            if expires.is_some_and(|at| at <= now) {
                continue;
            }
            pipeline.cmd("INCRBY").arg(key).arg(amount).ignore();
            if let Some(at) = expires {
                pipeline.cmd("PEXPIREAT").arg(key).arg(at).ignore();
            }
        }
        let mut connection = self.manager.clone();
        let paid = pipeline.query_async::<()>(&mut connection);
        if matches!(tokio::time::timeout(REQUEST_TIMEOUT * 4, paid).await, Ok(Ok(()))) {
            tracing::info!(
                counters = owed.len(),
                "added the usage counted during the redis outage to the shared counters"
            );
            return true;
        }
        let mut kept = self.owed.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, (amount, expires)) in owed {
            let entry = kept.entry(key).or_insert((0, expires));
            entry.0 = entry.0.saturating_add(amount);
        }
        false
    }

    /// Probes a down Redis every [`PROBE_INTERVAL`] until `stop` changes.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PROBE_INTERVAL) => {}
                _ = stop.changed() => return,
            }
            if !self.is_up() {
                self.probe().await;
            }
        }
    }

    /// `None` if Redis did not answer in time; the caller counts locally instead.
    pub async fn check_and_add(&self, checks: &[Check], now: Timestamp) -> Option<Outcome> {
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            invocation.key(redis_key(&check.key));
        }
        for check in checks {
            let ttl_ms = check.window_end.map_or(0, |end| {
                let left = end.as_millisecond() - now.as_millisecond();
                left.max(0) + RETENTION_SECS * 1000
            });
            invocation.arg(check.amount).arg(check.max).arg(ttl_ms);
        }
        let mut connection = self.manager.clone();
        let call = invocation.invoke_async::<Vec<i64>>(&mut connection);
        let reply = self.answered(tokio::time::timeout(REQUEST_TIMEOUT, call).await)?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        match reply.split_first() {
            Some((1, after)) if after.len() == checks.len() => {
                Some(Outcome::Admitted { tightest: tightest(checks, |i| count(after[i])) })
            }
            Some((0, [index, used])) => {
                Some(Outcome::Rejected { index: usize::try_from(*index).unwrap_or(0), used: count(*used) })
            }
            _ => {
                tracing::debug!(?reply, "unexpected answer from the redis script");
                self.set_up(false);
                None
            }
        }
    }

    /// Where the counters of `checks` stand (nothing is added), or `None` if Redis did not
    /// answer in time.
    pub async fn read(&self, checks: &[Check]) -> Option<Vec<u64>> {
        if checks.is_empty() {
            return Some(Vec::new());
        }
        let mut command = redis::cmd("MGET");
        for check in checks {
            command.arg(redis_key(&check.key));
        }
        let mut connection = self.manager.clone();
        let call = command.query_async::<Vec<Option<u64>>>(&mut connection);
        let values = self.answered(tokio::time::timeout(REQUEST_TIMEOUT, call).await)?;
        Some(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The answer of a Redis call, or `None` (and Redis marked down) if it failed or was late.
    fn answered<T>(&self, result: Result<Result<T, redis::RedisError>, tokio::time::error::Elapsed>) -> Option<T> {
        match result {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "redis call failed");
                self.set_up(false);
                None
            }
            Err(_elapsed) => {
                self.set_up(false);
                None
            }
        }
    }
}

/// `tg:{<application id>}:<metric id>:<period>:<window start>`; the hash tag would keep one
/// request's keys in one slot of a Redis Cluster (not supported yet: the client does not
/// follow `MOVED`).
fn redis_key(key: &CounterKey) -> String {
    format!("tg:{{{}}}:{}:{}:{}", key.app, key.metric, key.period.as_str(), key.window.0)
}
