//! Import, model and breaking-change tests over a corpus of specs
//! (openapi/tests/specs), generated large and hostile documents, and fuzzing.

mod corpus;
mod diff;
mod fuzz;
mod hostile;
mod mocks;
mod releases;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use tollgate_openapi::import;
use tollgate_openapi::{ImportError, ParsedSpec};

pub fn specs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/specs")
}

pub fn read_spec(relative: &str) -> String {
    let path = specs_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `import::parse`, with a panic turned into a failure message naming `what`.
pub fn parse_guarded(what: &str, source: &str) -> Result<Result<ParsedSpec, ImportError>, String> {
    catch_unwind(AssertUnwindSafe(|| import::parse(source))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("{what}: import::parse panicked: {message}")
    })
}
