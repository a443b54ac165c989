//! What every stage of reading shares: the error located by JSON pointer,
//! JSON-pointer escaping (RFC 6901), and the keys of a path item that are
//! HTTP operations. A leaf: it imports nothing of this crate.

/// The keys of a path item that are operations, in the order operations
/// are listed.
pub(crate) const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A spec that could not be imported, located by JSON pointer and, where
/// the parser knows it, by line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", if pointer.is_empty() { "/" } else { pointer }, line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct ImportError {
    pub pointer: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ImportError {
    pub(crate) fn at(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        ImportError { pointer: pointer.into(), line: None, message: message.into() }
    }
}

/// Escapes a key for use in a JSON pointer.
pub fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The key a pointer segment stands for.
pub(crate) fn unescape_segment(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// The JSON pointer of a path of keys (`["a", "b/c"]` → `/a/b~1c`).
pub(crate) fn pointer_of(segments: &[String]) -> String {
    segments.iter().map(|s| format!("/{}", pointer_segment(s))).collect()
}
