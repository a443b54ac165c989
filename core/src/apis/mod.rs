//! API products: import from OpenAPI documents, versions, metrics and
//! mapping rules.

pub mod catalog;
mod convert;
pub mod detail;
pub mod diff;
pub mod import;
pub mod model;
mod products;
mod refs;
pub mod rules;
pub mod versions;

pub use products::{ApiId, ApiSummary, NewApi, create_from_spec, find_by_slug, list_apis, publish};
