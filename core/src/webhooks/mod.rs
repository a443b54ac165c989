//! Webhooks (issue 16): providers subscribe URLs to events; every event queues a
//! delivery per matching subscription in the transaction of its change (`queue`),
//! and a job sends them signed, retrying with backoff (`deliver`).
//! See docs/WEBHOOKS.md for the events, the payload and the signature.

pub mod deliver;
pub mod events;
pub mod queue;
pub mod subscriptions;
pub mod target;

pub use events::EventType;
pub use target::TargetPolicy;
