//! The protocol's version and where it is spoken: the header, the content
//! type of the config stream and the paths of the three endpoints.

/// Version of this protocol; bumped only for breaking changes (see the crate docs).
pub const PROTOCOL_VERSION: u32 = 1;

/// Request header in which an agent states the [`PROTOCOL_VERSION`] it speaks.
pub const PROTOCOL_VERSION_HEADER: &str = "tollgate-protocol-version";

/// Content type of the config stream: newline-delimited JSON.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// `GET`: the config stream (NDJSON of [`crate::ConfigMessage`]).
pub const CONFIG_STREAM_PATH: &str = "/agent/v1/config";

/// `POST`: an [`crate::AgentStatus`].
pub const STATUS_PATH: &str = "/agent/v1/status";

/// `POST`: a [`crate::UsageBatch`], answered by a [`crate::UsageAck`].
pub const USAGE_PATH: &str = "/agent/v1/usage";
