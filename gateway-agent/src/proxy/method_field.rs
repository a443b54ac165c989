//! A `_method` field in a `POST` body: the override frameworks read from forms.
//!
//! Rails (Rack's `MethodOverride`, on by default) reads `_method` from a `POST`'s form fields
//! (a urlencoded body, a body without a `Content-Type`, or a multipart one); Symfony and
//! Laravel read it from the form too, and Laravel from a JSON body's top-level object. With
//! one, the upstream runs a `DELETE` that the mapping rules matched, counted and limited as a
//! `POST`. The agent streams bodies and does not parse them, so the scan runs on each piece
//! as it passes: the piece that completes a `_method` field name is withheld, the upstream
//! exchange is broken off before the body is whole (no framework acts on a form it did not
//! receive in full), and the client is answered 400 `method_override`.
//!
//! Names are compared as the most lenient reader would see them: percent-decoded with `+` as
//! a space, without leading spaces or brackets (Rack reads `[_method]` as `_method`), up to a
//! bracket or trailing spaces, ASCII case folded, with `.` and space as `_` (PHP's spelling
//! of form names). A field with such a name is refused whatever its value.

use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderMap};

/// The folded spelling of `_method` (see [`FieldName`]).
const METHOD: &[u8] = b"-method";
/// The longest multipart header line read whole; a longer `Content-Disposition` or
/// `Content-ID` line makes the body unreadable (400 `invalid_body`).
const MAX_PART_HEADER: usize = 8 * 1024;
/// A multipart line is known not to be a header of interest once this much of it is read.
const PART_HEADER_PREFIX: usize = 32;

/// What the scan found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Clean,
    /// A `_method` field: the body must not reach the upstream whole.
    Override,
    /// A part header too long to read: refused as an invalid body.
    Unreadable,
}

/// Whether a query or form field name reads as `_method` (see the module's notes).
pub(crate) fn is_override_name(name: &[u8]) -> bool {
    let mut field = FieldName::default();
    let mut decoder = Percent::default();
    for &byte in name {
        decoder.push(byte, |decoded| field.push(decoded));
    }
    decoder.finish(|decoded| field.push(decoded));
    field.is_method()
}

/// The scans a `POST` body needs, by its `Content-Type`s; `None`: the body is not one that
/// any framework reads a `_method` field from.
pub(crate) fn scan_for(method: &Method, headers: &HeaderMap) -> Option<Box<BodyScan>> {
    if *method != Method::POST {
        return None;
    }
    let mut scan = BodyScan::default();
    let mut types = headers.get_all(CONTENT_TYPE).iter().peekable();
    if types.peek().is_none() {
        // Rack reads a `POST` without a type as a form.
        scan.form = Some(FormScan::new());
    }
    for value in types {
        // Read as leniently as any framework: PHP cuts the media type at `;`, `,` or a space,
        // Rack at `;` or `,`; a form type anywhere in the value counts.
        let value = value.as_bytes().to_ascii_lowercase();
        if value.trim_ascii().is_empty() || contains(&value, b"x-www-form-urlencoded") {
            scan.form.get_or_insert_with(FormScan::new);
        }
        if contains(&value, b"multipart/") {
            scan.multipart.get_or_insert_with(MultipartScan::default);
        }
        // Laravel's test: the whole value contains `/json` or `+json`.
        if contains(&value, b"/json") || contains(&value, b"+json") {
            scan.json.get_or_insert_with(JsonScan::default);
        }
    }
    (scan.form.is_some() || scan.multipart.is_some() || scan.json.is_some()).then(|| Box::new(scan))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The scans of one body, fed each piece in order.
#[derive(Default)]
pub(crate) struct BodyScan {
    form: Option<FormScan>,
    multipart: Option<MultipartScan>,
    json: Option<JsonScan>,
    verdict: Option<Verdict>,
}

impl BodyScan {
    /// Reads the next piece of the body; once a verdict other than clean is given, it stays.
    pub fn feed(&mut self, piece: &[u8]) -> Verdict {
        if let Some(verdict) = self.verdict {
            return verdict;
        }
        let verdict = [
            self.form.as_mut().map(|scan| scan.feed(piece)),
            self.multipart.as_mut().map(|scan| scan.feed(piece)),
            self.json.as_mut().map(|scan| scan.feed(piece)),
        ]
        .into_iter()
        .flatten()
        .find(|verdict| *verdict != Verdict::Clean)
        .unwrap_or(Verdict::Clean);
        if verdict != Verdict::Clean {
            self.verdict = Some(verdict);
        }
        verdict
    }
}

/// A field name's reduced spelling, read a byte at a time: only as much as can still be
/// `_method` is kept.
#[derive(Default)]
struct FieldName {
    folded: [u8; 8],
    len: u8,
    phase: Phase,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Leading spaces and brackets, skipped.
    #[default]
    Leading,
    Core,
    /// After a bracket: the rest does not change the name.
    Ended,
    /// Longer than `_method` (trailing spaces aside).
    Other,
}

impl FieldName {
    fn push(&mut self, byte: u8) {
        match self.phase {
            // PHP ends a name at NUL.
            Phase::Leading | Phase::Core if byte == 0 => self.phase = Phase::Ended,
            Phase::Leading if byte <= b' ' || byte == b'[' || byte == b']' => {}
            Phase::Leading | Phase::Core if byte == b'[' || byte == b']' => self.phase = Phase::Ended,
            Phase::Leading | Phase::Core => {
                self.phase = Phase::Core;
                let folded = match byte {
                    b'_' | b'.' | b' ' => b'-',
                    byte if byte < b' ' => b'-',
                    byte => byte.to_ascii_lowercase(),
                };
                match self.folded.get_mut(usize::from(self.len)) {
                    Some(slot) => {
                        *slot = folded;
                        self.len += 1;
                    }
                    // Only trailing separators may follow the eighth byte.
                    None if folded == b'-' => {}
                    None => self.phase = Phase::Other,
                }
            }
            Phase::Ended | Phase::Other => {}
        }
    }

    fn is_method(&self) -> bool {
        if !matches!(self.phase, Phase::Core | Phase::Ended) {
            return false;
        }
        let mut name = &self.folded[..usize::from(self.len)];
        while name.len() > METHOD.len()
            && let [rest @ .., b'-'] = name
        {
            name = rest;
        }
        name == METHOD
    }
}

/// Percent-decoding a byte at a time, `+` as a space; an invalid escape stays as written.
#[derive(Default)]
struct Percent {
    /// 0: none; 1: after `%`; 2: after `%` and one hex digit (`high`).
    state: u8,
    high: u8,
}

impl Percent {
    fn push(&mut self, byte: u8, mut out: impl FnMut(u8)) {
        match self.state {
            1 => match hex(byte) {
                Some(high) => {
                    self.high = high;
                    self.state = 2;
                }
                None => {
                    self.state = 0;
                    out(b'%');
                    self.push(byte, out);
                }
            },
            2 => {
                self.state = 0;
                match hex(byte) {
                    Some(low) => out(self.high << 4 | low),
                    None => {
                        out(b'%');
                        out(hex_digit(self.high));
                        self.push(byte, out);
                    }
                }
            }
            _ => match byte {
                b'%' => self.state = 1,
                b'+' => out(b' '),
                byte => out(byte),
            },
        }
    }

    /// The end of the name: an unfinished escape stays as written.
    fn finish(&mut self, mut out: impl FnMut(u8)) {
        match std::mem::take(&mut self.state) {
            1 => out(b'%'),
            2 => {
                out(b'%');
                out(hex_digit(self.high));
            }
            _ => {}
        }
    }
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).and_then(|digit| u8::try_from(digit).ok())
}

fn hex_digit(value: u8) -> u8 {
    b"0123456789abcdef"[usize::from(value & 0xf)]
}

/// `application/x-www-form-urlencoded` (and a body without a type): `name=value` pairs
/// separated by `&` or `;`. A name is complete at its `=`.
struct FormScan {
    in_name: bool,
    name: FieldName,
    decoder: Percent,
}

impl FormScan {
    fn new() -> FormScan {
        FormScan { in_name: true, name: FieldName::default(), decoder: Percent::default() }
    }

    fn feed(&mut self, piece: &[u8]) -> Verdict {
        let mut rest = piece;
        while !rest.is_empty() {
            if !self.in_name {
                // A value: nothing to read until the next pair.
                match rest.iter().position(|&b| b == b'&' || b == b';') {
                    Some(at) => rest = &rest[at..],
                    None => return Verdict::Clean,
                }
            }
            let (&byte, tail) = rest.split_first().expect("not empty");
            rest = tail;
            match byte {
                b'&' | b';' => {
                    self.in_name = true;
                    self.name = FieldName::default();
                    self.decoder = Percent::default();
                }
                b'=' => {
                    let name = &mut self.name;
                    self.decoder.finish(|decoded| name.push(decoded));
                    if name.is_method() {
                        return Verdict::Override;
                    }
                    self.in_name = false;
                }
                byte => {
                    let name = &mut self.name;
                    self.decoder.push(byte, |decoded| name.push(decoded));
                }
            }
        }
        Verdict::Clean
    }
}

/// `multipart/*`: the `name` parameters of `Content-Disposition` lines (PHP, Rack) and the
/// value of `Content-ID` lines (Rack names a `multipart/related` part by it), continuation
/// lines included. Every line of the body is looked at, not only those in a part's head, so
/// no reading of the boundaries can hide a part's head from the scan.
#[derive(Default)]
struct MultipartScan {
    line: Vec<u8>,
    /// The line is not a header of interest: skipped to its end.
    skipping: bool,
    /// The last header line read was one of interest (a line starting with a space or a tab
    /// continues it).
    continues: bool,
}

impl MultipartScan {
    fn feed(&mut self, piece: &[u8]) -> Verdict {
        let mut rest = piece;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let (part, ended) = match end {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            rest = end.map_or(&[][..], |at| &rest[at + 1..]);
            if !self.skipping {
                let room = MAX_PART_HEADER - self.line.len();
                self.line.extend_from_slice(&part[..part.len().min(room)]);
                if part.len() > room {
                    if self.of_interest(&self.line) {
                        return Verdict::Unreadable;
                    }
                    self.skipping = true;
                    self.line.clear();
                } else if !ended && self.line.len() >= PART_HEADER_PREFIX && !self.of_interest(&self.line) {
                    self.skipping = true;
                    self.line.clear();
                }
            }
            if ended && self.end_line() {
                return Verdict::Override;
            }
        }
        Verdict::Clean
    }

    /// Whether `line` (or its start) is a header whose names matter.
    fn of_interest(&self, line: &[u8]) -> bool {
        let starts = |prefix: &[u8]| line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix);
        (self.continues && matches!(line.first(), Some(b' ' | b'\t')))
            || starts(b"content-disposition")
            || starts(b"content-id")
    }

    /// The end of a line: whether it named a `_method` field.
    fn end_line(&mut self) -> bool {
        let skipped = std::mem::take(&mut self.skipping);
        self.continues = !skipped && self.of_interest(&self.line);
        let named = self.continues && names_method(&self.line);
        self.line.clear();
        named
    }
}

/// Whether a multipart header line names a `_method` field: a `name` (or `name*`) parameter,
/// or a `Content-ID` value, that reads as `_method`.
fn names_method(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() >= 10 && line[..10].eq_ignore_ascii_case(b"content-id") {
        let value = line.splitn(2, |&b| b == b':').nth(1).unwrap_or_default().trim_ascii();
        let value = value.strip_prefix(b"<").unwrap_or(value);
        let value = value.strip_suffix(b">").unwrap_or(value);
        if is_override_name(value) {
            return true;
        }
    }
    let mut at = 0;
    while let Some(found) = find_ignore_case(&line[at..], b"name") {
        let start = at + found;
        at = start + 4;
        // `filename` and other words ending in `name` are not the parameter.
        if start > 0 && line[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut rest = &line[at..];
        let extended = rest.first() == Some(&b'*');
        if extended {
            rest = &rest[1..];
        }
        let rest = rest.trim_ascii_start();
        let Some(rest) = rest.strip_prefix(b"=") else { continue };
        let rest = rest.trim_ascii_start();
        let value = match rest.strip_prefix(b"\"") {
            Some(quoted) => {
                let mut end = quoted.len();
                let mut escaped = false;
                for (index, &byte) in quoted.iter().enumerate() {
                    match byte {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => {
                            end = index;
                            break;
                        }
                        _ => {}
                    }
                }
                unescape_quoted(&quoted[..end])
            }
            None => {
                let token =
                    rest.iter().position(|&b| b == b';' || b.is_ascii_whitespace()).map_or(rest, |end| &rest[..end]);
                // PHP takes `name='x'` as `x`.
                token.strip_prefix(b"'").and_then(|t| t.strip_suffix(b"'")).unwrap_or(token).to_vec()
            }
        };
        // RFC 8187's `charset'language'value`.
        let value = if extended {
            match find_ignore_case(&value, b"''") {
                Some(quote) => value[quote + 2..].to_vec(),
                None => value,
            }
        } else {
            value
        };
        if is_override_name(&value) {
            return true;
        }
    }
    false
}

fn unescape_quoted(quoted: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(quoted.len());
    let mut escaped = false;
    for &byte in quoted {
        if !escaped && byte == b'\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(byte);
    }
    out
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window.eq_ignore_ascii_case(needle))
}

/// JSON (Laravel reads the top-level object's members as the form): the keys of that object.
#[derive(Default)]
struct JsonScan {
    depth: u32,
    /// The first value is an object: depth 1 is its members.
    top_object: bool,
    started: bool,
    expect_key: bool,
    in_string: bool,
    /// The string being read is a member name of the top-level object.
    key: bool,
    name: FieldName,
    /// 0: none; 1: after `\`; 2–5: reading `\u`'s hex digits.
    escape: u8,
    code: u32,
}

impl JsonScan {
    fn feed(&mut self, piece: &[u8]) -> Verdict {
        let mut index = 0;
        while index < piece.len() {
            let byte = piece[index];
            index += 1;
            if self.in_string {
                if self.escape == 0 && !self.key {
                    // Not a name: skip to the next quote or escape.
                    match piece[index - 1..].iter().position(|&b| b == b'"' || b == b'\\') {
                        Some(at) => {
                            index += at;
                            let byte = piece[index - 1];
                            if byte == b'"' {
                                self.in_string = false;
                            } else {
                                self.escape = 1;
                            }
                        }
                        None => index = piece.len(),
                    }
                    continue;
                }
                match self.escape {
                    1 => {
                        if byte == b'u' {
                            self.escape = 2;
                            self.code = 0;
                        } else {
                            self.escape = 0;
                            self.name_byte(match byte {
                                b'b' => 0x08,
                                b'f' => 0x0c,
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                other => other,
                            });
                        }
                    }
                    2..=5 => {
                        self.code = self.code << 4 | hex(byte).map_or(0x10_000, u32::from);
                        self.escape += 1;
                        if self.escape == 6 {
                            self.escape = 0;
                            let decoded = u8::try_from(self.code).ok().filter(u8::is_ascii).unwrap_or(0xff);
                            self.name_byte(decoded);
                        }
                    }
                    _ => match byte {
                        b'\\' => self.escape = 1,
                        b'"' => {
                            self.in_string = false;
                            if self.key && self.name.is_method() {
                                return Verdict::Override;
                            }
                        }
                        byte => self.name_byte(byte),
                    },
                }
                continue;
            }
            match byte {
                b'"' => {
                    self.in_string = true;
                    self.key = self.depth == 1 && self.top_object && self.expect_key;
                    self.expect_key = false;
                    self.name = FieldName::default();
                }
                b'{' | b'[' => {
                    if !self.started {
                        self.started = true;
                        self.top_object = byte == b'{';
                    }
                    self.depth += 1;
                    self.expect_key = self.depth == 1 && byte == b'{';
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b',' => self.expect_key = self.depth == 1 && self.top_object,
                _ => {}
            }
        }
        Verdict::Clean
    }

    fn name_byte(&mut self, byte: u8) {
        if self.key {
            self.name.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn scan(content_type: Option<&str>, body: &[u8]) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).expect("value"));
        }
        let Some(mut scan) = scan_for(&Method::POST, &headers) else { return Verdict::Clean };
        scan.feed(body)
    }

    /// The verdict is the same however the body is cut into pieces.
    fn every_cut(content_type: Option<&str>, body: &[u8]) -> Verdict {
        let whole = scan(content_type, body);
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).expect("value"));
        }
        for cut in 0..=body.len() {
            let mut scan = scan_for(&Method::POST, &headers).expect("scanned");
            let (a, b) = body.split_at(cut);
            let first = scan.feed(a);
            let verdict = if first == Verdict::Clean { scan.feed(b) } else { first };
            assert_eq!(verdict, whole, "cut at {cut} of {:?}", String::from_utf8_lossy(body));
        }
        let mut scan = scan_for(&Method::POST, &headers).expect("scanned");
        let bytewise = body.iter().map(|byte| scan.feed(std::slice::from_ref(byte))).find(|v| *v != Verdict::Clean);
        assert_eq!(bytewise.unwrap_or(Verdict::Clean), whole, "byte by byte");
        whole
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn form_names_that_read_as_method_are_found() {
        for body in [
            "_method=DELETE",
            "a=1&_method=DELETE",
            "a=1;_method=PUT",
            "%5Fmethod=DELETE",
            "%5fMETHOD=patch",
            "_meth%6fd=DELETE",
            ".method=DELETE",
            "+_method=DELETE",
            "[_method]=DELETE",
            "_method[]=DELETE",
            "_method=",
            "a=%26_method%3D&_method=x",
            "_method%00x=DELETE",
        ] {
            assert_eq!(every_cut(FORM, body.as_bytes()), Verdict::Override, "{body}");
            assert_eq!(every_cut(None, body.as_bytes()), Verdict::Override, "no type: {body}");
        }
    }

    #[test]
    fn other_form_fields_pass() {
        for body in [
            "",
            "method=DELETE",
            "a=_method=DELETE",
            "a=1&b=%26_method%3DDELETE",
            "x_method=DELETE",
            "_methods=DELETE",
            "__method=DELETE",
            "_method",
            "name=payment_method",
            "%zz=1&_metho=2",
        ] {
            assert_eq!(every_cut(FORM, body.as_bytes()), Verdict::Clean, "{body}");
        }
        assert_eq!(scan(Some("text/plain"), b"_method=DELETE"), Verdict::Clean, "not a form");
        for lenient in ["application/x-www-form-urlencoded, text/plain", "application/x-www-form-urlencoded x", " "] {
            assert_eq!(scan(Some(lenient), b"a=1&_method=DELETE"), Verdict::Override, "{lenient}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        assert!(scan_for(&Method::PUT, &headers).is_none(), "only a POST is overridden");
    }

    #[test]
    fn multipart_part_names_are_found_in_their_heads_only() {
        let ct = Some("multipart/form-data; boundary=XyZ");
        let part = |head: &str, content: &str| format!("--XyZ\r\n{head}\r\n\r\n{content}\r\n--XyZ--\r\n");
        for head in [
            "Content-Disposition: form-data; name=\"_method\"",
            "content-disposition: form-data; name=_method",
            "Content-Disposition: form-data;name = \"_Method\"",
            "Content-Disposition: form-data; name*=UTF-8''%5Fmethod",
            "Content-Disposition: form-data; name=\"_me\\thod\"",
            "Content-Disposition: form-data; filename=\"a.txt\"; name=\"_method\"",
            "Content-Disposition: form-data;\r\n name=\"_method\"",
            "Content-ID: <_method>",
            "Content-Disposition: form-data; name='_method'",
            "Content-Disposition: form-data; name=\"_method\0x\"",
        ] {
            let body = part(head, "DELETE");
            assert_eq!(every_cut(ct, body.as_bytes()), Verdict::Override, "{head}");
        }
        for (head, content) in [
            ("Content-Disposition: form-data; name=\"payment_method\"", "DELETE"),
            ("Content-Disposition: form-data; name=\"file\"; filename=\"_method\"", "x"),
            ("Content-Disposition: form-data; name=\"page\"", "<input name=\"_method\" value=\"delete\">"),
            ("Content-Type: text/plain; name=\"_method\"", "x"),
        ] {
            let body = part(head, content);
            assert_eq!(every_cut(ct, body.as_bytes()), Verdict::Clean, "{head}");
        }
        let long = format!("Content-Disposition: form-data; name=\"{}\"", "a".repeat(MAX_PART_HEADER));
        assert_eq!(scan(ct, part(&long, "x").as_bytes()), Verdict::Unreadable);
        let long_content = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n{}\r\n--XyZ--\r\n",
            "b".repeat(100_000)
        );
        assert_eq!(scan(ct, long_content.as_bytes()), Verdict::Clean, "long content lines are skipped");
    }

    #[test]
    fn json_top_level_keys_are_found() {
        let ct = Some("application/json");
        for body in [
            r#"{"_method":"DELETE"}"#,
            r#" { "a" : [1, {"b": 2}], "_method" : "DELETE" }"#,
            r#"{"\u005fmethod":"DELETE"}"#,
            r#"{"_METHOD":"DELETE"}"#,
            r#"{"a":"x\"y","_method":1}"#,
        ] {
            assert_eq!(every_cut(ct, body.as_bytes()), Verdict::Override, "{body}");
            assert_eq!(every_cut(Some("application/vnd.api+json"), body.as_bytes()), Verdict::Override, "{body}");
        }
        for body in [
            r#"{"a":{"_method":"DELETE"}}"#,
            r#"[{"_method":"DELETE"}]"#,
            r#"{"a":"_method","b":["_method"]}"#,
            r#"{"a":"\"_method\":"}"#,
            r#""_method""#,
        ] {
            assert_eq!(every_cut(ct, body.as_bytes()), Verdict::Clean, "{body}");
        }
    }

    #[test]
    fn query_names() {
        for name in ["_method", "%5Fmethod", "[_method]", "_method[x]", ".method", "_METHOD", "_method ", "_method%00x"]
        {
            assert!(is_override_name(name.as_bytes()), "{name}");
        }
        for name in ["method", "_methods", "a_method", "", "%"] {
            assert!(!is_override_name(name.as_bytes()), "{name}");
        }
    }
}
