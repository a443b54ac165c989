//! The contract between the Tollgate management server and its gateway agents.
//!
//! Everything here is pure data and pure functions: serde types, key format and hashing,
//! path patterns and the calendar arithmetic of limit periods. No I/O, no async runtime,
//! no database, so the server, the agent and the billing run share one definition of
//! "where does this month begin" and "what does a key look like".
//!
//! # Wire format
//!
//! All bodies are JSON (UTF-8). Ids are UUID strings, instants are RFC 3339 strings in UTC
//! (`2025-03-30T01:00:00Z`), calendar dates are `YYYY-MM-DD`, credential hashes are 64
//! lowercase hex characters.
//!
//! * **Config stream** (server → agent, [`CONFIG_STREAM_PATH`]): one long-lived HTTP response
//!   of content type [`NDJSON_CONTENT_TYPE`], one [`ConfigMessage`] per line. The first line is
//!   always a [`Snapshot`]; after it come [`Delta`]s (each naming the revision it applies on top
//!   of) and [`Heartbeat`]s. An agent that cannot apply a delta reconnects and gets a fresh
//!   snapshot. The `type` key is serialised first, so agents can parse a large snapshot line
//!   without buffering it twice.
//!   An agent that sends `Accept: application/vnd.tollgate.config+bin; version=2`
//!   ([`binary::BINARY_MEDIA_TYPE`]) gets the same messages in the compact framed form of
//!   [`binary`] instead: snapshots as compact records, deltas and heartbeats as JSON frames.
//! * **Agent status** (agent → server, [`STATUS_PATH`]): an [`AgentStatus`] posted on every
//!   applied or rejected revision and periodically as the agent's heartbeat.
//! * **Usage** (agent → server, [`USAGE_PATH`]): a [`UsageBatch`] per flush, answered by a
//!   [`UsageAck`]. Batch ids make ingestion idempotent: a resent batch is acknowledged with
//!   `duplicate: true` and not counted again, so the agent can retry from its disk spool freely.
//!   Besides usage, a batch carries refusals attributable to applications (not usage) and a
//!   sample of failed calls; see [`usage`].
//! * **The gateway's own endpoints** (API consumer → agent): `<base path>/_tollgate/…` is
//!   reserved under every API; `_tollgate/limits` answers a [`LimitsReport`]. See [`gateway`].
//!
//! # Versioning and compatibility
//!
//! [`PROTOCOL_VERSION`] is sent by the agent in the [`PROTOCOL_VERSION_HEADER`] request header
//! and in every [`AgentStatus`]. It changes only when a snapshot may carry something an older
//! agent must not ignore (a removed or retyped field, a new enum variant, a feature such as
//! [`mock`]s that would otherwise be silently dropped). A [`Snapshot`] carries the *lowest*
//! version that can apply it ([`Snapshot::required_version`]): the server writes 1 unless the
//! snapshot uses something newer, so older agents keep working until a feature they lack is
//! used, and then refuse the snapshot by name (and report it) rather than misapply it. An agent
//! applies every version from [`BASE_PROTOCOL_VERSION`] to its own, when it knows every feature
//! the snapshot requires ([`features::check_support`]). Deltas carry newer features in
//! [`Change`]s an older agent cannot parse, so it refuses them too.
//!
//! Adding a field is *not* breaking: no wire type uses `#[serde(deny_unknown_fields)]`, so an
//! older agent ignores what a newer server adds. New fields must therefore be optional
//! (`Option` or `#[serde(default)]`) so that a newer agent still reads an older server.
//! Unknown [`ConfigMessage`] types are skipped ([`ConfigMessage::Unknown`]); unknown
//! [`Change`]s are not, because silently dropping a change would diverge the agent's config.
//!
//! An addition an older agent must not ignore (it changes where traffic goes) is a *feature*:
//! a snapshot using one lists it in `requires` and carries version 2, which version-1 agents
//! refuse; deltas carry it in new [`Change`] variants. See [`features`].

pub mod binary;
pub mod delta;
mod endpoints;
pub mod features;
pub mod gateway;
pub mod key;
pub mod mock;
pub mod pattern;
pub mod period;
pub mod routing;
pub mod snapshot;
pub mod trace;
pub mod upstream;
pub mod usage;
mod validation;

pub use delta::{AgentStatus, Change, ConfigMessage, Delta, DeltaError, Heartbeat, Rejection};
pub use endpoints::{
    AGENT_HOST_HEADER, AGENT_ID_HEADER, BASE_PROTOCOL_VERSION, CONFIG_STREAM_PATH, NDJSON_CONTENT_TYPE,
    PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, STATUS_PATH, USAGE_PATH,
};
pub use gateway::{LIMITS_PATH, LimitStatus, LimitsReport, RESERVED_SEGMENT, ReservedPath};
pub use key::{KeyFormatError, KeyHash, KeyHashError, KeyKind, SecretKey};
pub use mock::{ApiMocks, FEATURE_MOCKS, MockContent, MockExample, MockOperation, MockResponse, MockStatus};
pub use pattern::{Part, Pattern, PatternError, Segment, Specificity, is_dot_segment};
pub use period::{Period, TimeZoneName, UnknownPeriod, UnknownTimeZone, Window, WindowId};
pub use routing::{DEFAULT_GROUP, RouteOverride, Routing, UpstreamGroup};
pub use snapshot::{
    Api, Application, ApplicationState, AuthMode, Credential, CurrentUsage, KeyLocation, Lifecycle, Limit, MappingRule,
    Metric, NoMatch, Plan, RuleOrigin, Snapshot, Upstream, ValidationError,
};
pub use usage::{CredentialUse, FailedCall, RefusedEntry, StatusClass, UsageAck, UsageBatch, UsageEntry};
