//! Test vectors for the key format, for secret scanners and other implementations.

use serde::{Deserialize, Serialize};
use tollgate_protocol::{KeyHash, KeyKind, SecretKey, key::ENTROPY_BYTES};

use crate::golden::{fixture_path, round_trip, updating};

#[derive(Serialize, Deserialize)]
struct Vector {
    kind: KeyKind,
    /// The 24 random bytes, hex.
    entropy: String,
    key: String,
    hash: KeyHash,
}

fn entropy(hex: &str) -> [u8; ENTROPY_BYTES] {
    let mut out = [0u8; ENTROPY_BYTES];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex entropy");
    }
    out
}

#[test]
fn key_vectors() {
    let mut vectors: Vec<Vector> = round_trip("keys.json");
    for v in &mut vectors {
        let key = SecretKey::from_entropy(v.kind, entropy(&v.entropy));
        if updating() {
            v.key = key.as_str().to_owned();
            v.hash = key.hash();
            continue;
        }
        assert_eq!(key.as_str(), v.key, "encoding changed for {}", v.entropy);
        assert_eq!(key.hash(), v.hash);
        assert_eq!(KeyHash::of(&v.key), v.hash);
        let parsed = SecretKey::parse(&v.key).expect("vector parses");
        assert_eq!(parsed.kind(), v.kind);
        assert!(v.key.starts_with(v.kind.prefix()));
    }
    if updating() {
        let text = serde_json::to_string_pretty(&vectors).expect("serialise") + "\n";
        std::fs::write(fixture_path("keys.json"), text).expect("write");
    }
}

#[test]
fn fixture_credentials_are_hashes_of_vector_keys() {
    let vectors: Vec<Vector> = round_trip("keys.json");
    let snapshot: tollgate_protocol::Snapshot = round_trip("snapshot.json");
    for credential in &snapshot.credentials {
        let vector = vectors
            .iter()
            .find(|v| v.hash == credential.hash)
            .expect("each credential in snapshot.json is the hash of a key in keys.json");
        assert_eq!(vector.kind, credential.kind);
    }
}
