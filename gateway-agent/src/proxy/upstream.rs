//! An API's upstream targets: round-robin with passive health checks.
//!
//! A target that refuses connections is ejected at once; one that fails
//! [`FAILURES_TO_EJECT`] times in a row (timeouts, 502/503/504) is ejected too. Ejected
//! targets are skipped for [`EJECTION`]; if every target is ejected the next one in turn is
//! tried anyway, because refusing all traffic is worse than trying a target that may be back.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use hyper::http::uri::{Authority, Scheme};

/// How long a failing target is skipped.
pub(crate) const EJECTION: Duration = Duration::from_secs(10);
/// Consecutive failures that eject a target.
pub(crate) const FAILURES_TO_EJECT: u32 = 5;

pub(crate) struct Target {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix without trailing slash (may be empty).
    pub prefix: Box<str>,
    /// The upstream's `Host` header.
    pub host: HeaderValue,
    /// Display form, for logs.
    pub url: Box<str>,
    failures: AtomicU32,
    /// Milliseconds since [`epoch`] until which the target is skipped.
    ejected_until: AtomicU64,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let uri: hyper::Uri = url.parse().map_err(|_| format!("upstream {url:?} is not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| format!("upstream {url:?} has no scheme"))?;
        let authority = uri.authority().cloned().ok_or_else(|| format!("upstream {url:?} has no host"))?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| format!("upstream {url:?} has an invalid host"))?;
        Ok(Target {
            scheme,
            prefix: uri.path().trim_end_matches('/').into(),
            authority,
            host,
            url: url.into(),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    pub fn succeeded(&self) {
        // Avoid writing a shared cache line on every success.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// The connection was refused or failed: eject now.
    pub fn unreachable(&self) {
        self.eject();
    }

    /// Timed out or answered 502/503/504.
    pub fn failed(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_TO_EJECT {
            self.eject();
        }
    }

    fn eject(&self) {
        self.failures.store(0, Ordering::Relaxed);
        let until = millis_since_epoch() + EJECTION.as_millis() as u64;
        if self.ejected_until.swap(until, Ordering::Relaxed) <= millis_since_epoch() {
            tracing::warn!(upstream = %self.url, "upstream ejected for {}s after failures", EJECTION.as_secs());
        }
    }
}

/// Round-robin over an API's targets.
pub(crate) struct Pool {
    targets: Box<[Target]>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(urls: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Pool, String> {
        let targets =
            urls.into_iter().map(|url| Target::parse(url.as_ref())).collect::<Result<Box<[Target]>, String>>()?;
        Ok(Pool { targets, next: AtomicUsize::new(0) })
    }

    /// The next healthy target, or the next target if none is healthy; `None` if the API has
    /// no upstreams (only drafts and retired APIs).
    pub fn pick(&self) -> Option<&Target> {
        let count = self.targets.len();
        if count == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        if count == 1 {
            return self.targets.first();
        }
        let now = millis_since_epoch();
        (0..count)
            .map(|offset| &self.targets[(start + offset) % count])
            .find(|target| !target.is_ejected(now))
            .or_else(|| self.targets.get(start % count))
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch() -> u64 {
    epoch().elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_ejected_targets() {
        let pool = Pool::new(["http://a:1/base/", "http://b:2"]).expect("valid");
        let picks: Vec<&str> = (0..4).map(|_| &*pool.pick().expect("target").url).collect();
        assert_eq!(picks, ["http://a:1/base/", "http://b:2", "http://a:1/base/", "http://b:2"]);
        assert_eq!(&*pool.targets[0].prefix, "/base");
        pool.targets[0].unreachable();
        assert!((0..4).all(|_| &*pool.pick().expect("target").url == "http://b:2"));
        for _ in 0..FAILURES_TO_EJECT {
            pool.targets[1].failed();
        }
        // All ejected: still answers.
        assert!(pool.pick().is_some());
    }
}
