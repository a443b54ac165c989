//! Copy-on-write tables for the large parts of a config (applications, credentials).
//!
//! A delta must not copy a million-entry table to revoke one key, and the request path must
//! keep reading the old config until the new one is swapped in. Both tables are therefore
//! split into many small pieces behind `Arc`s: cloning a table clones the `Arc`s, and a
//! change copies only the piece it touches. An index's 65,536 buckets sit in groups of 256
//! behind `Arc`s of their own, so cloning one touches 256 reference counts rather than
//! 65,536 (each in a cache line of its own: milliseconds per delta at a million keys).
//!
//! A build cuts its buckets out of the one sorted vector it was given, shared by all of
//! them, rather than copying each into an allocation of its own: at a million keys that
//! second copy was 56 MB of fresh pages, most of the disk load's page faults and of its peak
//! memory. A change gives the bucket it touches a vector of its own; once half the shared
//! entries have been replaced that way, the index is rebuilt so that the shared vector's
//! stale half does not stay in memory.

use std::borrow::Borrow;
use std::sync::Arc;

use uuid::Uuid;

use crate::hashing::{spread_bytes, spread_u128};

/// Keys of a [`CowIndex`]: ordered, and spread uniformly over 32 bits to pick a bucket.
pub(crate) trait Spread {
    /// True when the spread is the key's leading bits, so that key order is bucket order.
    const IN_KEY_ORDER: bool = false;

    fn spread(&self) -> u32;
}

impl Spread for [u8; 32] {
    const IN_KEY_ORDER: bool = true;

    /// A SHA-256 is uniform already.
    fn spread(&self) -> u32 {
        u32::from_be_bytes([self[0], self[1], self[2], self[3]])
    }
}

impl Spread for Uuid {
    fn spread(&self) -> u32 {
        // UUIDv7s start with a timestamp, so mix rather than take leading bits.
        spread_u128(self.as_u128())
    }
}

impl Spread for str {
    fn spread(&self) -> u32 {
        spread_bytes(self.as_bytes())
    }
}

impl Spread for Box<str> {
    fn spread(&self) -> u32 {
        spread_bytes(self.as_bytes())
    }
}

/// Average entries per bucket when a table is built; lookups binary-search a bucket.
const BUCKET_TARGET: usize = 16;
/// At most 2^16 buckets (a million keys make buckets of ~16).
const MAX_BITS: u32 = 16;

/// Buckets per group: 2^8.
const GROUP_BITS: u32 = 8;

/// One sorted bucket of an index: a range of a sorted vector, the build's (shared by every
/// bucket it cut) or the bucket's own after a change.
struct Bucket<K, V> {
    run: Arc<Vec<(K, V)>>,
    start: u32,
    end: u32,
}

impl<K, V> Clone for Bucket<K, V> {
    fn clone(&self) -> Self {
        Bucket { run: self.run.clone(), start: self.start, end: self.end }
    }
}

impl<K, V> Bucket<K, V> {
    fn entries(&self) -> &[(K, V)] {
        &self.run[self.start as usize..self.end as usize]
    }

    fn own(entries: Vec<(K, V)>) -> Self {
        let end = u32::try_from(entries.len()).expect("a bucket holds far fewer than 2^32 entries");
        Bucket { run: Arc::new(entries), start: 0, end }
    }
}

/// A map split into `2^bits` buckets by the key's spread; each bucket is a sorted slice, and
/// buckets are grouped by [`GROUP_BITS`]. About 0 bytes of overhead per entry, beyond the
/// entry itself (a `HashMap` at a million entries carries up to twice its size in empty
/// slots).
#[derive(Clone)]
pub(crate) struct CowIndex<K, V> {
    groups: Vec<Arc<[Bucket<K, V>]>>,
    bits: u32,
    len: usize,
    /// The vector the build cut its buckets from, and how many of its entries buckets still
    /// use; the rest were replaced by changes.
    built: Arc<Vec<(K, V)>>,
    built_in_use: usize,
}

impl<K: Ord + Spread + Clone, V: Clone> CowIndex<K, V> {
    /// Builds from entries; a duplicate key is an error that names it.
    pub fn build_unique(entries: Vec<(K, V)>) -> Result<Self, K> {
        let (bits, entries) = sort(entries);
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(pair[0].0.clone());
        }
        Ok(assemble(bits, entries))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + Spread + ?Sized,
    {
        let entries = self.bucket(key.spread());
        entries.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok().map(|at| &entries[at].1)
    }

    fn bucket(&self, spread: u32) -> &[(K, V)] {
        let index = bucket(spread, self.bits);
        self.groups[index >> GROUP_BITS][index & GROUP_MASK].entries()
    }

    /// Replaces the bucket of `spread` with what `change` makes of its entries; copies that
    /// bucket and its group's list of buckets. Keeps `len` in step before a rebuild reads it.
    fn rewrite<R>(&mut self, spread: u32, change: impl FnOnce(&mut Vec<(K, V)>) -> R) -> R {
        let index = bucket(spread, self.bits);
        let group = &mut self.groups[index >> GROUP_BITS];
        let mut buckets = group.to_vec();
        let slot = &mut buckets[index & GROUP_MASK];
        if Arc::ptr_eq(&slot.run, &self.built) {
            self.built_in_use -= slot.entries().len();
        }
        let mut entries = slot.entries().to_vec();
        let before = entries.len();
        let result = change(&mut entries);
        self.len = self.len + entries.len() - before;
        *slot = Bucket::own(entries);
        *group = Arc::from(buckets);
        if self.built_in_use < self.built.len() / 2 {
            self.rebuild();
        }
        result
    }

    /// Cuts every bucket from one new vector, so the build's replaced entries are freed once
    /// no older config holds them.
    fn rebuild(&mut self) {
        let entries: Vec<(K, V)> = self.iter().cloned().collect();
        *self = assemble(self.bits, entries);
    }

    /// Inserts or replaces; copies one bucket.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.rewrite(key.spread(), |entries| match entries.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(at) => Some(std::mem::replace(&mut entries[at].1, value)),
            Err(at) => {
                entries.insert(at, (key, value));
                None
            }
        })
    }

    /// Removes; copies one bucket if the key is present.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + Spread + ?Sized,
    {
        let at = self.bucket(key.spread()).binary_search_by(|(k, _)| k.borrow().cmp(key)).ok()?;
        let (_, value) = self.rewrite(key.spread(), |entries| entries.remove(at));
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.groups.iter().flat_map(|group| group.iter()).flat_map(|bucket| bucket.entries().iter())
    }
}

const GROUP_MASK: usize = (1 << GROUP_BITS) - 1;

/// Picks the bucket count for `entries` and sorts them by (bucket, key).
fn sort<K: Ord + Spread, V>(mut entries: Vec<(K, V)>) -> (u32, Vec<(K, V)>) {
    let mut bits = 0;
    while bits < MAX_BITS && (entries.len() >> bits) > BUCKET_TARGET {
        bits += 1;
    }
    if K::IN_KEY_ORDER {
        // One sort by key orders the buckets too (the disk load's largest cost at a million keys).
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        return (bits, entries);
    }
    entries.sort_by_cached_key(|(key, _)| bucket(key.spread(), bits));
    // Within a bucket by key; a second stable pass keeps the bucket order intact.
    let mut start = 0;
    while start < entries.len() {
        let here = bucket(entries[start].0.spread(), bits);
        let len = entries[start..]
            .iter()
            .position(|(key, _)| bucket(key.spread(), bits) != here)
            .unwrap_or(entries.len() - start);
        entries[start..start + len].sort_by(|a, b| a.0.cmp(&b.0));
        start += len;
    }
    (bits, entries)
}

/// Cuts sorted, duplicate-free entries into one range per bucket, all of the same vector:
/// nothing is copied.
fn assemble<K: Spread, V>(bits: u32, mut entries: Vec<(K, V)>) -> CowIndex<K, V> {
    let len = entries.len();
    assert!(u32::try_from(len).is_ok(), "an index holds fewer than 2^32 entries");
    entries.shrink_to_fit();
    let built = Arc::new(entries);
    let group_len = 1usize << bits.min(GROUP_BITS);
    let mut groups = Vec::with_capacity((1usize << bits) / group_len);
    let mut buckets = Vec::with_capacity(group_len);
    let mut start = 0;
    for index in 0..1usize << bits {
        let run = built[start..].iter().position(|(key, _)| bucket(key.spread(), bits) != index).unwrap_or(len - start);
        // Both fit: the length was checked above.
        buckets.push(Bucket { run: built.clone(), start: start as u32, end: (start + run) as u32 });
        start += run;
        if buckets.len() == group_len {
            groups.push(Arc::from(std::mem::take(&mut buckets)));
        }
    }
    CowIndex { groups, bits, len, built, built_in_use: len }
}

fn bucket(spread: u32, bits: u32) -> usize {
    if bits == 0 { 0 } else { (spread >> (32 - bits)) as usize }
}

/// Entries per chunk of a [`CowVec`].
const CHUNK: usize = 1024;

/// A vector in fixed-size chunks behind `Arc`s: indices are stable, a change copies one
/// chunk.
#[derive(Clone)]
pub(crate) struct CowVec<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T: Clone> CowVec<T> {
    pub fn from_vec(items: Vec<T>) -> Self {
        let len = items.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut items = items.into_iter();
        loop {
            let chunk: Vec<T> = items.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(Arc::new(chunk));
        }
        CowVec { chunks, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// Replaces the item at `index` (which must exist); copies its chunk if shared.
    pub fn set(&mut self, index: usize, item: T) {
        if let Some(chunk) = self.chunks.get_mut(index / CHUNK)
            && let Some(slot) = Arc::make_mut(chunk).get_mut(index % CHUNK)
        {
            *slot = item;
        }
    }

    /// Appends and returns the new index.
    pub fn push(&mut self, item: T) -> usize {
        let index = self.len;
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(item);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
        index
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_insert_get_remove_share_untouched_buckets() {
        let entries: Vec<(Uuid, u32)> = (0..1000u32).map(|i| (Uuid::from_u128(u128::from(i) * 7919), i)).collect();
        let table = CowIndex::build_unique(entries).expect("unique");
        assert_eq!(table.len(), 1000);
        for i in 0..1000u32 {
            assert_eq!(table.get(&Uuid::from_u128(u128::from(i) * 7919)), Some(&i));
        }
        let mut copy = table.clone();
        assert_eq!(copy.remove(&Uuid::from_u128(0)), Some(0));
        assert_eq!(copy.insert(Uuid::from_u128(1), 5000), None);
        assert_eq!(copy.insert(Uuid::from_u128(1), 5001), Some(5000));
        assert_eq!(copy.len(), 1000);
        assert_eq!(table.get(&Uuid::from_u128(0)), Some(&0), "the original is untouched");
        assert_eq!(table.get(&Uuid::from_u128(1)), None);
        let buckets = |index: &CowIndex<Uuid, u32>| -> Vec<Bucket<Uuid, u32>> {
            index.groups.iter().flat_map(|group| group.iter().cloned()).collect()
        };
        let (original, changed) = (buckets(&table), buckets(&copy));
        assert_eq!(original.len(), 1 << table.bits);
        let same = |a: &Bucket<Uuid, u32>, b: &Bucket<Uuid, u32>| Arc::ptr_eq(&a.run, &b.run) && a.start == b.start;
        let shared = original.iter().zip(&changed).filter(|(a, b)| same(a, b)).count();
        assert!(shared >= original.len() - 2);
        assert_eq!(copy.iter().count(), 1000);
    }

    #[test]
    fn hash_keys_sorted_once_land_in_their_buckets() {
        let key = |i: u32| -> [u8; 32] {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            key[4..8].copy_from_slice(&i.to_le_bytes());
            key
        };
        let entries: Vec<([u8; 32], u32)> = (0..5000u32).map(|i| (key(i), i)).collect();
        let table = CowIndex::build_unique(entries).expect("unique");
        assert!(table.bits > 0);
        for i in 0..5000u32 {
            assert_eq!(table.get(&key(i)), Some(&i));
        }
        assert_eq!(table.get(&key(5000)), None);
        let mut duplicated: Vec<([u8; 32], u32)> = (0..100u32).map(|i| (key(i), i)).collect();
        duplicated.push((key(42), 0));
        assert_eq!(CowIndex::build_unique(duplicated).err(), Some(key(42)));
    }

    /// Past one group: a change copies one group's list of buckets and shares the others.
    #[test]
    fn a_change_copies_one_group_of_a_large_index() {
        let entries: Vec<(Uuid, u32)> = (0..20_000u32).map(|i| (Uuid::from_u128(u128::from(i) * 7919), i)).collect();
        let table = CowIndex::build_unique(entries).expect("unique");
        assert!(table.bits > GROUP_BITS && table.groups.len() == 1 << (table.bits - GROUP_BITS));
        let mut copy = table.clone();
        assert_eq!(copy.insert(Uuid::from_u128(3), 7), None);
        assert_eq!(copy.remove(&Uuid::from_u128(7919)), Some(1));
        let shared = table.groups.iter().zip(&copy.groups).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert!(shared >= table.groups.len() - 2, "{shared} of {} groups shared", table.groups.len());
        for i in 2..20_000u32 {
            assert_eq!(copy.get(&Uuid::from_u128(u128::from(i) * 7919)), Some(&i));
        }
        assert_eq!((copy.get(&Uuid::from_u128(3)), copy.len(), table.len()), (Some(&7), 20_000, 20_000));
        assert_eq!(copy.iter().count(), 20_000);
    }

    /// A build's buckets share its vector; once changes replaced half of it, the index is cut
    /// anew from one vector and the old one is no longer held.
    #[test]
    fn changes_past_half_the_build_rebuild_the_index() {
        let id = |i: u32| Uuid::from_u128(u128::from(i) * 7919);
        let table = CowIndex::build_unique((0..4000u32).map(|i| (id(i), i)).collect()).expect("unique");
        assert_eq!(table.built_in_use, 4000);
        let first = table.built.clone();
        let mut copy = table.clone();
        let mut changed = 0;
        for i in 0..4000u32 {
            copy.insert(id(i), i + 10_000);
            changed += 1;
            if !Arc::ptr_eq(&copy.built, &first) {
                break;
            }
            assert!(copy.built_in_use >= 2000, "rebuilt only past half: {} in use", copy.built_in_use);
        }
        assert!(changed < 4000, "the index was rebuilt before every key changed");
        assert_eq!((copy.built_in_use, copy.built.len(), copy.len()), (4000, 4000, 4000));
        for i in 0..4000u32 {
            let want = if i < changed { i + 10_000 } else { i };
            assert_eq!(copy.get(&id(i)), Some(&want), "key {i} after the rebuild");
            assert_eq!(table.get(&id(i)), Some(&i), "the original is untouched");
        }
        drop(table);
        assert_eq!(Arc::strong_count(&first), 1, "only this test holds the first build's vector");
    }

    /// The count stays right when the change that triggers a rebuild adds or removes a key.
    #[test]
    fn the_length_holds_across_rebuilds_by_inserts_and_removals() {
        let id = |i: u32| Uuid::from_u128(u128::from(i) * 7919);
        let mut table = CowIndex::build_unique((0..4000u32).map(|i| (id(i), i)).collect()).expect("unique");
        for i in 4000..8000u32 {
            assert_eq!(table.insert(id(i), i), None);
            assert_eq!(table.len(), i as usize + 1);
        }
        for i in 0..6000u32 {
            assert_eq!(table.remove(&id(i)), Some(i));
            assert_eq!(table.len(), 8000 - i as usize - 1);
        }
        assert_eq!(table.iter().count(), 2000);
    }

    #[test]
    fn duplicates_are_named() {
        let entries = vec![(Uuid::from_u128(1), 1u32), (Uuid::from_u128(2), 2), (Uuid::from_u128(1), 3)];
        assert_eq!(CowIndex::build_unique(entries).err(), Some(Uuid::from_u128(1)));
    }

    #[test]
    fn string_keys_look_up_by_str() {
        let table = CowIndex::build_unique(vec![(Box::<str>::from("abc"), 1u32)]).expect("unique");
        assert_eq!(table.get("abc"), Some(&1));
        assert_eq!(table.get("abd"), None);
    }

    #[test]
    fn vec_chunks() {
        let mut v = CowVec::from_vec((0..2500).collect::<Vec<u32>>());
        let before = v.clone();
        v.set(5, 99);
        assert_eq!(v.push(7), 2500);
        assert_eq!(v.get(5), Some(&99));
        assert_eq!(before.get(5), Some(&5));
        assert_eq!(v.get(2500), Some(&7));
        assert_eq!(v.iter().count(), 2501);
    }
}
