//! `LocalPath`: where a browser may be sent after signing in. Only a path of
//! this site passes, by a strict grammar, so a `next` parameter can never
//! send anyone to another host.

use std::fmt;

/// The longest `next` path kept; longer ones are no page of ours.
const MAX_LEN: usize = 2048;

/// A same-origin path (with an optional query), safe for a `Location` header.
///
/// The grammar: one leading `/` not followed by `/` or `\`; then only
/// visible ASCII (no space, no control character, no `\`; anything else
/// must be percent-encoded); percent-escapes well formed, and none of them
/// a control character or `\`; and the path once decoded must not start
/// with `//` or `/\` either. Browsers drop tabs and newlines and read `\` as
/// `/` in URLs, so `/\t/evil.example` or `/\evil.example` would otherwise
/// leave the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    pub fn parse(raw: &str) -> Option<LocalPath> {
        let bytes = raw.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_LEN || bytes[0] != b'/' {
            return None;
        }
        if matches!(bytes.get(1), Some(b'/' | b'\\')) {
            return None;
        }
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !(0x21..=0x7e).contains(&b) || b == b'\\' {
                return None;
            }
            if b == b'%' {
                let hex = bytes.get(i + 1..i + 3)?;
                let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if value < 0x20 || value == 0x7f || value == b'\\' {
                    return None;
                }
                decoded.push(value);
                i += 3;
            } else {
                decoded.push(b);
                i += 1;
            }
        }
        if decoded.starts_with(b"//") || decoded.starts_with(b"/\\") {
            return None;
        }
        Some(LocalPath(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_this_site_pass() {
        for ok in ["/", "/admin", "/apps/1f0c?tab=keys", "/apis/weather#docs", "/a%20b", "/x%2Fy"] {
            assert_eq!(LocalPath::parse(ok).map(|p| p.0), Some(ok.to_owned()), "{ok}");
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_or_break_a_header_is_refused() {
        let bad = [
            "",
            "admin",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/\n",
            "/%09/evil.example",
            "/%0d%0aX: y",
            "/%5Cevil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/ space",
            "/caf\u{e9}",
            "/%zz",
            "/%2",
            "/\u{7f}",
        ];
        for raw in bad {
            assert!(LocalPath::parse(raw).is_none(), "{raw:?} passed");
        }
        assert!(LocalPath::parse(&format!("/{}", "a".repeat(MAX_LEN))).is_none());
    }
}
