//! API products: created from documents that `tollgate_openapi` has read,
//! their versions, metrics and mapping rules, and the views of them.

pub mod catalog;
pub mod detail;
pub mod lifecycle;
pub mod mocks;
pub mod preview;
mod products;
pub mod rules;
pub mod staging;
mod types;
pub mod versions;

pub use products::{ApiSummary, NewApi, create_from_spec, create_in, find_by_slug, list_apis};
pub use types::{ApiId, ApiState, AuthMode, CompatibilityPolicy, KeyLocation, ReportState};
