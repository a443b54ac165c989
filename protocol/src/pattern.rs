//! Mapping-rule path patterns: `/pets/{id}/photos`, optionally anchored with a trailing `$`.
//!
//! Patterns are relative to the API's base path (the agent strips the base path first) and
//! match whole segments, which is stricter than 3scale's string prefixes: `/pets` matches
//! `/pets`, `/pets/` and `/pets/7`, but not `/petshop`. Without `$` a pattern matches any path
//! that continues below it; with `$` the path must end where the pattern ends. A `{param}`
//! matches exactly one non-empty segment that is not a dot-segment (`.` or `..`, in any
//! percent-encoding, with or without `;parameters`). Literal segments compare percent-decoded
//! bytes (`%69tems` is `items`), so an encoding variant of a path matches the same rules as
//! the path itself, as the upstream will read it. Matching never allocates, because it runs
//! for every rule on every request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One `/`-separated piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Must equal the request segment byte for byte.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
}

/// A parsed path pattern. Serialised as its source text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    source: String,
    segments: Vec<Segment>,
    anchored: bool,
}

/// A pattern's rank among patterns that match the same path; see [`Pattern::specificity`].
/// Compares lexicographically: per segment 2 (literal) or 1 (parameter), then 0 if anchored,
/// so a longer key with an equal prefix (more segments, or the anchor) is greater.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity(Vec<u8>);

/// Why a pattern does not parse, with the byte offset into the pattern text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {position}: {message}")]
pub struct PatternError {
    pub position: usize,
    pub message: &'static str,
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Pattern, PatternError> {
        let fail = |position, message| Err(PatternError { position, message });
        let Some(body) = source.strip_prefix('/') else {
            return fail(0, "a pattern starts with `/`");
        };
        let (body, anchored) = match body.strip_suffix('$') {
            Some(body) => (body, true),
            None => (body, false),
        };
        let mut segments = Vec::new();
        // `/` alone (or `/$`) has no segments: it matches every path (or only the root).
        if !body.is_empty() {
            let mut offset = 1;
            for piece in body.split('/') {
                segments.push(parse_segment(piece, offset)?);
                offset += piece.len() + 1;
            }
        }
        Ok(Pattern { source: source.to_owned(), segments, anchored })
    }

    /// Whether `path` (a request path relative to the API's base path; a query string is
    /// ignored) matches. Allocation-free.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.as_bytes().iter().position(|&b| b == b'?').map_or(path, |query| &path[..query]);
        let path = match path.strip_prefix('/') {
            Some(rest) => rest,
            None if path.is_empty() => path,
            None => return false,
        };
        // The root path has no segments rather than one empty segment.
        let mut pieces = Pieces { rest: (!path.is_empty()).then_some(path) };
        for segment in &self.segments {
            let Some(piece) = pieces.next() else {
                return false;
            };
            let ok = match segment {
                Segment::Literal(literal) => same_decoded(literal, piece),
                Segment::Param(_) => !piece.is_empty() && !is_dot_segment(piece),
            };
            if !ok {
                return false;
            }
        }
        !self.anchored || pieces.next().is_none()
    }

    /// How specific the pattern is, for choosing among imported rules that match one path:
    /// greater is more specific. Segment by segment from the left, a literal beats a
    /// parameter; a pattern that goes on (more segments) beats one that stops; an anchored
    /// pattern beats an unanchored one. `/pets/findByStatus` beats `/pets/{id}`, which beats
    /// `/pets`; `/a/{x}` beats `/{x}/b`. A total order, so sorting by it is consistent.
    pub fn specificity(&self) -> Specificity {
        let mut key = Vec::with_capacity(self.segments.len() + 1);
        key.extend(self.segments.iter().map(|segment| match segment {
            Segment::Literal(_) => 2u8,
            Segment::Param(_) => 1u8,
        }));
        if self.anchored {
            key.push(0);
        }
        Specificity(key)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the pattern ends with `$`.
    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// Names of the `{params}`, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

/// Whether a raw (percent-encoded) path segment is a dot-segment: `.` or `..` once decoded
/// (`%2e`, `%2E%2e`, `.%2e` …), also with `;parameters` after it (`..;x`), which some servers
/// strip before resolving dot-segments.
pub fn is_dot_segment(raw: &str) -> bool {
    let mut dots = 0;
    for byte in Decoded::new(raw) {
        match byte {
            b'.' if dots < 2 => dots += 1,
            b';' => break,
            _ => return false,
        }
    }
    dots > 0
}

/// The `/`-separated pieces of a path, found with a byte loop: `str::split` with its char
/// searcher cost several times more a piece, and this runs for every rule on every request.
struct Pieces<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.as_bytes().iter().position(|&b| b == b'/') {
            Some(slash) => {
                self.rest = Some(&rest[slash + 1..]);
                Some(&rest[..slash])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Whether two raw segments are the same once percent-decoded.
pub(crate) fn same_decoded(a: &str, b: &str) -> bool {
    if !a.as_bytes().contains(&b'%') && !b.as_bytes().contains(&b'%') {
        return a == b;
    }
    Decoded::new(a).eq(Decoded::new(b))
}

/// The bytes of a raw segment with `%XX` escapes decoded (a `%` not followed by two hex digits
/// stands for itself), without allocating.
struct Decoded<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoded<'a> {
    fn new(raw: &'a str) -> Decoded<'a> {
        Decoded { bytes: raw.as_bytes() }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        if first == b'%'
            && let [high, low, after @ ..] = rest
            && let (Some(high), Some(low)) = (hex(*high), hex(*low))
        {
            self.bytes = after;
            return Some(high << 4 | low);
        }
        self.bytes = rest;
        Some(first)
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn parse_segment(piece: &str, offset: usize) -> Result<Segment, PatternError> {
    let fail = |position, message| Err(PatternError { position, message });
    if piece.is_empty() {
        return fail(offset, "empty segment (double or trailing `/`)");
    }
    if let Some(inner) = piece.strip_prefix('{') {
        let Some(name) = inner.strip_suffix('}') else {
            return fail(offset, "a parameter is `{name}` and spans the whole segment");
        };
        if name.is_empty() {
            return fail(offset + 1, "empty parameter name");
        }
        if let Some(bad) = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
            return fail(offset + 1 + bad, "a parameter name uses only A-Z a-z 0-9 _ -");
        }
        return Ok(Segment::Param(name.to_owned()));
    }
    if let Some(bad) =
        piece.find(|c: char| matches!(c, '{' | '}' | '$' | '?' | '#') || c.is_whitespace() || c.is_control())
    {
        let message = match piece.as_bytes()[bad] {
            b'{' | b'}' => "a parameter is `{name}` and spans the whole segment",
            b'$' => "`$` may only end the pattern",
            b'?' | b'#' => "a pattern matches paths only, not query strings or fragments",
            _ => "whitespace or control character",
        };
        return fail(offset + bad, message);
    }
    Ok(Segment::Literal(piece.to_owned()))
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

impl TryFrom<String> for Pattern {
    type Error = PatternError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Pattern::parse(&s)
    }
}

impl From<Pattern> for String {
    fn from(pattern: Pattern) -> String {
        pattern.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn parses_segments() {
        let pattern = p("/pets/{id}/photos$");
        assert_eq!(
            pattern.segments(),
            [Segment::Literal("pets".into()), Segment::Param("id".into()), Segment::Literal("photos".into()),]
        );
        assert!(pattern.is_anchored());
        assert_eq!(pattern.params().collect::<Vec<_>>(), ["id"]);
        assert_eq!(pattern.as_str(), "/pets/{id}/photos$");
    }

    #[test]
    fn prefix_matching_is_by_whole_segment() {
        let pets = p("/pets");
        assert!(pets.matches("/pets"));
        assert!(pets.matches("/pets/"));
        assert!(pets.matches("/pets/7/photos"));
        assert!(pets.matches("/pets?limit=3"));
        assert!(!pets.matches("/petshop"));
        assert!(!pets.matches("/"));
        assert!(!pets.matches("pets"));
    }

    #[test]
    fn anchored_patterns_match_exactly() {
        let one = p("/pets/{id}$");
        assert!(one.matches("/pets/7"));
        assert!(one.matches("/pets/7?x=1"));
        assert!(one.matches("/pets/7?next=/a/b"), "a query's slashes are not segments");
        assert!(!one.matches("/pets/7/x?y"));
        assert!(!one.matches("/pets/7/"));
        assert!(!one.matches("/pets/7/photos"));
        assert!(!one.matches("/pets/"), "a parameter never matches an empty segment");
        assert!(!one.matches("/pets"));
    }

    #[test]
    fn root_patterns() {
        let all = p("/");
        assert!(all.matches("/"));
        assert!(all.matches(""));
        assert!(all.matches("/anything/at/all"));
        let root = p("/$");
        assert!(root.matches("/"));
        assert!(root.matches(""));
        assert!(!root.matches("/x"));
        assert!(!root.matches("//"));
    }

    #[test]
    fn params_match_any_one_segment_but_a_dot_segment() {
        let pattern = p("/users/{user_id}/keys/{key-id}");
        assert!(pattern.matches("/users/ann%20b/keys/1"));
        assert!(pattern.matches("/users/.../keys/1"), "three dots are a name");
        assert!(pattern.matches("/users/.a/keys/1"));
        assert!(!pattern.matches("/users//keys/1"));
        for dots in [".", "..", "%2e", "%2E%2e", ".%2e", "%2e.", "..;", "..;x=1", "%2e%2e;"] {
            assert!(!pattern.matches(&format!("/users/{dots}/keys/1")), "{dots}");
        }
    }

    #[test]
    fn literals_match_their_encoding_variants() {
        let pattern = p("/items/{id}$");
        assert!(pattern.matches("/%69tems/7"));
        assert!(pattern.matches("/%69%74%65%6D%73/7"));
        assert!(!pattern.matches("/%69tem/7"));
        assert!(!pattern.matches("/ITEMS/7"), "case matters");
        let spaced = p("/a%20b");
        assert!(spaced.matches("/a%20b"));
        assert!(!spaced.matches("/a%2"));
        let percent = p("/100%");
        assert!(percent.matches("/100%25"), "a lone % stands for itself");
    }

    #[test]
    fn specificity_puts_concrete_paths_first() {
        let order = [
            "/pet/findByStatus$",
            "/pet/{petId}/uploadImage$",
            "/pet/{petId}$",
            "/pet/{petId}",
            "/pet$",
            "/pet",
            "/{x}/b",
            "/",
        ];
        let mut shuffled: Vec<Pattern> = order.iter().rev().map(|s| p(s)).collect();
        shuffled.sort_by_key(|pattern| std::cmp::Reverse(pattern.specificity()));
        let sorted: Vec<&str> = shuffled.iter().map(Pattern::as_str).collect();
        assert_eq!(sorted, order);
        assert!(p("/a/{x}").specificity() > p("/{x}/b").specificity(), "the leftmost literal wins");
    }

    #[test]
    fn dot_segments() {
        for yes in [".", "..", "%2e", "%2E", "%2e%2E", ".%2e", "..;", ".;a=b"] {
            assert!(is_dot_segment(yes), "{yes}");
        }
        for no in ["", "...", ".a", "a.", "%2e%2e%2e", ";..", "%2", "%2e%2", "%252e"] {
            assert!(!is_dot_segment(no), "{no}");
        }
    }

    #[test]
    fn errors_are_located() {
        let err = |s: &str| Pattern::parse(s).expect_err(s).position;
        assert_eq!(err("pets"), 0);
        assert_eq!(err(""), 0);
        assert_eq!(err("/pets//x"), 6);
        assert_eq!(err("/pets/"), 6);
        assert_eq!(err("/pets/{id"), 6);
        assert_eq!(err("/pets/{}"), 7);
        assert_eq!(err("/pets/{i d}"), 8);
        assert_eq!(err("/pets/x{id}"), 7);
        assert_eq!(err("/pets/$/x"), 6);
        assert_eq!(err("/pets?x={y}"), 5);
        assert_eq!(err("/a b"), 2);
        assert_eq!(
            Pattern::parse("/pets/{id").expect_err("unterminated").to_string(),
            "at byte 6: a parameter is `{name}` and spans the whole segment"
        );
    }

    #[test]
    fn serde_as_string() {
        let pattern = p("/pets/{id}$");
        let json = serde_json::to_string(&pattern).expect("serialise");
        assert_eq!(json, r#""/pets/{id}$""#);
        assert_eq!(serde_json::from_str::<Pattern>(&json).expect("parse"), pattern);
        assert!(serde_json::from_str::<Pattern>(r#""nope""#).is_err());
    }
}
