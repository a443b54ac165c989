//! The protocol's version and where it is spoken: the header, the content
//! type of the config stream and the paths of the three endpoints.

/// The newest version of this protocol this build speaks; bumped when a snapshot may carry
/// something an older agent must not ignore (see the crate docs). Version 2 adds mocks.
pub const PROTOCOL_VERSION: u32 = 2;

/// The first version: what a snapshot using nothing newer says it needs.
pub const BASE_PROTOCOL_VERSION: u32 = 1;

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
