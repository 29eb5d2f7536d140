//! MementoHash (Coluzzi et al., 2023): jump hashing plus a memory of removed
//! buckets, for exact minimal disruption under arbitrary removals.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::PlacementError;
use super::jump::jump_hash;
use super::placement::{Placement, ShardId, ShardSpec, MAX_SHARDS};
use super::rendezvous::mix;
use crate::key::KeyHasher;

const WORKING: u32 = u32::MAX;
const REHASH_SEED: u64 = 0x6d65_6d65_6e74_6f21; // "memento!"

/// One change of an ordered membership log: what every router of a Memento
/// fleet must apply, in the same order.
///
/// In TOML: `log = [{ add = "a" }, { add = "b" }, { remove = "a" }]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEntry {
    /// A shard joins.
    Add(ShardId),
    /// A shard leaves.
    Remove(ShardId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    /// `WORKING`, or the size of the working set just after this bucket left.
    replacer: u32,
    /// The bucket removed just before this one (or the b-array size then).
    prev: u32,
}

const LIVE: Slot = Slot {
    replacer: WORKING,
    prev: 0,
};

/// The bucket state of MementoHash, without shard names.
#[derive(Clone, Debug)]
struct Buckets {
    /// The b-array size: buckets are `0..n`.
    n: u32,
    /// The most recently removed bucket, or `n` when none is remembered.
    last: u32,
    removed: u32,
    slots: Vec<Slot>,
}

impl Buckets {
    fn new() -> Buckets {
        Buckets {
            n: 0,
            last: 0,
            removed: 0,
            slots: Vec::new(),
        }
    }

    /// A bucket joins: the most recently removed one comes back, else a new
    /// one at the end.
    fn add(&mut self) -> u32 {
        if self.removed == 0 {
            let b = self.n;
            self.n += 1;
            self.last = self.n;
            self.slots.push(LIVE);
            return b;
        }
        let b = self.last;
        self.last = self.slots[b as usize].prev;
        self.slots[b as usize] = LIVE;
        self.removed -= 1;
        b
    }

    /// A working bucket leaves.
    fn remove(&mut self, b: u32) {
        if self.removed == 0 && b + 1 == self.n {
            // The tail, with nothing remembered: the array just shrinks.
            self.n = b;
            self.last = b;
            self.slots.truncate(b as usize);
            return;
        }
        let working_after = self.n - self.removed - 1;
        self.slots[b as usize] = Slot {
            replacer: working_after,
            prev: self.last,
        };
        self.removed += 1;
        self.last = b;
    }
}

/// Where a key hash lands, given the b-array size and a way to read slots
/// (the real ones, or the real ones under a few hypothetical removals).
#[inline]
fn locate(hash: u64, n: u32, slot: impl Fn(u32) -> Slot) -> u32 {
    let mut b = jump_hash(hash, n);
    let mut s = slot(b);
    while s.replacer != WORKING {
        // The key's bucket left when `r` buckets were working: rehash it into
        // those `r` (numbered 0..r once each removal is seen as a swap with
        // the last working bucket).
        let r = s.replacer;
        let h = mix(hash ^ mix(u64::from(b) ^ REHASH_SEED));
        let mut c = ((u128::from(h) * u128::from(r)) >> 64) as u32;
        // A bucket that left earlier (when more were working) has its place
        // taken by the bucket numbered by its replacer.
        loop {
            let t = slot(c);
            if t.replacer == WORKING || t.replacer < r {
                break;
            }
            c = t.replacer;
        }
        b = c;
        s = slot(b);
    }
    b
}

/// MementoHash: exact minimal disruption under arbitrary removals, with the
/// balance of jump hashing and memory only for the removed shards.
///
/// - **Its mapping depends on the order of membership changes.** Every router
///   of a fleet must apply the same [`LogEntry`] sequence, so Memento is built
///   from an ordered log ([`Memento::from_log`]; in configuration, the `log`
///   of `algorithm = "memento"`) and refuses set-based discovery, which cannot
///   promise one order to every router ([`PlacementError::NeedsOrderedLog`]).
/// - Removing any shard moves exactly its keys; adding a shard moves keys only
///   to it.
/// - **Re-adding restores**: a shard that joins takes the bucket of the most
///   recently removed shard, so re-adding the most recently removed shard
///   restores the previous mapping exactly. Any other shard that joins at that
///   point takes over exactly the keys the removed shard had (so a replacement
///   node under a new name inherits its predecessor's keys); a shard removed
///   earlier that rejoins does not get its own old keys back unless the
///   removals after it were undone first (joins undo removals in reverse order).
/// - Lookup: the jump hash over the b-array (about `ln N` rounds), then, only
///   for keys whose bucket was removed, a rehash into the buckets that were
///   working at that removal; with 10% of the shards removed that is rare.
/// - Weights are not supported ([`PlacementError::Unweighted`]).
/// - The preference list follows hypothetical removals: entry `i + 1` is where
///   the key would go if entries `0..=i` were removed in that order, so
///   `preference_list(k)[1]` is exactly where `k` goes once its owner leaves.
#[derive(Clone)]
pub struct Memento {
    shards: Vec<ShardSpec>,
    hasher: KeyHasher,
    buckets: Buckets,
    /// Index into `shards` of each working bucket (`u16::MAX` for removed ones).
    owner: Box<[u16]>,
}

impl fmt::Debug for Memento {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memento")
            .field("shards", &self.shards.len())
            .field("buckets", &self.buckets.n)
            .field("removed", &self.buckets.removed)
            .field("hasher", &self.hasher)
            .finish()
    }
}

impl Memento {
    /// Replays an ordered membership log.
    pub fn from_log(hasher: KeyHasher, log: &[LogEntry]) -> Result<Memento, PlacementError> {
        let mut buckets = Buckets::new();
        let mut bucket_of: HashMap<ShardId, u32> = HashMap::new();
        let mut id_of: Vec<Option<ShardId>> = Vec::new();
        for (i, entry) in log.iter().enumerate() {
            match entry {
                LogEntry::Add(id) => {
                    if bucket_of.contains_key(id) {
                        return Err(PlacementError::BadLog {
                            index: i,
                            id: id.clone(),
                        });
                    }
                    if bucket_of.len() >= MAX_SHARDS {
                        return Err(PlacementError::TooManyShards {
                            count: bucket_of.len() + 1,
                        });
                    }
                    let b = buckets.add();
                    if id_of.len() <= b as usize {
                        id_of.resize(b as usize + 1, None);
                    }
                    id_of[b as usize] = Some(id.clone());
                    bucket_of.insert(id.clone(), b);
                }
                LogEntry::Remove(id) => {
                    let Some(b) = bucket_of.remove(id) else {
                        return Err(PlacementError::BadLog {
                            index: i,
                            id: id.clone(),
                        });
                    };
                    buckets.remove(b);
                    id_of[b as usize] = None;
                }
            }
        }
        if bucket_of.is_empty() {
            return Err(PlacementError::Empty);
        }
        let mut shards: Vec<ShardSpec> = bucket_of
            .keys()
            .map(|id| ShardSpec::new(id.clone()))
            .collect();
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        let mut owner = vec![u16::MAX; buckets.n as usize];
        for (i, s) in shards.iter().enumerate() {
            owner[bucket_of[&s.id] as usize] = i as u16;
        }
        Ok(Memento {
            shards,
            hasher,
            buckets,
            owner: owner.into_boxed_slice(),
        })
    }

    /// The log that adds `shards` in id order: the log of a membership that was
    /// given as a set.
    pub fn log_of(shards: &[ShardSpec]) -> Vec<LogEntry> {
        let mut ids: Vec<&ShardId> = shards.iter().map(|s| &s.id).collect();
        ids.sort();
        ids.into_iter()
            .map(|id| LogEntry::Add(id.clone()))
            .collect()
    }

    /// How many buckets were removed and are remembered.
    pub fn removed(&self) -> usize {
        self.buckets.removed as usize
    }

    #[inline]
    fn slot(&self, b: u32) -> Slot {
        self.buckets.slots[b as usize]
    }
}

impl Placement for Memento {
    fn shards(&self) -> &[ShardSpec] {
        &self.shards
    }

    fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    #[inline]
    fn route_hash(&self, hash: u64) -> usize {
        let b = locate(hash, self.buckets.n, |b| self.slot(b));
        usize::from(self.owner[b as usize])
    }

    fn preference_hash(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.shards.len());
        // Remove each pick hypothetically, in order, on a copy of the bucket
        // state, and see where the key goes next.
        let mut view = self.buckets.clone();
        while out.len() < want {
            let b = locate(hash, view.n, |b| view.slots[b as usize]);
            out.push(usize::from(self.owner[b as usize]));
            view.remove(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(id: &str) -> LogEntry {
        LogEntry::Add(ShardId::new(id))
    }

    fn remove(id: &str) -> LogEntry {
        LogEntry::Remove(ShardId::new(id))
    }

    #[test]
    fn removing_and_re_adding_the_last_removed_restores_the_state() {
        let mut b = Buckets::new();
        for _ in 0..5 {
            b.add();
        }
        b.remove(1);
        b.remove(3);
        assert_eq!((b.n, b.removed, b.last), (5, 2, 3));
        assert_eq!(b.add(), 3);
        assert_eq!(b.add(), 1);
        assert_eq!((b.n, b.removed, b.last), (5, 0, 5));
        assert_eq!(b.add(), 5);
        b.remove(5);
        assert_eq!((b.n, b.last), (5, 5), "the tail shrinks the array");
    }

    #[test]
    fn bad_logs_are_refused_with_the_entry() {
        let err = Memento::from_log(KeyHasher::default(), &[add("a"), add("a")]).unwrap_err();
        assert!(matches!(err, PlacementError::BadLog { index: 1, .. }));
        let err = Memento::from_log(KeyHasher::default(), &[add("a"), remove("b")]).unwrap_err();
        assert!(matches!(err, PlacementError::BadLog { index: 1, .. }));
        let err = Memento::from_log(KeyHasher::default(), &[add("a"), remove("a")]).unwrap_err();
        assert!(matches!(err, PlacementError::Empty));
    }

    #[test]
    fn every_key_lands_on_a_working_bucket() {
        let mut log: Vec<LogEntry> = (0..50).map(|i| add(&format!("s{i}"))).collect();
        for i in [3, 17, 49, 48, 0, 25] {
            log.push(remove(&format!("s{i}")));
        }
        let m = Memento::from_log(KeyHasher::default(), &log).unwrap();
        assert_eq!(m.shards().len(), 44);
        for k in 0..20_000u64 {
            let i = m.route_hash(mix(k));
            assert!(i < 44);
        }
    }
}
