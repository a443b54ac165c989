//! API credential format and hashing.
//!
//! A key reads `tg_<kind>_<body>`, e.g. `tg_uk_0y2L…Qm4f7Xk`. The body is 39 base62
//! characters: 33 encoding 24 random bytes (192 bits, big-endian, zero-padded), then 6
//! encoding the CRC-32 (IEEE) of everything before them. The fixed prefix and the checksum
//! let secret scanners find leaked keys and tell them from random strings offline, the way
//! GitHub tokens work. The checksum is not a security feature: it only rejects typos early.
//!
//! Keys are stored and shipped to agents only as [`KeyHash`]es (SHA-256 of the full key
//! string); owners see them once, afterwards only [`SecretKey::display_prefix`] and
//! [`SecretKey::last4`]. The last four characters are checksum, so showing them reveals
//! nothing about the random part.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use sha2::{Digest, Sha256};

/// Number of random bytes in a key; the caller supplies them so this crate stays pure.
pub const ENTROPY_BYTES: usize = 24;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Base62 digits needed for 192 bits (62^33 > 2^192 > 62^32).
const RANDOM_CHARS: usize = 33;
/// Base62 digits needed for a u32 checksum (62^6 > 2^32).
const CHECKSUM_CHARS: usize = 6;
const BODY_CHARS: usize = RANDOM_CHARS + CHECKSUM_CHARS;
/// Random characters shown after the kind prefix in [`SecretKey::display_prefix`].
const DISPLAY_CHARS: usize = 4;

/// What a key is for. The short code is part of the key so that a leaked key tells its reader
/// (and a scanner) what it unlocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyKind {
    /// `user_key`: one secret identifies an application.
    #[serde(rename = "uk")]
    UserKey,
    /// `app_key`: used together with the application's public `app_id`.
    #[serde(rename = "ak")]
    AppKey,
    /// Token for the admin REST API.
    #[serde(rename = "adm")]
    AdminToken,
    /// Token a gateway agent uses to authenticate to the management server.
    #[serde(rename = "agt")]
    AgentToken,
}

impl KeyKind {
    /// All kinds, for iteration in tests and admin listings.
    pub const ALL: [KeyKind; 4] = [KeyKind::UserKey, KeyKind::AppKey, KeyKind::AdminToken, KeyKind::AgentToken];

    /// The code inside the key: `uk`, `ak`, `adm` or `agt`.
    pub const fn code(self) -> &'static str {
        match self {
            KeyKind::UserKey => "uk",
            KeyKind::AppKey => "ak",
            KeyKind::AdminToken => "adm",
            KeyKind::AgentToken => "agt",
        }
    }

    /// The full prefix, e.g. `tg_uk_`; what scanners match on.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::UserKey => "tg_uk_",
            KeyKind::AppKey => "tg_ak_",
            KeyKind::AdminToken => "tg_adm_",
            KeyKind::AgentToken => "tg_agt_",
        }
    }

    /// Inverse of [`KeyKind::code`].
    pub fn from_code(code: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Why a string is not a well-formed key. Never contains the key itself, so it is safe to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("a key starts with `tg_<kind>_`")]
    MissingPrefix,
    #[error("unknown key kind (expected uk, ak, adm or agt)")]
    UnknownKind,
    #[error("a key body has {expected} characters, got {actual}")]
    BadLength { expected: usize, actual: usize },
    #[error("character {position} of the key body is not base62")]
    BadCharacter { position: usize },
    #[error("the random part of the key is out of range")]
    OutOfRange,
    #[error("the key checksum does not match (typo or truncated key?)")]
    ChecksumMismatch,
}

/// A well-formed secret key. `Debug` is redacted and there is deliberately no `Display`, so the
/// secret does not end up in logs by accident; use [`SecretKey::as_str`] to show it once.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    kind: KeyKind,
    text: String,
}

impl SecretKey {
    /// Builds a key from caller-supplied randomness (use a CSPRNG).
    pub fn from_entropy(kind: KeyKind, entropy: [u8; ENTROPY_BYTES]) -> SecretKey {
        let prefix = kind.prefix();
        let mut text = String::with_capacity(prefix.len() + BODY_CHARS);
        text.push_str(prefix);
        for digit in encode_random(entropy) {
            text.push(char::from(ALPHABET[usize::from(digit)]));
        }
        let checksum = crc32(text.as_bytes());
        push_checksum(&mut text, checksum);
        SecretKey { kind, text }
    }

    /// Validates prefix, kind, length, charset, range and checksum.
    pub fn parse(s: &str) -> Result<SecretKey, KeyFormatError> {
        let rest = s.strip_prefix("tg_").ok_or(KeyFormatError::MissingPrefix)?;
        let (code, body) = rest.split_once('_').ok_or(KeyFormatError::MissingPrefix)?;
        let kind = KeyKind::from_code(code).ok_or(KeyFormatError::UnknownKind)?;
        if body.len() != BODY_CHARS {
            return Err(KeyFormatError::BadLength { expected: BODY_CHARS, actual: body.chars().count() });
        }
        let mut digits = [0u8; BODY_CHARS];
        for (position, (byte, digit)) in body.bytes().zip(digits.iter_mut()).enumerate() {
            *digit = base62_value(byte).ok_or(KeyFormatError::BadCharacter { position })?;
        }
        let (random, check) = digits.split_at(RANDOM_CHARS);
        decode_random(random).ok_or(KeyFormatError::OutOfRange)?;
        let stated = check.iter().fold(0u64, |acc, d| acc * 62 + u64::from(*d));
        let checked_len = s.len() - CHECKSUM_CHARS;
        if stated != u64::from(crc32(&s.as_bytes()[..checked_len])) {
            return Err(KeyFormatError::ChecksumMismatch);
        }
        Ok(SecretKey { kind, text: s.to_owned() })
    }

    /// The full secret. Show it to its owner once; store only [`SecretKey::hash`].
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// What the server stores and agents look keys up by.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.text)
    }

    /// Prefix plus the first 4 random characters, e.g. `tg_uk_1AbC`: identifies a key in lists.
    /// Same as [`display_prefix`] of [`SecretKey::as_str`].
    pub fn display_prefix(&self) -> &str {
        &self.text[..self.kind.prefix().len() + DISPLAY_CHARS]
    }

    /// Last 4 characters (checksum, so they reveal nothing of the random part).
    pub fn last4(&self) -> &str {
        &self.text[self.text.len() - 4..]
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}…{}, redacted)", self.display_prefix(), self.last4())
    }
}

impl FromStr for SecretKey {
    type Err = KeyFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretKey::parse(s)
    }
}

/// The visible prefix of a string shaped like a key (`tg_<kind>_` and 39 base62 characters):
/// the kind prefix and the first 4 random characters, e.g. `tg_uk_1AbC`, exactly what
/// [`SecretKey::display_prefix`] shows in the portal. `None` for anything else, so nothing
/// more of an odd string is ever shown. The checksum is not verified: the agent calls this
/// only for keys it has already found by their hash.
pub fn display_prefix(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("tg_")?;
    let (code, body) = rest.split_once('_')?;
    let kind = KeyKind::from_code(code)?;
    if body.len() != BODY_CHARS || !body.bytes().all(|b| base62_value(b).is_some()) {
        return None;
    }
    text.get(..kind.prefix().len() + DISPLAY_CHARS)
}

/// SHA-256 of a key string: the only form in which credentials are stored or leave the server.
/// Serialised as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub [u8; 32]);

/// A hash that is not 64 hex characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a key hash is 64 hex characters")]
pub struct KeyHashError;

impl KeyHash {
    /// Hashes any string, well-formed key or not: the agent hashes whatever a client sent
    /// and a miss is simply a miss.
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<KeyHash, KeyHashError> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(KeyHashError);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or(KeyHashError)?;
            let lo = hex_value(pair[1]).ok_or(KeyHashError)?;
            *byte = hi << 4 | lo;
        }
        Ok(KeyHash(out))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({self})")
    }
}

impl FromStr for KeyHash {
    type Err = KeyHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyHash::from_hex(s)
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;

        impl de::Visitor<'_> for HexVisitor {
            type Value = KeyHash;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 hash as 64 hex characters")
            }

            // Borrowed or not, no allocation: snapshots carry up to millions of these.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyHash, E> {
                KeyHash::from_hex(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(HexVisitor)
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn base62_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

/// 24 bytes as a big-endian number in exactly 33 base62 digits (most significant first).
fn encode_random(entropy: [u8; ENTROPY_BYTES]) -> [u8; RANDOM_CHARS] {
    let mut number = entropy;
    let mut digits = [0u8; RANDOM_CHARS];
    for digit in digits.iter_mut().rev() {
        // Long division of the whole number by 62; the remainder is the next digit.
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = remainder << 8 | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *digit = remainder as u8;
    }
    digits
}

/// Inverse of [`encode_random`]; `None` if the digits exceed 2^192 - 1.
fn decode_random(digits: &[u8]) -> Option<[u8; ENTROPY_BYTES]> {
    let mut number = [0u8; ENTROPY_BYTES];
    for &digit in digits {
        let mut carry = u32::from(digit);
        for byte in number.iter_mut().rev() {
            let acc = u32::from(*byte) * 62 + carry;
            *byte = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(number)
}

fn push_checksum(text: &mut String, checksum: u32) {
    let mut digits = [0u8; CHECKSUM_CHARS];
    let mut value = checksum;
    for digit in digits.iter_mut().rev() {
        *digit = (value % 62) as u8;
        value /= 62;
    }
    for digit in digits {
        text.push(char::from(ALPHABET[usize::from(digit)]));
    }
}

/// CRC-32 (IEEE 802.3, reflected, as in zlib), table-driven.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &byte in data {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn zero_and_max_entropy_encode_to_fixed_width() {
        let zero = SecretKey::from_entropy(KeyKind::UserKey, [0; ENTROPY_BYTES]);
        assert!(zero.as_str().starts_with("tg_uk_000000000000000000000000000000000"));
        assert_eq!(zero.as_str().len(), 6 + BODY_CHARS);
        let max = SecretKey::from_entropy(KeyKind::AgentToken, [0xff; ENTROPY_BYTES]);
        assert_eq!(max.as_str().len(), 7 + BODY_CHARS);
        assert_eq!(SecretKey::parse(max.as_str()), Ok(max));
    }

    #[test]
    fn parse_rejects_malformed_keys() {
        let key = SecretKey::from_entropy(KeyKind::AppKey, [7; ENTROPY_BYTES]);
        let s = key.as_str();
        assert_eq!(SecretKey::parse("sk_live_abc"), Err(KeyFormatError::MissingPrefix));
        assert_eq!(SecretKey::parse("tg_abc"), Err(KeyFormatError::MissingPrefix));
        assert_eq!(SecretKey::parse(&s.replacen("tg_ak_", "tg_zz_", 1)), Err(KeyFormatError::UnknownKind));
        // Changing the kind alone is caught by the checksum, which covers the prefix.
        assert_eq!(SecretKey::parse(&s.replacen("tg_ak_", "tg_uk_", 1)), Err(KeyFormatError::ChecksumMismatch));
        assert!(matches!(
            SecretKey::parse(&s[..s.len() - 1]),
            Err(KeyFormatError::BadLength { expected: 39, actual: 38 })
        ));
        let mut bad_char = s.to_owned();
        bad_char.replace_range(10..11, "-");
        assert_eq!(SecretKey::parse(&bad_char), Err(KeyFormatError::BadCharacter { position: 4 }));
        // Non-ASCII must not panic on slicing.
        assert!(SecretKey::parse("tg_uk_ééééééééééééééééééé").is_err());
        // 33 'z' digits exceed 2^192.
        let mut too_big = String::from("tg_uk_");
        too_big.push_str(&"z".repeat(RANDOM_CHARS));
        let checksum = crc32(too_big.as_bytes());
        push_checksum(&mut too_big, checksum);
        assert_eq!(SecretKey::parse(&too_big), Err(KeyFormatError::OutOfRange));
    }

    #[test]
    fn display_parts_and_redacted_debug() {
        let key = SecretKey::from_entropy(KeyKind::AdminToken, [42; ENTROPY_BYTES]);
        assert_eq!(key.display_prefix(), &key.as_str()[..11]);
        assert!(key.display_prefix().starts_with("tg_adm_"));
        assert_eq!(key.last4().len(), 4);
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.as_str()[11..20]), "{debug}");
    }

    #[test]
    fn display_prefix_of_a_raw_key_is_what_owners_see() {
        for kind in KeyKind::ALL {
            let key = SecretKey::from_entropy(kind, [9; ENTROPY_BYTES]);
            assert_eq!(display_prefix(key.as_str()), Some(key.display_prefix()));
        }
        let key = SecretKey::from_entropy(KeyKind::UserKey, [9; ENTROPY_BYTES]);
        let s = key.as_str();
        for odd in ["", "tg_uk_", "tg_uk_abcd", "tg_zz_abcd", "user-key", &s[..s.len() - 1], &format!("{s}x")] {
            assert_eq!(display_prefix(odd), None, "{odd}");
        }
        assert_eq!(display_prefix(&s.replacen(&s[8..9], "-", 1)), None);
        assert_eq!(display_prefix("tg_uk_ééééééééééééééééééééé"), None);
    }

    #[test]
    fn key_hash_is_sha256_hex() {
        let hash = KeyHash::of("abc");
        assert_eq!(hash.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(KeyHash::from_hex(&hash.to_hex().to_uppercase()), Ok(hash));
        assert_eq!(KeyHash::from_hex("abc"), Err(KeyHashError));
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), Err(KeyHashError));
        let json = serde_json::to_string(&hash).expect("serialise");
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<KeyHash>(&json).expect("parse"), hash);
    }

    proptest! {
        #[test]
        fn keys_round_trip(entropy in any::<[u8; ENTROPY_BYTES]>(), kind in 0usize..4) {
            let kind = KeyKind::ALL[kind];
            let key = SecretKey::from_entropy(kind, entropy);
            let parsed = SecretKey::parse(key.as_str()).expect("own keys parse");
            prop_assert_eq!(parsed.kind(), kind);
            let body = &key.as_str()[kind.prefix().len()..];
            let digits: Vec<u8> = body.bytes().take(RANDOM_CHARS).filter_map(base62_value).collect();
            prop_assert_eq!(decode_random(&digits), Some(entropy));
        }

        #[test]
        fn single_character_typos_are_caught(
            entropy in any::<[u8; ENTROPY_BYTES]>(),
            position in 0usize..BODY_CHARS,
            replacement in 0usize..62,
        ) {
            let key = SecretKey::from_entropy(KeyKind::UserKey, entropy);
            let index = 6 + position;
            let original = key.as_str().as_bytes()[index];
            let new = ALPHABET[replacement];
            prop_assume!(original != new);
            let mut typo = key.as_str().to_owned();
            typo.replace_range(index..=index, &char::from(new).to_string());
            prop_assert!(SecretKey::parse(&typo).is_err());
        }
    }
}
