//! Where an API's consumers put their credentials: the compiled key locations of an API
//! ([`Auth`], [`KeySource`]) and reading a key's value from a request.

use std::borrow::Cow;

use hyper::HeaderMap;
use hyper::header::HeaderName;
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

    pub fn read<'a>(&self, query: Option<&'a str>, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
        let value = match self {
            KeySource::Query(name) => query_param(query?, name)?,
            KeySource::Header(name) => Cow::Borrowed(headers.get(name)?.to_str().ok()?.trim()),
        };
        (!value.is_empty()).then_some(value)
    }
}

/// How an API's consumers present credentials.
pub(crate) enum Auth {
    UserKey(KeySource),
    AppIdKey { app_id: KeySource, app_key: KeySource },
}

impl Auth {
    /// Every place a credential may be, so the proxy can strip them before forwarding.
    pub fn sources(&self) -> impl Iterator<Item = &KeySource> {
        let (first, second) = match self {
            Auth::UserKey(source) => (source, None),
            Auth::AppIdKey { app_id, app_key } => (app_id, Some(app_key)),
        };
        std::iter::once(first).chain(second)
    }
}

/// The first value of query parameter `name`, percent-decoded only if it needs to be.
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '+']) {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
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
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&user_key=abc&b", "user_key").as_deref(), Some("abc"));
        assert_eq!(query_param("user_key", "user_key").as_deref(), Some(""));
        assert_eq!(query_param("xuser_key=1", "user_key"), None);
        assert_eq!(query_param("k=tg%5Fuk%5Fx+y", "k").as_deref(), Some("tg_uk_x y"));
        assert_eq!(query_param("k=100%", "k").as_deref(), Some("100%"));
        assert_eq!(query_param("k=%4", "k").as_deref(), Some("%4"));
    }
}
