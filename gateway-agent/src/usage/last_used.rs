//! The latest use of each credential, for "last used" in the developer portal.
//!
//! The minute of a credential's latest use lives in its entry of the credential table
//! ([`CredentialEntry::last_used`]); the request path only reads it while the minute is
//! unchanged. The one request that moves it to a later minute also queues (hash, minute) in
//! its thread's shard, so the flush learns which credentials advanced without scanning the
//! table. Each flush merges the queues, one entry per credential with its latest minute.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use tollgate_protocol::{CredentialUse, KeyHash};

use super::shard::shard_index;
use crate::config::CredentialEntry;
use crate::hashing::FxBuildHasher;

/// Capacity a shard's queue keeps after a flush: a steady trickle of first-uses-in-a-minute
/// then never allocates, and a burst (a million keys in one minute) is given back.
const KEPT_CAPACITY: usize = 4096;

type Queue = Vec<([u8; 32], u32)>;

pub(crate) struct LastUsed {
    shards: Box<[Mutex<Queue>]>,
    /// Queues merged by [`LastUsed::compact`] and not yet taken by a flush.
    merged: Mutex<HashMap<[u8; 32], u32, FxBuildHasher>>,
}

impl LastUsed {
    pub fn new(shards: usize) -> LastUsed {
        LastUsed {
            shards: (0..shards.max(1)).map(|_| Mutex::new(Queue::new())).collect(),
            merged: Mutex::new(HashMap::default()),
        }
    }

    /// Notes that `credential` (whose SHA-256 is `hash`) admitted a request at `at`. Costs
    /// one atomic load unless this is the credential's first use in a later minute; then a
    /// `fetch_max` and a push onto this thread's queue (a lock only the flush contends for).
    #[inline]
    pub fn record(&self, hash: &[u8; 32], credential: &CredentialEntry, at: Timestamp) {
        let Some(minute) = minute_number(at) else {
            return;
        };
        if credential.mark_used(minute) {
            self.shards[shard_index(self.shards.len())]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((*hash, minute));
        }
    }

    /// Merges the per-thread queues, keeping each credential's latest minute. The sealer calls
    /// this at least once a minute, so a long flush interval holds about one entry per used
    /// credential rather than one per credential and minute.
    pub fn compact(&self) {
        let mut merged = self.merged.lock().unwrap_or_else(PoisonError::into_inner);
        for shard in self.shards.iter() {
            let mut queue = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (hash, minute) in queue.drain(..) {
                let latest = merged.entry(hash).or_insert(minute);
                *latest = (*latest).max(minute);
            }
            queue.shrink_to(KEPT_CAPACITY);
        }
    }

    /// Every credential whose latest use advanced since the last drain, once each, by hash.
    pub fn drain(&self) -> Vec<CredentialUse> {
        self.compact();
        let merged = std::mem::take(&mut *self.merged.lock().unwrap_or_else(PoisonError::into_inner));
        let mut used: Vec<CredentialUse> = merged
            .into_iter()
            .map(|(hash, minute)| CredentialUse { hash: KeyHash(hash), minute: i64::from(minute) * 60 })
            .collect();
        used.sort_unstable_by_key(|u| u.hash);
        used
    }
}

/// Minutes since the Unix epoch; `None` before 1970-01-01T00:01Z (0 means "never used") or
/// past what 32 bits hold (year 10136).
fn minute_number(at: Timestamp) -> Option<u32> {
    u32::try_from(at.as_second().div_euclid(60)).ok().filter(|&m| m > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_protocol::KeyKind;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid")
    }

    #[test]
    fn one_entry_per_credential_with_its_latest_minute() {
        let last_used = LastUsed::new(2);
        let (a, b) =
            (CredentialEntry::new(i64::MAX, 0, KeyKind::UserKey), CredentialEntry::new(i64::MAX, 1, KeyKind::UserKey));
        let (ha, hb) = ([1u8; 32], [2u8; 32]);
        last_used.record(&ha, &a, at(6000));
        last_used.record(&ha, &a, at(6059));
        last_used.record(&hb, &b, at(6001));
        last_used.compact();
        last_used.record(&ha, &a, at(6125));
        // A clock that steps back does not move the latest use back.
        last_used.record(&ha, &a, at(6000));
        assert_eq!(
            last_used.drain(),
            vec![CredentialUse { hash: KeyHash(ha), minute: 6120 }, CredentialUse { hash: KeyHash(hb), minute: 6000 },]
        );
        last_used.record(&ha, &a, at(6130));
        last_used.record(&hb, &b, at(6000));
        assert!(last_used.drain().is_empty(), "no later minute, nothing new");
        last_used.record(&hb, &b, at(6060));
        assert_eq!(last_used.drain(), vec![CredentialUse { hash: KeyHash(hb), minute: 6060 }]);
        // A copied entry (a delta rebuilt its bucket) keeps the latest use.
        let copy = a.clone();
        last_used.record(&ha, &copy, at(6170));
        assert!(last_used.drain().is_empty());
    }

    #[test]
    fn minutes() {
        assert_eq!(minute_number(at(59)), None);
        assert_eq!(minute_number(at(-60)), None);
        assert_eq!(minute_number(at(60)), Some(1));
        assert_eq!(minute_number(at(1_743_296_459)), Some(29_054_940));
    }
}
