//! The path policy: which request paths the agent accepts at all, checked before routing.
//!
//! Mapping rules are the allow-list, so the path a rule matched must be the path the
//! upstream acts on. Upstreams normalise paths in ways the agent does not (nginx and most
//! frameworks decode `%2e%2e` and resolve `..`; Tomcat drops `;parameters` first; IIS reads
//! `\` as `/` and may decode twice; Unicode-normalising stacks read `．` as `.`). Rather than
//! guess which of them sits behind an API, the agent refuses (400 `invalid_path`) every path
//! whose meaning such a step could change, and forwards the others byte for byte. Refused, in
//! any segment:
//!
//! * a dot-segment: only dots once decoded (`.`, `..`, `%2e%2e`, `...`), also before a
//!   `;parameter` (`..;x`) or written with look-alikes that fold to dots (`．．`, `‥`);
//! * an encoded separator: `%2F`, `\` or `%5C`, and their look-alikes (`／`, `＼`), or an encoded
//!   `?` or `#` (`%3F`, `%23`), which an upstream that decodes the path and parses it again
//!   reads as the start of a query or a fragment (Apache's `mod_rewrite`, CVE-2023-25690);
//! * a control character (`%00`–`%1F`, `%7F`, U+0080–U+009F);
//! * malformed percent-encoding (`%zz`, a `%` at the end) and bytes that are not UTF-8 once
//!   decoded, which covers overlong forms such as `%c0%ae`;
//! * any of the above after decoding twice (`%252e%252e`), for upstreams that decode twice;
//! * an empty segment (`//`) other than a trailing slash, also one that is empty once its
//!   `;parameters` and spaces are dropped (`/items/;x`, which Tomcat reads as `/items/`).
//!
//! Paths of plain characters take a fast path that looks at each byte once and allocates
//! nothing; only segments with `%`, `.`, `;` or non-ASCII bytes are examined further.

use std::borrow::Cow;

/// What is wrong with a path, for the 400 answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathProblem {
    /// Not `/…` (e.g. `*`).
    NotAbsolute,
    EmptySegment,
    DotSegment,
    EncodedSeparator,
    ControlCharacter,
    BadEncoding,
    /// `;parameters` that Tomcat, Spring and Jetty drop and most other servers keep, where
    /// the API's rules match the path differently with and without them.
    AmbiguousParameters,
}

/// A refused path: the problem and the 1-based number of the segment it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvalidPath {
    pub problem: PathProblem,
    pub segment: usize,
}

impl InvalidPath {
    /// The `message` of the 400 answer. Never echoes the path (it may carry anything).
    pub fn message(self) -> String {
        let what = match self.problem {
            PathProblem::NotAbsolute => return "The request path must start with `/`.".to_owned(),
            PathProblem::EmptySegment => "is empty (`//`, or only `;parameters` or spaces)",
            PathProblem::DotSegment => "is a dot-segment (`.` or `..`, in any encoding)",
            PathProblem::EncodedSeparator => "contains an encoded `/`, `?` or `#`, or a `\\`",
            PathProblem::ControlCharacter => "contains a control character",
            PathProblem::BadEncoding => "has malformed percent-encoding or is not UTF-8 once decoded",
            PathProblem::AmbiguousParameters => {
                "has `;parameters`, which some servers drop and others keep, and this API's mapping rules match the path differently with and without them"
            }
        };
        format!("Segment {} of the request path {what}; such paths are refused.", self.segment)
    }
}

/// Whether `path` (below the API's base path, with a raw `;` in it) is counted otherwise once
/// every segment's `;parameters` are dropped, as Tomcat, Spring and Jetty drop them before
/// routing: then what the upstream runs depends on its server, and the call is refused. The
/// 1-based number of the first segment with parameters, when so.
pub(crate) fn ambiguous_parameters(
    path: &str,
    counted: (Option<u32>, &[(u32, u64)]),
    count: impl FnOnce(&str) -> (Option<u32>, Vec<(u32, u64)>),
) -> Option<usize> {
    let mut dropped = String::with_capacity(path.len());
    let mut first = None;
    for (index, segment) in path.split('/').enumerate() {
        if index > 0 {
            dropped.push('/');
        }
        match segment.split_once(';') {
            Some((name, _)) => {
                first.get_or_insert(index);
                dropped.push_str(name);
            }
            None => dropped.push_str(segment),
        }
    }
    let first = first?;
    let (operation, mut touched) = count(&dropped);
    let mut before = counted.1.to_vec();
    before.sort_unstable();
    touched.sort_unstable();
    // Segments are numbered from 1 after the leading `/`, as `check` numbers them.
    (operation != counted.0 || touched != before).then_some(first)
}

/// Checks `path` (without the query) against the policy.
pub(crate) fn check(path: &str) -> Result<(), InvalidPath> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(InvalidPath { problem: PathProblem::NotAbsolute, segment: 0 });
    };
    let mut segments = rest.split('/').enumerate().peekable();
    while let Some((index, segment)) = segments.next() {
        let fail = |problem| Err(InvalidPath { problem, segment: index + 1 });
        if segment.is_empty() {
            // `/` alone and a trailing slash are fine.
            if segments.peek().is_some() {
                return fail(PathProblem::EmptySegment);
            }
            continue;
        }
        if segment.bytes().all(is_plain) {
            continue;
        }
        if let Err(problem) = check_segment(segment) {
            return fail(problem);
        }
    }
    Ok(())
}

/// Bytes that need no further look: unreserved and sub-delimiter characters but `.` and `;`
/// (dot-segments, path parameters) and `%` (encodings).
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'-' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=')
        || matches!(byte, b':' | b'@')
}

fn check_segment(raw: &str) -> Result<(), PathProblem> {
    let decoded = decode(raw)?;
    check_decoded(&decoded)?;
    // An upstream that decodes twice reads what the first decoding produced as encoded.
    if decoded.contains('%')
        && let Ok(twice) = decode(&decoded)
    {
        check_decoded(&twice)?;
    }
    Ok(())
}

fn check_decoded(segment: &str) -> Result<(), PathProblem> {
    check_text(segment)?;
    // What a Unicode-normalising upstream reads: look-alikes of separators, dots, `;`, `%`
    // and spaces (U+FE30 is `..`, U+2100 is `a/c`) as their ASCII.
    if !segment.is_ascii() && segment.chars().any(|c| nfkc_ascii(c).is_some()) {
        let normalised: String = segment.chars().fold(String::with_capacity(segment.len()), |mut out, c| {
            match nfkc_ascii(c) {
                Some(ascii) => out.push_str(ascii),
                None => out.push(c),
            }
            out
        });
        check_text(&normalised)?;
        if normalised.contains('%')
            && let Ok(decoded) = decode(&normalised)
        {
            check_text(&decoded)?;
        }
    }
    Ok(())
}

/// The ASCII that Unicode compatibility normalisation (NFKC) makes of `c`, for the characters
/// whose normal form holds a dot, a separator, `?`, `#`, `%`, `;` or a space.
fn nfkc_ascii(c: char) -> Option<&'static str> {
    NFKC_ASCII.binary_search_by_key(&c, |&(from, _)| from).ok().map(|index| NFKC_ASCII[index].1)
}

/// Every code point whose NFKC form (Unicode 14, Python's `unicodedata`) is ASCII and holds
/// one of `. / \ ? # % ;` or a space, sorted.
static NFKC_ASCII: [(char, &str); 67] = [
    ('\u{00A0}', " "),
    ('\u{037E}', ";"),
    ('\u{2000}', " "),
    ('\u{2001}', " "),
    ('\u{2002}', " "),
    ('\u{2003}', " "),
    ('\u{2004}', " "),
    ('\u{2005}', " "),
    ('\u{2006}', " "),
    ('\u{2007}', " "),
    ('\u{2008}', " "),
    ('\u{2009}', " "),
    ('\u{200A}', " "),
    ('\u{2024}', "."),
    ('\u{2025}', ".."),
    ('\u{2026}', "..."),
    ('\u{202F}', " "),
    ('\u{2047}', "??"),
    ('\u{2048}', "?!"),
    ('\u{2049}', "!?"),
    ('\u{205F}', " "),
    ('\u{2100}', "a/c"),
    ('\u{2101}', "a/s"),
    ('\u{2105}', "c/o"),
    ('\u{2106}', "c/u"),
    ('\u{2488}', "1."),
    ('\u{2489}', "2."),
    ('\u{248A}', "3."),
    ('\u{248B}', "4."),
    ('\u{248C}', "5."),
    ('\u{248D}', "6."),
    ('\u{248E}', "7."),
    ('\u{248F}', "8."),
    ('\u{2490}', "9."),
    ('\u{2491}', "10."),
    ('\u{2492}', "11."),
    ('\u{2493}', "12."),
    ('\u{2494}', "13."),
    ('\u{2495}', "14."),
    ('\u{2496}', "15."),
    ('\u{2497}', "16."),
    ('\u{2498}', "17."),
    ('\u{2499}', "18."),
    ('\u{249A}', "19."),
    ('\u{249B}', "20."),
    ('\u{3000}', " "),
    ('\u{33C2}', "a.m."),
    ('\u{33C7}', "Co."),
    ('\u{33D8}', "p.m."),
    ('\u{FE14}', ";"),
    ('\u{FE16}', "?"),
    ('\u{FE19}', "..."),
    ('\u{FE30}', ".."),
    ('\u{FE52}', "."),
    ('\u{FE54}', ";"),
    ('\u{FE56}', "?"),
    ('\u{FE5F}', "#"),
    ('\u{FE68}', "\\"),
    ('\u{FE6A}', "%"),
    ('\u{FF03}', "#"),
    ('\u{FF05}', "%"),
    ('\u{FF0E}', "."),
    ('\u{FF0F}', "/"),
    ('\u{FF1B}', ";"),
    ('\u{FF1F}', "?"),
    ('\u{FF3C}', "\\"),
    ('\u{1F100}', "0."),
];

fn check_text(segment: &str) -> Result<(), PathProblem> {
    for c in segment.chars() {
        match c {
            '/' | '\\' | '?' | '#' | '\u{FF0F}' | '\u{FF3C}' | '\u{FE68}' | '\u{2215}' | '\u{2044}' => {
                return Err(PathProblem::EncodedSeparator);
            }
            c if c.is_control() => return Err(PathProblem::ControlCharacter),
            _ => {}
        }
    }
    // Servers that drop `;parameters` (and trim spaces) see only the name before them.
    let name = segment.split(';').next().unwrap_or_default().trim_matches(|c: char| c.is_ascii_whitespace());
    if name.is_empty() {
        return Err(PathProblem::EmptySegment);
    }
    if name.chars().all(is_dot_like) {
        return Err(PathProblem::DotSegment);
    }
    Ok(())
}

/// `.` and the characters Unicode compatibility normalisation (NFKC) turns into dots.
fn is_dot_like(c: char) -> bool {
    matches!(c, '.' | '\u{2024}' | '\u{2025}' | '\u{2026}' | '\u{FE52}' | '\u{FF0E}')
}

/// Percent-decodes a segment; malformed escapes and non-UTF-8 results are refused.
fn decode(raw: &str) -> Result<Cow<'_, str>, PathProblem> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let high = bytes.get(i + 1).copied().and_then(hex);
            let low = bytes.get(i + 2).copied().and_then(hex);
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathProblem::BadEncoding);
            };
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| PathProblem::BadEncoding)
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &str) -> Option<(PathProblem, usize)> {
        check(path).err().map(|e| (e.problem, e.segment))
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/items",
            "/items/",
            "/items/7",
            "/a.b/c.json",
            "/files/.profile",
            "/x/a%20b",
            "/x/caf%C3%A9",
            "/x/café",
            "/x;v=1/y",
            "/search/100%25",
            "/items/%69d",
            "/notes/step\u{2488}",
            "/x/a\u{00A0}b",
            "/x/\u{FF05}zz",
        ] {
            assert_eq!(problem(path), None, "{path}");
        }
    }

    #[test]
    fn every_variant_of_the_listed_problems_is_refused() {
        use PathProblem::*;
        let cases = [
            ("*", (NotAbsolute, 0)),
            ("items", (NotAbsolute, 0)),
            ("//x", (EmptySegment, 1)),
            ("/a//b", (EmptySegment, 2)),
            ("/items/;", (EmptySegment, 2)),
            ("/items/;x=1/y", (EmptySegment, 2)),
            ("/items/%20", (EmptySegment, 2)),
            ("/a/../b", (DotSegment, 2)),
            ("/a/.", (DotSegment, 2)),
            ("/a/./", (DotSegment, 2)),
            ("/a/%2e%2e/b", (DotSegment, 2)),
            ("/a/%2E./b", (DotSegment, 2)),
            ("/a/..;/b", (DotSegment, 2)),
            ("/a/..;jsessionid=1/b", (DotSegment, 2)),
            ("/a/.../b", (DotSegment, 2)),
            ("/a/%20../b", (DotSegment, 2)),
            ("/a/\u{FF0E}\u{FF0E}/b", (DotSegment, 2)),
            ("/a/%EF%BC%8E%EF%BC%8E/b", (DotSegment, 2)),
            ("/a/\u{2025}/b", (DotSegment, 2)),
            // Look-alikes an NFKC-normalising upstream reads as ASCII.
            ("/items/%EF%B8%B0", (DotSegment, 2)),
            ("/a/\u{FE19}/b", (DotSegment, 2)),
            ("/a/%C2%A0../b", (DotSegment, 2)),
            ("/a/..\u{3000}/b", (DotSegment, 2)),
            ("/a/..\u{FF1B}x/b", (DotSegment, 2)),
            ("/a/\u{FF05}2e\u{FF05}2e/b", (DotSegment, 2)),
            ("/a/b\u{2100}", (EncodedSeparator, 2)),
            ("/a/x\u{FF1F}user_key=1", (EncodedSeparator, 2)),
            ("/a/x\u{FE56}", (EncodedSeparator, 2)),
            ("/a/x\u{FF03}", (EncodedSeparator, 2)),
            ("/a/x\u{FF05}2f", (EncodedSeparator, 2)),
            ("/a/%252e%252e/b", (DotSegment, 2)),
            ("/items/..%2f..%2fadmin", (EncodedSeparator, 2)),
            ("/a/b%2Fc", (EncodedSeparator, 2)),
            ("/items/1%3Fuser_key=x", (EncodedSeparator, 2)),
            ("/items/1%23", (EncodedSeparator, 2)),
            ("/items/1%253F", (EncodedSeparator, 2)),
            ("/a/b\\c", (EncodedSeparator, 2)),
            ("/a/..%5c..%5cadmin", (EncodedSeparator, 2)),
            ("/a/%252f", (EncodedSeparator, 2)),
            ("/a/\u{FF0F}admin", (EncodedSeparator, 2)),
            ("/a/%00", (ControlCharacter, 2)),
            ("/a/x%0Ay", (ControlCharacter, 2)),
            ("/a/%7f", (ControlCharacter, 2)),
            ("/a/%C2%85", (ControlCharacter, 2)),
            ("/a/%zz", (BadEncoding, 2)),
            ("/a/%2", (BadEncoding, 2)),
            ("/a/%", (BadEncoding, 2)),
            ("/a/%c0%ae%c0%ae/b", (BadEncoding, 2)),
            ("/a/%c0%af", (BadEncoding, 2)),
            ("/a/%e0%80%ae", (BadEncoding, 2)),
            ("/a/%ff", (BadEncoding, 2)),
        ];
        for (path, expected) in cases {
            assert_eq!(problem(path), Some(expected), "{path}");
        }
    }

    #[test]
    fn messages_name_the_segment_not_the_path() {
        let err = check("/a/%2e%2e").expect_err("refused");
        let message = err.message();
        assert!(message.starts_with("Segment 2 of the request path is a dot-segment"), "{message}");
        assert!(!message.contains("%2e"));
    }
}
