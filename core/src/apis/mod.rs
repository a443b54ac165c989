//! API products: import from OpenAPI documents, versions, metrics and
//! mapping rules.

pub mod catalog;
pub mod detail;
mod convert;
pub mod diff;
pub mod import;
pub mod model;
mod refs;
mod products;
pub mod rules;
pub mod versions;

pub use products::{ApiId, ApiSummary, NewApi, create_from_spec, find_by_slug, list_apis, publish};
