//! What the gateway answers itself under every API: the reserved `_tollgate` segment and the
//! key holder's limits report.
//!
//! Below each API's base path, every path whose first segment is `_tollgate` (compared as
//! mapping-rule literals are: percent-decoded, case-sensitive) belongs to the gateway. Such
//! requests are never forwarded, never counted and never matched against mapping rules:
//!
//! * `GET` (or `HEAD`) `<base path>/_tollgate/limits` ([`LIMITS_PATH`]) answers the caller's
//!   [`LimitsReport`], with the same credential rules as a call to the API;
//! * any other path under `_tollgate` answers `404 unknown_endpoint`.
//!
//! A mapping rule whose pattern starts with the literal segment `_tollgate` could never match
//! a request ([`reserves`] tells), and one that starts with a `{param}` matches every first
//! segment but `_tollgate`. The management server should refuse the first kind.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::pattern::{Pattern, Segment, same_decoded};
use crate::period::Period;

/// The first path segment below a base path that the gateway keeps for itself.
pub const RESERVED_SEGMENT: &str = "_tollgate";

/// The limits report, below an API's base path.
pub const LIMITS_PATH: &str = "/_tollgate/limits";

/// Which of the gateway's own endpoints a path below a base path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedPath {
    /// Exactly [`LIMITS_PATH`] (each segment compared percent-decoded; no trailing `/`).
    Limits,
    /// Anything else whose first segment is [`RESERVED_SEGMENT`].
    Unknown,
}

/// Whether `path` (relative to an API's base path, without query) is the gateway's, and
/// which endpoint it names. Does not allocate.
pub fn reserved_path(path: &str) -> Option<ReservedPath> {
    let rest = path.strip_prefix('/')?;
    // Almost every path's first segment starts with neither `_` nor an escape: one byte decides.
    if !matches!(rest.as_bytes().first(), Some(b'_' | b'%')) {
        return None;
    }
    let mut segments = rest.split('/');
    if !segments.next().is_some_and(|first| same_decoded(RESERVED_SEGMENT, first)) {
        return None;
    }
    match (segments.next(), segments.next()) {
        (Some(second), None) if same_decoded("limits", second) => Some(ReservedPath::Limits),
        _ => Some(ReservedPath::Unknown),
    }
}

/// Whether a mapping-rule pattern can only match reserved paths (its first segment is the
/// literal [`RESERVED_SEGMENT`], in any percent-encoding): such a rule would never count.
pub fn reserves(pattern: &Pattern) -> bool {
    matches!(pattern.segments().first(), Some(Segment::Literal(first)) if same_decoded(RESERVED_SEGMENT, first))
}

/// `GET <base path>/_tollgate/limits`: the caller's standing against every limit of its
/// application's plan, for this API. Reading it is not a call: nothing is counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsReport {
    /// The plan's time zone (IANA name), in which day, week, month and year windows begin.
    pub time_zone: String,
    /// One per limit of the plan, in the plan's order. Empty for a plan without limits.
    pub limits: Vec<LimitStatus>,
}

/// One limit as it stands now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitStatus {
    /// The metric's system name (`hits`, or a method's name).
    pub metric: String,
    pub period: Period,
    /// The most the current window admits; 0 means the metric is disabled on this plan.
    pub max: u64,
    /// Counted in the current window (by this gateway, or by all sharing its Redis, plus
    /// usage the server reported at the last snapshot for hour-and-longer periods).
    pub used: u64,
    /// `max - used`, never below 0.
    pub remaining: u64,
    /// When the current window began; `null` for `eternity`.
    pub window_start: Option<Timestamp>,
    /// When the current window ends and the count starts again; `null` for `eternity`.
    pub reset: Option<Timestamp>,
    /// Whole seconds until `reset`, rounded up; `null` for `eternity`.
    pub reset_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths() {
        use ReservedPath::{Limits, Unknown};
        assert_eq!(reserved_path("/_tollgate/limits"), Some(Limits));
        assert_eq!(reserved_path("/%5Ftollgate/%6Cimits"), Some(Limits), "literals match their encodings");
        assert_eq!(reserved_path("/_tollgate/limits/"), Some(Unknown));
        assert_eq!(reserved_path("/_tollgate/limits/x"), Some(Unknown));
        assert_eq!(reserved_path("/_tollgate"), Some(Unknown));
        assert_eq!(reserved_path("/_tollgate/"), Some(Unknown));
        assert_eq!(reserved_path("/_tollgate/other"), Some(Unknown));
        assert_eq!(reserved_path("/_Tollgate/limits"), None, "case-sensitive, as rules are");
        assert_eq!(reserved_path("/_tollgatex/limits"), None);
        assert_eq!(reserved_path("/items/_tollgate/limits"), None);
        assert_eq!(reserved_path("/"), None);
        assert_eq!(reserved_path(""), None);
    }

    #[test]
    fn reserving_patterns() {
        let reserves = |p: &str| reserves(&Pattern::parse(p).expect("pattern"));
        assert!(reserves("/_tollgate"));
        assert!(reserves("/_tollgate/limits$"));
        assert!(reserves("/%5ftollgate/{x}"));
        assert!(!reserves("/"));
        assert!(!reserves("/{x}/limits"));
        assert!(!reserves("/items/_tollgate"));
    }
}
