//! HTTP plumbing shared by every route: request ids, request metrics, the
//! body read deadline, health and metrics endpoints.

pub mod body_timeout;
pub mod health;
pub mod request_id;
