//! The compiled config's types: what the request path reads. Built by compile.rs,
//! parse.rs and delta.rs, saved by store.rs.
//!
//! Ids are mapped to dense `u32` indices: an application refers to its plan by slot, a
//! credential to its application by slot. Slots stay stable across deltas (removed entries
//! leave a hole) so the big tables never need re-indexing; a new snapshot starts afresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arc_swap::ArcSwapOption;
use hyper::Method;
use hyper::header::HeaderValue;
use jiff::Timestamp;
use tollgate_protocol::{Api, ApiMocks, ApplicationState, KeyKind, NoMatch, Plan, Routing, ValidationError};
use uuid::Uuid;

use super::cow::{CowIndex, CowVec};
use crate::enforce::key_location::Auth;
use crate::enforce::limits::PlanLimits;
use crate::enforce::mapping::MappingRules;
use crate::enforce::touched::Touched;
use crate::proxy::mock::MockTable;
use crate::proxy::route::Routes;
use crate::proxy::split::Router;
use crate::proxy::upstream::Pool;
use crate::telemetry::RequestCounters;

/// Why an update was refused; the reason goes into the agent's status report.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("cannot compile: {0}")]
    Compile(String),
    #[error("unreadable: {0}")]
    Unreadable(String),
}

/// The config being enforced (or about to be). Immutable once built; cloning shares all
/// large tables.
#[derive(Clone)]
pub(crate) struct Config {
    pub revision: u64,
    pub generated_at: Timestamp,
    pub catalog: Arc<Catalog>,
    pub apps: Apps,
    /// SHA-256 of a key → what it unlocks.
    pub credentials: CowIndex<[u8; 32], CredentialEntry>,
}

/// The live config, shared by the proxy, the admin endpoints and the sync task. Empty until
/// the first config is loaded.
pub(crate) type LiveConfig = ArcSwapOption<Config>;

/// APIs and plans: small, rebuilt as a whole whenever one of them changes.
pub(crate) struct Catalog {
    pub apis: Vec<ApiEntry>,
    /// By stable slot; `None` for a plan removed by a delta.
    pub plans: Vec<Option<PlanEntry>>,
    pub routes: Routes,
    /// What the catalog was compiled from, for deltas and persistence.
    pub source_apis: Vec<Api>,
    pub source_plans: Vec<Option<Plan>>,
    pub source_routing: Vec<Routing>,
    pub source_mocks: Vec<ApiMocks>,
    pub plan_slots: HashMap<Uuid, u32>,
    /// Metric id → index of the API it belongs to.
    pub metric_api: HashMap<Uuid, u32>,
}

impl Catalog {
    pub fn plan(&self, slot: u32) -> Option<&PlanEntry> {
        self.plans.get(slot as usize)?.as_ref()
    }
}

pub(crate) struct ApiEntry {
    pub id: Uuid,
    pub slug: Arc<str>,
    pub lifecycle: Lifecycle,
    pub auth: Auth,
    pub metrics: Box<[MetricEntry]>,
    pub rules: MappingRules,
    pub on_no_match: NoMatch,
    pub upstreams: Pool,
    /// Upstream groups by consumer and weight; `None`: every call goes to `upstreams`.
    pub routing: Option<Box<Router>>,
    pub requests: RequestCounters,
    /// The operations in mock mode, if any (see `proxy::mock`).
    pub mocks: Option<Box<MockTable>>,
}

impl ApiEntry {
    /// Applies the API's mapping rules to a request: each rule that counts adds its delta to
    /// its metric and the metric's ancestors. `path` is relative to the API's base path.
    /// Returns the index of the request's operation (the metric of the most specific rule
    /// that counted), `None` if no rule matched.
    pub fn map_request(&self, method: &Method, path: &str, touched: &mut Touched) -> Option<u32> {
        self.rules.apply(method, path, |metric, delta| {
            if let Some(metric) = self.metrics.get(metric as usize) {
                for &index in metric.lineage.iter() {
                    touched.add(index, u64::from(delta));
                }
            }
        })
    }
}

pub(crate) enum Lifecycle {
    Draft,
    Published,
    /// Served with a precomputed `Deprecation` (RFC 9745's `@<seconds>`) and, when set, a
    /// precomputed `Sunset` HTTP-date.
    Deprecated {
        sunset: Option<HeaderValue>,
        since: HeaderValue,
    },
    Retired,
}

pub(crate) struct MetricEntry {
    pub id: Uuid,
    /// For the limits report.
    pub system_name: Box<str>,
    /// This metric's index followed by its ancestors' (usage on a method counts on its
    /// parents too).
    pub lineage: Box<[u32]>,
}

pub(crate) struct PlanEntry {
    /// Index into [`Catalog::apis`].
    pub api: u32,
    pub limits: PlanLimits,
    /// The IANA name of the plan's time zone, for the limits report.
    pub time_zone: Box<str>,
}

#[derive(Clone)]
pub(crate) struct Apps {
    /// By stable slot; `None` for an application removed by a delta.
    pub slots: CowVec<Option<AppEntry>>,
    pub by_id: CowIndex<Uuid, u32>,
    /// Public `app_id` → slot, for app_id + app_key APIs.
    pub by_app_id: CowIndex<Box<str>, u32>,
}

impl Apps {
    pub fn get(&self, slot: u32) -> Option<&AppEntry> {
        self.slots.get(slot as usize)?.as_ref()
    }
}

#[derive(Clone)]
pub(crate) struct AppEntry {
    pub id: Uuid,
    /// Slot in [`Catalog::plans`].
    pub plan: u32,
    pub state: ApplicationState,
    pub app_id: Option<Box<str>>,
}

/// 24 bytes; with its 32-byte key, 56 bytes per credential in the table.
#[derive(Debug)]
pub(crate) struct CredentialEntry {
    /// Unix seconds (rounded down, so a key expires early rather than late); `i64::MAX`
    /// for never.
    pub expires_at: i64,
    /// Slot in [`Apps::slots`].
    pub app: u32,
    /// The minute of the latest forwarded request this credential admitted, in minutes since
    /// the Unix epoch; 0 for none since this entry was built. Written by the request path at
    /// most once per minute (see [`CredentialEntry::mark_used`]); it fits the padding the other
    /// fields leave but one word, so it costs 8 bytes per key.
    pub last_used: AtomicU32,
    pub kind: KeyKind,
}

const _: () = assert!(std::mem::size_of::<([u8; 32], CredentialEntry)>() == 56);

impl Clone for CredentialEntry {
    /// Carries the latest use over, so a delta that copies a bucket does not report the uses
    /// of the other keys in it again.
    fn clone(&self) -> Self {
        CredentialEntry {
            expires_at: self.expires_at,
            app: self.app,
            last_used: AtomicU32::new(self.last_used.load(Ordering::Relaxed)),
            kind: self.kind,
        }
    }
}

impl CredentialEntry {
    pub fn new(expires_at: i64, app: u32, kind: KeyKind) -> CredentialEntry {
        CredentialEntry { expires_at, app, last_used: AtomicU32::new(0), kind }
    }

    pub fn expires_at(expiry: Option<Timestamp>) -> i64 {
        expiry.map_or(i64::MAX, |t| t.as_second() - i64::from(t.subsec_nanosecond() < 0))
    }

    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        now.as_second() < self.expires_at
    }

    /// Notes a use in `minute` (minutes since the Unix epoch); true only for the one caller
    /// that moved the latest use to a later minute. An uncontended load while the minute is
    /// unchanged, so concurrent requests on one key share the cache line read-only.
    pub fn mark_used(&self, minute: u32) -> bool {
        self.last_used.load(Ordering::Relaxed) < minute && self.last_used.fetch_max(minute, Ordering::Relaxed) < minute
    }
}
