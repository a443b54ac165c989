//! Mapping-rule path patterns: `/pets/{id}/photos`, optionally anchored with a trailing `$`.
//!
//! OpenAPI path templates are patterns as written: a segment may mix text and parameters
//! (`/files/{name}.{ext}`, Google's `/v1/{name}:cancel`), and an anchored pattern may end with
//! a `/` (`/users/$` matches `/users/` only, as Django-style APIs route it).
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
    /// Must equal the request segment byte for byte (empty only as an anchored pattern's
    /// last segment: a trailing `/`).
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
    /// Text and `{params}` in one segment (`{name}.{ext}`, `{name}:cancel`): the text must
    /// appear as written, each parameter stands for a non-empty run of the rest.
    Mixed(Vec<Part>),
}

/// A piece of a [`Segment::Mixed`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Literal(String),
    Param(String),
}

/// Parameters one mixed segment may hold: matching tries the places each could end.
const MAX_MIXED_PARAMS: usize = 4;

/// A parsed path pattern. Serialised as its source text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    source: String,
    segments: Vec<Segment>,
    anchored: bool,
}

/// A pattern's rank among patterns that match the same path; see [`Pattern::specificity`].
/// Compares lexicographically: per segment 3 (literal), 2 (text and parameters) or 1
/// (parameter), then 0 if anchored,
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
            let mut pieces = body.split('/').peekable();
            while let Some(piece) = pieces.next() {
                // A trailing `/` is a last, empty segment, when the pattern is anchored: the
                // path must end with the `/` (unanchored, it would match little but itself).
                if piece.is_empty() && anchored && pieces.peek().is_none() && !segments.is_empty() {
                    segments.push(Segment::Literal(String::new()));
                    break;
                }
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
                Segment::Mixed(parts) => mixed_matches(parts, piece),
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
            Segment::Literal(_) => 3u8,
            Segment::Mixed(_) => 2u8,
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
        self.segments.iter().flat_map(|segment| {
            let (one, mixed): (Option<&str>, &[Part]) = match segment {
                Segment::Param(name) => (Some(name.as_str()), &[]),
                Segment::Mixed(parts) => (None, parts.as_slice()),
                Segment::Literal(_) => (None, &[]),
            };
            let mixed = mixed.iter().filter_map(|part| match part {
                Part::Param(name) => Some(name.as_str()),
                Part::Literal(_) => None,
            });
            one.into_iter().chain(mixed)
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
        return fail(offset, "empty segment (double `/`, or a trailing `/` without `$`)");
    }
    let mut parts = Vec::new();
    let mut at = 0;
    while at < piece.len() {
        let rest = &piece[at..];
        if let Some(inner) = rest.strip_prefix('{') {
            let Some(close) = inner.find('}') else {
                return fail(offset + at, "a parameter `{` is not closed by `}`");
            };
            let name = &inner[..close];
            if name.is_empty() {
                return fail(offset + at + 1, "empty parameter name");
            }
            if let Some(bad) = name.find(|c: char| matches!(c, '{' | '$') || c.is_whitespace() || c.is_control()) {
                return fail(
                    offset + at + 1 + bad,
                    "a parameter name has no `{`, `$`, whitespace or control character",
                );
            }
            parts.push(Part::Param(name.to_owned()));
            at += close + 2;
            continue;
        }
        let end = rest.find('{').unwrap_or(rest.len());
        let text = &rest[..end];
        // A `$` inside is text (OData's `/$metadata`); only the pattern's last `$` anchors it.
        if let Some(bad) = text.find(|c: char| matches!(c, '}' | '?' | '#') || c.is_whitespace() || c.is_control()) {
            let message = match text.as_bytes()[bad] {
                b'}' => "a `}` closes no parameter",
                b'?' | b'#' => "a pattern matches paths only, not query strings or fragments",
                _ => "whitespace or control character",
            };
            return fail(offset + at + bad, message);
        }
        parts.push(Part::Literal(text.to_owned()));
        at += end;
    }
    match parts.as_slice() {
        [Part::Literal(text)] => Ok(Segment::Literal(text.clone())),
        [Part::Param(name)] => Ok(Segment::Param(name.clone())),
        _ if parts.iter().filter(|part| matches!(part, Part::Param(_))).count() > MAX_MIXED_PARAMS => {
            fail(offset, "at most 4 parameters in one segment")
        }
        _ => Ok(Segment::Mixed(parts)),
    }
}

/// Whether a raw segment matches a mixed segment's parts, compared percent-decoded as literal
/// segments are. Decodes into a buffer on the stack; a longer segment with escapes is decoded
/// on the heap (mixed segments are rare, long escaped segments rarer).
fn mixed_matches(parts: &[Part], piece: &str) -> bool {
    if piece.is_empty() || is_dot_segment(piece) {
        return false;
    }
    if !piece.as_bytes().contains(&b'%') {
        return parts_match(parts, piece.as_bytes());
    }
    let mut stack = [0u8; 256];
    let mut length = 0;
    let mut heap = Vec::new();
    for byte in Decoded::new(piece) {
        if length < stack.len() {
            stack[length] = byte;
            length += 1;
        } else {
            if heap.is_empty() {
                heap.extend_from_slice(&stack);
            }
            heap.push(byte);
        }
    }
    if heap.is_empty() { parts_match(parts, &stack[..length]) } else { parts_match(parts, &heap) }
}

/// Whether `bytes` is the parts in order, each parameter at least one byte long. The request
/// path is the client's, so no backtracking: a leading text must be a prefix and a trailing one
/// a suffix, and each text between parameters is taken where it first fits, which is always
/// enough, since the parameters after it can take any bytes (as a glob's `*` matches).
fn parts_match(parts: &[Part], bytes: &[u8]) -> bool {
    let (mut parts, mut bytes) = (parts, bytes);
    if let Some((Part::Literal(text), rest)) = parts.split_first() {
        let Some(after) = bytes.strip_prefix(text.as_bytes()) else { return false };
        (parts, bytes) = (rest, after);
    }
    if let Some((Part::Literal(text), rest)) = parts.split_last() {
        let Some(before) = bytes.strip_suffix(text.as_bytes()) else { return false };
        (parts, bytes) = (rest, before);
    }
    let (mut at, mut gap) = (0, 0);
    for part in parts {
        match part {
            Part::Param(_) => gap += 1,
            Part::Literal(text) => {
                let from = at + gap;
                let Some(found) = bytes.get(from..).and_then(|rest| find(rest, text.as_bytes())) else {
                    return false;
                };
                (at, gap) = (from + found + text.len(), 0);
            }
        }
    }
    bytes.len() >= at + gap
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
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
    fn openapi_templates_are_patterns_as_written() {
        let file = p("/files/{name}.{ext}$");
        assert_eq!(
            file.segments()[1],
            Segment::Mixed(vec![Part::Param("name".into()), Part::Literal(".".into()), Part::Param("ext".into())])
        );
        assert_eq!(file.params().collect::<Vec<_>>(), ["name", "ext"]);
        assert!(file.matches("/files/report.pdf"));
        assert!(file.matches("/files/a.tar.gz"));
        assert!(file.matches("/files/re%70ort.pdf"));
        assert!(file.matches("/files/report%2Epdf"), "compared decoded, as the upstream reads it");
        for no in ["/files/report", "/files/.pdf", "/files/report.", "/files/..", "/files/a.b/c"] {
            assert!(!file.matches(no), "{no}");
        }
        let cancel = p("/v1/{name}:cancel$");
        assert!(cancel.matches("/v1/op7:cancel"));
        assert!(!cancel.matches("/v1/op7"));
        assert!(!cancel.matches("/v1/:cancel"));
        // The more specific of two matching rules: text beats a bare parameter.
        assert!(cancel.specificity() > p("/v1/{name}$").specificity());
        assert!(p("/v1/list$").specificity() > cancel.specificity());
        let dotted = p("/pets/{pet.id}$");
        assert_eq!(dotted.params().collect::<Vec<_>>(), ["pet.id"]);
        assert!(dotted.matches("/pets/7"));
        let long = format!("/files/{}.pdf", "%61".repeat(300));
        assert!(file.matches(&long), "a long escaped segment is decoded too");
        // Texts between parameters: the first place each fits is enough, and a client's long
        // segment costs a scan, not a search through every way to split it.
        let many = p("/x/{a}-{b}-{c}-{d}.json$");
        assert!(many.matches("/x/1-2-3-4.json") && many.matches("/x/1-2-3-4-5.json"));
        assert!(!many.matches("/x/1-2-3.json") && !many.matches("/x/1--2-3.json"));
        assert!(many.matches("/x/1--2-3-4.json"), "a parameter may hold the text itself");
        assert!(!many.matches(&format!("/x/{}", "-".repeat(8_000))));
        let ends = p("/a/x{id}x$");
        assert!(ends.matches("/a/xyx") && !ends.matches("/a/xx") && !ends.matches("/a/x"));
        let repeated = p("/a/{x}.{y}.{z}$");
        assert!(repeated.matches("/a/a.b.c.d") && !repeated.matches("/a/a.b"));

        // As written in real documents: OData's `$`, two parameters side by side.
        let odata = p("/users/$count$");
        assert!(odata.matches("/users/$count") && odata.matches("/users/%24count"));
        assert!(!odata.matches("/users/count"));
        assert!(p("/$/GetAadMetadata").matches("/$/GetAadMetadata/x"));
        let side_by_side = p("/blog/{page}{extension}$");
        assert!(side_by_side.matches("/blog/ab"));
        assert!(!side_by_side.matches("/blog/a"), "each parameter takes one character at least");

        let slash = p("/users/$");
        assert_eq!(slash.segments(), [Segment::Literal("users".into()), Segment::Literal(String::new())]);
        assert!(slash.matches("/users/"));
        assert!(slash.matches("/users/?a=b"));
        assert!(!slash.matches("/users"));
        assert!(!slash.matches("/users/7"));
        assert!(!slash.matches("/users//"));
        assert!(p("/users/$").specificity() > p("/users$").specificity());
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
        assert_eq!(err("/pets/"), 6, "a trailing `/` needs the anchor");
        assert_eq!(err("//$"), 1);
        assert_eq!(err("/pets//$"), 6);
        assert_eq!(err("/pets/{id"), 6);
        assert_eq!(err("/pets/{}"), 7);
        assert_eq!(err("/pets/{i d}"), 8);
        assert_eq!(err("/pets/a}"), 7);
        assert_eq!(err("/pets/{a}.{b}.{c}.{d}.{e}"), 6);
        assert_eq!(err("/pets?x={y}"), 5);
        assert_eq!(err("/a b"), 2);
        assert_eq!(
            Pattern::parse("/pets/{id").expect_err("unterminated").to_string(),
            "at byte 6: a parameter `{` is not closed by `}`"
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
