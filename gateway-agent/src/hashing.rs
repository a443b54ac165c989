//! A fast, non-cryptographic hasher for internal keys (counter and usage keys made of ids
//! from the config and the clock). Those keys are never chosen by API consumers, so the
//! hash-flooding protection of the default SipHash buys nothing on the hot path.

use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash mixing step (as in rustc): multiply-rotate per word.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply step leaves the low bits poorly mixed (ids that differ only in their
    /// last bytes would share them), and hash tables index by the low bits: finish with
    /// MurmurHash3's avalanche.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub(crate) type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// Spreads a 128-bit id over 32 bits (for bucket and shard selection).
#[inline]
pub(crate) fn spread_u128(value: u128) -> u32 {
    let mut hasher = FxHasher::default();
    hasher.write_u128(value);
    (hasher.finish() >> 32) as u32
}

/// Spreads a byte string over 32 bits.
#[inline]
pub(crate) fn spread_bytes(bytes: &[u8]) -> u32 {
    let mut hasher = FxHasher::default();
    hasher.write(bytes);
    hasher.write_usize(bytes.len());
    (hasher.finish() >> 32) as u32
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn sequential_ids_spread_over_low_and_high_bits() {
        let build = FxBuildHasher::default();
        let ids = (0..4096u128).map(|n| uuid::Uuid::from_u128((4 << 64) + n));
        let low: HashSet<u64> = ids.clone().map(|id| build.hash_one(id) & 0xfff).collect();
        let high: HashSet<u32> = ids.map(|id| spread_u128(id.as_u128()) >> 20).collect();
        // 4096 keys into 4096 slots: a good hash fills well over half of them.
        assert!(low.len() > 2000, "{}", low.len());
        assert!(high.len() > 2000, "{}", high.len());
    }
}
