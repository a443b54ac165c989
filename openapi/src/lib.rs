//! Tollgate's OpenAPI engine: reading a 2.0, 3.0 or 3.1 document (JSON or
//! YAML) into one version-independent model, and comparing two models into
//! a change report with breaking changes first.
//!
//! Pure: text in, values out. No SQL, no web, no file or network access
//! (remote `$ref`s are refused, never fetched). The management server
//! stores and publishes what this crate reads.
//!
//! * `import`: the entry point, [`parse`], with the limits that keep hostile
//!   input cheap, and where an error is in the text;
//! * `convert`: Swagger 2.0 → OpenAPI 3.0 on `serde_json::Value`;
//! * `refs`: local `$ref`s: decoding, lookup, cycles;
//! * `model`: the one model both versions are read into;
//! * `diff`: the change report;
//! * `locate`: the line and column of a node of a JSON or YAML text, by
//!   path (the import's errors, and the server's configuration files);
//! * `mock`: the responses an operation in mock mode answers, from its examples or schemas;
//! * `sample`: the request body a copy-paste sample sends, from its example or schema;
//! * `gateway`: the document as partners call the API, through the gateway (servers,
//!   credentials, the gateway's own answers);
//! * `document`: what they all share: [`ImportError`], JSON-pointer escaping,
//!   the operation keys of a path item.

mod convert;
pub mod diff;
mod document;
pub mod gateway;
pub mod import;
pub mod locate;
pub mod mock;
pub mod model;
mod refs;
pub mod sample;

pub use diff::{
    Change, ChangeKind, ChangeReport, CompatibilityPolicy, Side, Subject, SubjectKind, compare, compare_with,
};
pub use document::{ImportError, pointer_segment};
pub use gateway::{CredentialsIn, Gateway, for_gateway};
pub use import::{MAX_NESTING, MAX_SPEC_BYTES, Operation, ParsedSpec, SpecFormat, line_of_pointer, parse, reparse};
pub use mock::{ContentMock, MockSource, OperationMock, ResponseMock, mock_operations};
pub use model::ApiModel;
pub use sample::{path_examples, request_bodies};
