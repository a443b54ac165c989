//! Decimal numbers as header values without allocating on the request path.
//!
//! A `HeaderValue` made at run time owns a heap buffer (and sharing it costs atomic reference
//! counts); one made from a `&'static str` is a pointer and a length. Numbers up to
//! [`TABLE_MAX`] are slices of one static table (about 0.5 MB, built once at start), which
//! covers the `RateLimit-Remaining` and `RateLimit-Reset` of most limits (a day is 86,400 s).
//! Limits' maxima are interned when a plan is compiled ([`interned`]), so `RateLimit-Limit`
//! never allocates either.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use hyper::header::HeaderValue;

/// Numbers up to this come from the static table.
pub(crate) const TABLE_MAX: u64 = 99_999;

/// `0123456789101112…99999`: every number up to [`TABLE_MAX`], written out once.
static DIGITS: LazyLock<&'static str> = LazyLock::new(|| {
    let text: String = (0..=TABLE_MAX).map(|n| n.to_string()).collect();
    Box::leak(text.into_boxed_str())
});

/// Numbers above the table that limits use, written out once each (a process sees few).
static INTERNED: LazyLock<Mutex<HashMap<u64, &'static str>>> = LazyLock::new(Mutex::default);

/// Builds the table now rather than on the first request.
pub(crate) fn warm_up() {
    LazyLock::force(&DIGITS);
}

/// `n` as a header value: from the static table up to [`TABLE_MAX`] (no allocation), else
/// formatted (one small allocation).
pub(crate) fn number(n: u64) -> HeaderValue {
    table(n).map_or_else(|| HeaderValue::from(n), HeaderValue::from_static)
}

/// `n` as a header value that never allocates when cloned or dropped: for values made once and
/// sent often. Numbers above the table are written out once per process and kept.
pub(crate) fn interned(n: u64) -> HeaderValue {
    if let Some(text) = table(n) {
        return HeaderValue::from_static(text);
    }
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    let text = *interned.entry(n).or_insert_with(|| Box::leak(n.to_string().into_boxed_str()));
    HeaderValue::from_static(text)
}

fn table(n: u64) -> Option<&'static str> {
    let (start, len) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1000..=9999 => (2890 + (n - 1000) * 4, 4),
        10_000..=TABLE_MAX => (38_890 + (n - 10_000) * 5, 5),
        _ => return None,
    };
    let digits: &'static str = &DIGITS;
    let start = usize::try_from(start).ok()?;
    digits.get(start..start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_interned_values_equal_formatted_ones() {
        for n in (0..=TABLE_MAX + 10).chain([u64::MAX, 1 << 40, 1_000_000]) {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
        for n in [0, 9, 10, 99_999, 100_000, 1_000_000, u64::MAX] {
            assert_eq!(interned(n), HeaderValue::from(n), "{n}");
            assert_eq!(interned(n), interned(n));
        }
    }
}
