//! The protocol's version and where it is spoken: the header, the content
//! type of the config stream and the paths of the three endpoints.

/// The newest version of this protocol this build speaks (sent in the request header and the
/// status report); bumped only for breaking changes (see the crate docs). Version 2 adds
/// required features ([`crate::features`]).
pub const PROTOCOL_VERSION: u32 = 2;

/// The version of a snapshot that requires no feature, which agents of version 1 apply.
pub const BASE_PROTOCOL_VERSION: u32 = 1;

/// Request header in which an agent states the [`PROTOCOL_VERSION`] it speaks.
pub const PROTOCOL_VERSION_HEADER: &str = "tollgate-protocol-version";

/// Request header with the agent's own id (a UUID kept in its state directory), on every
/// request: agents that share a token (replicas) are told apart by it.
pub const AGENT_ID_HEADER: &str = "tollgate-agent-id";

/// Request header with the agent's host name, shown beside its id; optional.
pub const AGENT_HOST_HEADER: &str = "tollgate-agent-host";

/// Content type of the config stream: newline-delimited JSON.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// `GET`: the config stream (NDJSON of [`crate::ConfigMessage`]).
pub const CONFIG_STREAM_PATH: &str = "/agent/v1/config";

/// `POST`: an [`crate::AgentStatus`].
pub const STATUS_PATH: &str = "/agent/v1/status";

/// `POST`: a [`crate::UsageBatch`], answered by a [`crate::UsageAck`].
pub const USAGE_PATH: &str = "/agent/v1/usage";
