//! HTTP plumbing shared by every route: request ids, request metrics,
//! health and metrics endpoints.

pub mod health;
pub mod request_id;
