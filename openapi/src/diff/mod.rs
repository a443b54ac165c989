//! Breaking-change detection between two versions of an API.
//!
//! `compare(old, new)` pairs operations and compares them by shape, after
//! `$ref` resolution: a wrapper that only adds `null` is its element plus
//! "may be null", variants pair up by equal shape before name, and a
//! renamed component of the same shape is no change (`shape`). Whether a
//! change breaks depends on which way data flows:
//!
//! * **Requests** (parameters and request bodies) are written by clients, so
//!   the new version must accept everything the old one accepted.
//! * **Responses** are read by clients, so the new version must only send
//!   what the old one could; a new response enum value is breaking unless
//!   the API's `CompatibilityPolicy` allows additive enums.
//! * **Operations**: removing one is breaking; adding or deprecating one is not.
//!
//! The full table, with the reasons, is docs/CHANGE-REPORT.md.
//!
//! Each distinct change is reported once, where it happens (a component, or
//! an operation's own part), with the operations it affects (`walk`), in a
//! `ChangeReport` ordered breaking first (`report`).

mod report;
mod shape;
mod walk;

pub use report::{Change, ChangeKind, ChangeReport, CompatibilityPolicy, REPORT_FORMAT, Side, Subject, SubjectKind};
pub use walk::{MAX_DIFF_WORK, compare, compare_with};
