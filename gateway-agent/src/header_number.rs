//! Decimal numbers as header values without allocating on the request path.
//!
//! A `HeaderValue` made at run time owns a heap buffer (and sharing it costs atomic reference
//! counts); one made from a `&'static str` is a pointer and a length. Numbers up to
//! [`TABLE_MAX`] are slices of one static table (about 0.5 MB, built once at start), which
//! covers the `RateLimit-Remaining` and `RateLimit-Reset` of most limits (a day is 86,400 s).
//! Limits' maxima are interned when a plan is compiled ([`interned`]), so `RateLimit-Limit`
//! never allocates either. Larger numbers are written into a per-thread buffer and shared
//! from it ([`formatted`]), so they cost a reference count, not an allocation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use bytes::{BufMut, BytesMut};
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

/// Bytes the per-thread buffer of large numbers takes at a time (about 50 numbers). Small, as
/// one value still held keeps its chunk; hyper drops a head's values once it is written.
const SPARE_CHUNK: usize = 1024;

/// Digits of a `u64` at most.
const U64_DIGITS: usize = 20;

thread_local! {
    /// Where numbers above the table are written. Each value shares the chunk it was written
    /// in; once all of a chunk's values are dropped (their answers sent), the chunk is reused.
    static SPARE: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `n` as a header value: from the static table up to [`TABLE_MAX`], else [`formatted`];
/// neither allocates per call.
pub(crate) fn number(n: u64) -> HeaderValue {
    table(n).map_or_else(|| formatted(n), HeaderValue::from_static)
}

/// `n` written into this thread's buffer and shared from it: the same bytes as
/// `HeaderValue::from(n)` (which allocates twice: the buffer and its shared header).
fn formatted(n: u64) -> HeaderValue {
    let mut digits = [0_u8; U64_DIGITS];
    let text = decimal(n, &mut digits);
    SPARE
        .try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.capacity() < U64_DIGITS {
                spare.reserve(SPARE_CHUNK);
            }
            spare.put_slice(text);
            HeaderValue::from_maybe_shared(spare.split().freeze()).ok()
        })
        .ok()
        .flatten()
        // Only while the thread is being torn down, or never (digits are valid values).
        .unwrap_or_else(|| HeaderValue::from(n))
}

/// `n` in decimal, written at the end of `buf`; the digits are the returned slice.
fn decimal(mut n: u64, buf: &mut [u8; U64_DIGITS]) -> &[u8] {
    let mut start = U64_DIGITS;
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast keeps it whole.
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
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
        // Above the table, each width, and enough values to fill several chunks of the
        // per-thread buffer while earlier values are still held.
        let mut held = Vec::new();
        for n in (0..20).map(|p| 10_u64.pow(p)).chain([u64::MAX, u64::MAX - 1, 123_456_789]) {
            for n in [n.saturating_sub(1), n, n.saturating_add(1)] {
                assert_eq!(number(n), HeaderValue::from(n), "{n}");
                assert_eq!(number(n).as_bytes(), n.to_string().as_bytes(), "{n}");
            }
        }
        for n in (TABLE_MAX..TABLE_MAX + 2_000).chain((u64::MAX - 2_000)..=u64::MAX) {
            held.push((n, number(n)));
        }
        for (n, value) in &held {
            assert_eq!(value, &HeaderValue::from(*n), "{n}");
        }
        assert_eq!(formatted(0), HeaderValue::from(0_u64));
        assert_eq!(formatted(7), HeaderValue::from(7_u64));
        for n in [0, 9, 10, 99_999, 100_000, 1_000_000, u64::MAX] {
            assert_eq!(interned(n), HeaderValue::from(n), "{n}");
            assert_eq!(interned(n), interned(n));
        }
    }
}
