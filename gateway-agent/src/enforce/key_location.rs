//! Where an API's consumers put their credentials ([`Auth`], [`KeySource`]), every spelling
//! of those names, and reading the credentials a request presents ([`Presented`]).
//!
//! Servers and frameworks disagree about names: PHP turns `user.key` and `user key` into
//! `user_key` and `user_key[]` into an array, many frameworks match query names
//! case-insensitively or percent-decode them (`user%5Fkey`), CGI-style stacks read the header
//! `X_Api_Key` as `X-Api-Key`, and some read a credential from the query or a header alike.
//! So a name *matches* a credential when it is the same after [`canonical`] reduction, in
//! either location. Every matching parameter and header is stripped before forwarding; the
//! key that is checked is read only from the configured location; and a request whose
//! matching names carry two different values is refused, so the key that is checked is the
//! only one that can exist.

use std::borrow::Cow;

use hyper::HeaderMap;
use hyper::header::{COOKIE, HeaderName, HeaderValue};
use tollgate_protocol::KeyLocation;

/// Where one credential is read from.
pub(crate) enum KeySource {
    Query(Box<str>),
    Header(HeaderName),
}

impl KeySource {
    pub fn compile(location: &KeyLocation) -> Result<KeySource, String> {
        Ok(match location {
            KeyLocation::Query { name } => KeySource::Query(name.as_str().into()),
            KeyLocation::Header { name } => KeySource::Header(
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))?,
            ),
        })
    }

    fn name(&self) -> &str {
        match self {
            KeySource::Query(name) => name,
            KeySource::Header(name) => name.as_str(),
        }
    }
}

/// The kinds of credentials an API takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthKind {
    /// One secret in slot 0.
    UserKey,
    /// The public `app_id` in slot 0, an `app_key` in slot 1.
    AppIdKey,
}

/// How an API's consumers present credentials: one or two slots, each with its configured
/// location and the canonical form of its name.
pub(crate) struct Auth {
    kind: AuthKind,
    sources: Box<[KeySource]>,
    canonical: Box<[Box<[u8]>]>,
}

/// Which of an API's credentials a request left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Absent {
    /// Every one (the key, or both `app_id` and `app_key`).
    All,
    /// `app_id`, with an `app_key` present.
    AppId,
    /// `app_key`, with an `app_id` present.
    AppKey,
}

/// Two different values for one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ambiguous;

/// The credentials a request presents at the configured locations, by slot.
pub(crate) struct Presented<'a> {
    values: [Option<Cow<'a, str>>; 2],
}

impl Presented<'_> {
    pub fn get(&self, slot: usize) -> Option<&str> {
        self.values.get(slot)?.as_deref()
    }
}

/// What is known about one slot while a request is read.
#[derive(Default)]
struct Slot<'a> {
    /// The first non-empty value under any spelling.
    value: Option<Cow<'a, str>>,
    /// A value was found at the configured location.
    configured: bool,
}

impl<'a> Slot<'a> {
    fn offer(&mut self, value: Cow<'a, str>, configured: bool) -> Result<(), Ambiguous> {
        let value = trim_cow(value);
        if value.is_empty() {
            return Ok(());
        }
        match &self.value {
            Some(seen) if *seen != value => return Err(Ambiguous),
            Some(_) => {}
            None => self.value = Some(value),
        }
        self.configured |= configured;
        Ok(())
    }
}

impl Auth {
    pub fn user_key(source: KeySource) -> Auth {
        Auth::new(AuthKind::UserKey, vec![source])
    }

    pub fn app_id_key(app_id: KeySource, app_key: KeySource) -> Result<Auth, String> {
        let auth = Auth::new(AuthKind::AppIdKey, vec![app_id, app_key]);
        if auth.canonical[0] == auth.canonical[1] {
            return Err(format!(
                "app_id {:?} and app_key {:?} are the same name once case, `-`/`_`/`.` and encodings are ignored",
                auth.sources[0].name(),
                auth.sources[1].name()
            ));
        }
        Ok(auth)
    }

    fn new(kind: AuthKind, sources: Vec<KeySource>) -> Auth {
        let canonical = sources.iter().map(|s| canonical(s.name().as_bytes(), false).into_owned().into()).collect();
        Auth { kind, sources: sources.into(), canonical }
    }

    pub fn kind(&self) -> AuthKind {
        self.kind
    }

    /// The configured locations, by slot.
    pub fn sources(&self) -> impl Iterator<Item = &KeySource> {
        self.sources.iter()
    }

    /// What a request without its credentials is told: where they go, under their names.
    pub fn missing_message(&self, absent: Absent) -> String {
        let place = |slot: usize| match self.sources.get(slot) {
            Some(KeySource::Query(name)) => format!("as the `{name}` query parameter"),
            Some(KeySource::Header(name)) => format!("in the `{name}` header"),
            None => "as documented".to_owned(),
        };
        let name = |slot: usize| self.sources.get(slot).map_or("", KeySource::name);
        match (self.kind, absent) {
            (AuthKind::UserKey, _) => format!("This API requires a key; send it {}.", place(0)),
            (AuthKind::AppIdKey, Absent::All) => format!(
                "This API requires an application id and key; send the id {} and the key {}.",
                place(0),
                place(1)
            ),
            (AuthKind::AppIdKey, Absent::AppId) => {
                format!("The application id is missing; send it {}, with `{}`.", place(0), name(1))
            }
            (AuthKind::AppIdKey, Absent::AppKey) => {
                format!("The application key is missing; send it {}, with `{}`.", place(1), name(0))
            }
        }
    }

    /// The slot whose name `raw` (a query parameter name, still encoded) is a spelling of.
    /// Allocates only for names with `%`, `+`, `[` or spaces.
    fn query_slot(&self, raw: &[u8]) -> Option<usize> {
        if needs_reduction(raw, true) {
            let name = canonical(raw, true);
            return self.canonical.iter().position(|c| **c == *name);
        }
        self.canonical.iter().position(|c| same_folded(c, raw))
    }

    /// The slot whose name the header `name` is a spelling of. Does not allocate.
    fn header_slot(&self, name: &HeaderName) -> Option<usize> {
        let name = name.as_str().as_bytes();
        self.canonical.iter().position(|c| same_folded(c, name))
    }

    /// Whether a query parameter named `raw` must not reach the upstream.
    pub fn is_credential_param(&self, raw: &[u8]) -> bool {
        self.query_slot(raw).is_some()
    }

    /// Whether the header `name` must not reach the upstream.
    pub fn is_credential_header(&self, name: &HeaderName) -> bool {
        self.header_slot(name).is_some()
    }

    /// Reads every spelling of every credential name in the query and the headers. Only
    /// values at the configured location are presented; two different values for one slot,
    /// under any spellings, are [`Ambiguous`].
    pub fn read<'a>(&self, query: Option<&'a str>, headers: &'a HeaderMap) -> Result<Presented<'a>, Ambiguous> {
        let mut slots: [Slot<'a>; 2] = Default::default();
        // `;` separates too: some upstreams read `a=1;user_key=…` as two parameters.
        for (name, value) in query.into_iter().flat_map(query_pairs) {
            let Some(slot) = self.query_slot(name.as_bytes()) else { continue };
            let configured = matches!(&self.sources[slot], KeySource::Query(configured) if **configured == *name);
            slots[slot].offer(percent_decode(value), configured)?;
        }
        for (name, value) in headers {
            if name == COOKIE {
                // Never a location of the key, but PHP's `$_REQUEST` (with cookies in
                // `variables_order`) reads a cookie named like it: a second value.
                for (name, value) in cookie_pairs(value) {
                    if let Some(slot) = self.query_slot(name) {
                        slots[slot].offer(String::from_utf8_lossy(value), false)?;
                    }
                }
                continue;
            }
            let Some(slot) = self.header_slot(name) else { continue };
            let configured = matches!(&self.sources[slot], KeySource::Header(configured) if configured == name);
            // A value that is not visible ASCII cannot be a key; it still counts as a second value.
            match value.to_str() {
                // No key holds a comma: `A,B` is two values joined, as Envoy's `ext_authz` map
                // joins a repeated header and as many upstream frameworks read one.
                Ok(text) => {
                    for part in text.split(',') {
                        slots[slot].offer(Cow::Borrowed(part), configured)?;
                    }
                }
                Err(_) => {
                    slots[slot].offer(Cow::Owned(String::from_utf8_lossy(value.as_bytes()).into_owned()), configured)?
                }
            }
        }
        let [first, second] = slots;
        let take = |slot: Slot<'a>| if slot.configured { slot.value } else { None };
        Ok(Presented { values: [take(first), take(second)] })
    }
}

/// The `name=value` pairs of a query, separated by `&` or `;`: some upstreams (older CGI and
/// Rack, Go before 1.17) read `a=1;user_key=k` as two parameters.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    // Two single-byte splits: a split on a set of characters decodes every character.
    query.split('&').flat_map(|pair| pair.split(';')).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The `name=value` pairs of a `Cookie` header value (`a=1; b=2`), as bytes: a value with
/// bytes beyond ASCII is still read (PHP reads it), so it cannot hide a pair. A comma or a
/// space separates pairs too, as Python's `SimpleCookie` and Tomcat's legacy parser read
/// `a=1, user_key=k`; no cookie value may hold either (RFC 6265 4.1.1).
pub(crate) fn cookie_pairs(value: &HeaderValue) -> impl Iterator<Item = (&[u8], &[u8])> {
    cookie_fields(value.as_bytes()).map(|pair| match pair.iter().position(|&b| b == b'=') {
        Some(at) => (&pair[..at], &pair[at + 1..]),
        None => (pair, &pair[pair.len()..]),
    })
}

/// The non-empty `name=value` fields of a `Cookie` value, split at `;`, `,`, spaces and tabs.
pub(crate) fn cookie_fields(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| matches!(b, b';' | b',' | b' ' | b'\t')).filter(|field| !field.is_empty())
}

/// A credential name as every reader would agree it is spelled: percent-decoded with `+` as
/// a space (`decode`, for query names), cut at a NUL (PHP ends names there), without leading
/// spaces, control characters or brackets (Rack reads `[user_key]` as `user_key`), up to the
/// first bracket (`user_key[0]`, `user_key[]x`) unless it is a `[` no `]` follows, which PHP
/// reads as `_` (`user[key`), without trailing spaces, ASCII-lowercased, with `-`, `_`, `.`
/// and space as one separator. Borrows when the name needs none of this but folding.
pub(crate) fn canonical(name: &[u8], decode: bool) -> Cow<'_, [u8]> {
    if !needs_reduction(name, decode) && name.iter().all(|&b| fold(b) == b) {
        return Cow::Borrowed(name);
    }
    let decoded: Cow<'_, [u8]> = if decode { percent_decode_bytes(name) } else { Cow::Borrowed(name) };
    let decoded = decoded.split(|&b| b == 0).next().unwrap_or_default();
    let start = decoded.iter().position(|&b| b > b' ' && b != b'[' && b != b']').unwrap_or(decoded.len());
    let rest = &decoded[start..];
    let mut base = Vec::with_capacity(rest.len());
    for (index, &byte) in rest.iter().enumerate() {
        match byte {
            b'[' if !rest[index + 1..].contains(&b']') => base.push(b'_'),
            b'[' | b']' => break,
            byte => base.push(byte),
        }
    }
    Cow::Owned(trim(&base).iter().map(|&b| fold(b)).collect())
}

/// Whether [`canonical`] does more to `name` than fold each byte.
fn needs_reduction(name: &[u8], decode: bool) -> bool {
    name.iter().any(|&b| b <= b' ' || b == b'[' || b == b']' || (decode && (b == b'%' || b == b'+')))
}

/// Whether `raw`, byte by byte folded, is `canonical`.
fn same_folded(canonical: &[u8], raw: &[u8]) -> bool {
    canonical.len() == raw.len() && canonical.iter().zip(raw).all(|(&c, &r)| c == fold(r))
}

fn fold(byte: u8) -> u8 {
    match byte {
        b'_' | b'.' | b' ' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b > b' ').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b > b' ').map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn trim_cow(value: Cow<'_, str>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) if text.trim().len() == text.len() => Cow::Owned(text),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    }
}

/// A query value percent-decoded (with `+` as a space), only if it needs to be.
fn percent_decode(value: &str) -> Cow<'_, str> {
    match percent_decode_bytes(value.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(value),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

fn percent_decode_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(out)
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
    use hyper::header::HeaderValue;

    use super::*;

    fn user_key_in_query() -> Auth {
        Auth::user_key(KeySource::Query("user_key".into()))
    }

    #[test]
    fn canonical_names() {
        let c = |name: &str, decode| String::from_utf8(canonical(name.as_bytes(), decode).into_owned()).expect("utf8");
        assert_eq!(c("user_key", true), "user-key");
        for variant in [
            "USER_KEY",
            "user%5Fkey",
            "user%5fKEY",
            "user_key[]",
            "user_key[0][x]",
            "user_key ",
            " user+key",
            "user.key",
            // How PHP and Rack read names: cut at NUL, after the first bracket group, an
            // unclosed `[` as `_`, leading brackets dropped.
            "user_key%00x",
            "user_key[]x",
            "user[key",
            "[user_key]",
            "user_key]x",
        ] {
            assert_eq!(c(variant, true), "user-key", "{variant}");
        }
        assert_eq!(c("X_Api_Key", false), "x-api-key");
        assert_eq!(c("user%5Fkey", false), "user%5fkey", "header names are not decoded");
        assert_eq!(c("user_keys", true), "user-keys");
        assert!(matches!(canonical(b"page", true), Cow::Borrowed(_)), "ordinary names do not allocate");
    }

    #[test]
    fn values_are_read_at_the_configured_location_only() {
        let auth = user_key_in_query();
        let headers = HeaderMap::new();
        let read = |query: &str| auth.read(Some(query), &headers).map(|p| p.get(0).map(str::to_owned));
        assert_eq!(read("a=1&user_key=abc&b"), Ok(Some("abc".into())));
        assert_eq!(read("user_key="), Ok(None));
        assert_eq!(read("xuser_key=1"), Ok(None));
        assert_eq!(read("k=1&user_key=tg%5Fuk%5Fx"), Ok(Some("tg_uk_x".into())));
        assert_eq!(read("USER_KEY=abc"), Ok(None), "a variant alone is not a credential");
        assert_eq!(read("user_key=abc&USER_KEY=abc"), Ok(Some("abc".into())), "the same value twice is fine");
        assert_eq!(read("user_key=abc&user_key=abd"), Err(Ambiguous));
        assert_eq!(read("user_key=abc&user%5Fkey[]=abd"), Err(Ambiguous));
        // What an upstream splitting on `;` would read as a second key.
        assert_eq!(read("user_key=abc&a=1;user_key=abd"), Err(Ambiguous));
        assert_eq!(read("a=1;user_key=abc"), Ok(Some("abc".into())));
    }

    #[test]
    fn headers_named_like_the_parameter_count_too() {
        let auth = user_key_in_query();
        let mut headers = HeaderMap::new();
        headers.insert("user-key", HeaderValue::from_static("other"));
        assert_eq!(auth.read(Some("user_key=abc"), &headers).err(), Some(Ambiguous));
        assert!(auth.is_credential_header(&HeaderName::from_static("user_key")));
        assert!(auth.is_credential_header(&HeaderName::from_static("user-key")));
        assert!(!auth.is_credential_header(&HeaderName::from_static("user-keys")));
        let header = Auth::user_key(KeySource::Header(HeaderName::from_static("x-api-key")));
        assert!(header.is_credential_header(&HeaderName::from_static("x_api_key")));
        assert!(header.is_credential_param(b"X-API-KEY"));
        assert!(header.is_credential_param(b"x_api_key[]"));
        assert!(!header.is_credential_param(b"x-api-keys"));
        // Envoy's `ext_authz` map joins a repeated header with `,`: two keys, not one bad one.
        let one = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-api-key", HeaderValue::from_static(value));
            header.read(None, &headers).map(|p| p.get(0).map(str::to_owned))
        };
        assert_eq!(one("tg_uk_a,tg_uk_b"), Err(Ambiguous));
        assert_eq!(one("tg_uk_a, tg_uk_a"), Ok(Some("tg_uk_a".into())));
        assert_eq!(one("tg_uk_a"), Ok(Some("tg_uk_a".into())));
    }

    #[test]
    fn app_id_and_app_key_must_differ() {
        let q = |name: &str| KeySource::Query(name.into());
        assert!(Auth::app_id_key(q("app_id"), q("app_key")).is_ok());
        assert!(Auth::app_id_key(q("app_key"), q("APP-KEY")).is_err());
    }
}
