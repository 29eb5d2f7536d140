//! Jump consistent hash (Lamping and Veach, 2014) for numbered, append-only shards.

use std::fmt;

use super::error::PlacementError;
use super::placement::{sorted_members, Placement, ShardSpec};
use super::rendezvous::mix;
use crate::key::KeyHasher;

/// Jump consistent hash: no table at all, perfect balance, and exact minimal
/// disruption, for shards that are numbered and only grow or shrink at the end
/// (storage systems with numbered partitions, a Kubernetes StatefulSet).
///
/// - **Shard ids map to bucket numbers by their trailing decimal number**:
///   `kv-0`, `kv-1`, ... `kv-9` are buckets 0 to 9 (any prefix, the same or
///   not). The numbers of a membership must be exactly `0..N`: a gap (an
///   arbitrary removal) or a repeat is refused with
///   [`PlacementError::JumpNotContiguous`] instead of silently remapping keys.
///   Weights are not supported ([`PlacementError::Unweighted`]).
/// - Adding bucket `N` moves exactly `1/(N+1)` of the keys, all to it;
///   removing the last bucket moves exactly its keys.
/// - A lookup runs the jump loop (about `ln N` rounds of a multiply and a
///   division), without memory beyond the shard list. The floating-point
///   steps are the reference algorithm's basic IEEE operations (no library
///   functions), which round identically on every platform.
/// - The preference list (Jump has no natural one) rehashes the key for each
///   further entry: entry `j` is `jump(mix(hash + j * φ), N)`, skipping
///   buckets already listed; after `8n + 32` rehashes that found nothing new,
///   the remaining buckets follow in order.
#[derive(Clone)]
pub struct Jump {
    shards: Vec<ShardSpec>,
    hasher: KeyHasher,
    /// Index into `shards` of each bucket number.
    by_bucket: Box<[u16]>,
}

impl fmt::Debug for Jump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jump")
            .field("buckets", &self.by_bucket.len())
            .field("hasher", &self.hasher)
            .finish()
    }
}

/// The bucket number at the end of an id, if any.
pub(crate) fn trailing_number(id: &str) -> Option<u32> {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 9 {
        return None;
    }
    id[id.len() - digits..].parse().ok()
}

/// The reference jump consistent hash: the bucket in `0..buckets` of `key`.
#[inline]
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

const PHI: u64 = 0x9e37_79b9_7f4a_7c15;

impl Jump {
    /// Builds the placement for `shards`, whose ids end in the numbers `0..N`.
    pub fn build(hasher: KeyHasher, shards: &[ShardSpec]) -> Result<Jump, PlacementError> {
        let shards = sorted_members(shards)?;
        let mut by_bucket = vec![u16::MAX; shards.len()];
        for (i, s) in shards.iter().enumerate() {
            if s.weight != 1 {
                return Err(PlacementError::Unweighted {
                    algorithm: "jump",
                    id: s.id.clone(),
                });
            }
            let not_contiguous = || PlacementError::JumpNotContiguous { id: s.id.clone() };
            let bucket = trailing_number(s.id.as_str()).ok_or_else(not_contiguous)? as usize;
            match by_bucket.get_mut(bucket) {
                Some(slot) if *slot == u16::MAX => *slot = i as u16,
                _ => return Err(not_contiguous()),
            }
        }
        Ok(Jump {
            shards,
            hasher,
            by_bucket: by_bucket.into_boxed_slice(),
        })
    }

    /// The bucket of a key hash.
    #[inline]
    pub fn bucket(&self, hash: u64) -> u32 {
        jump_hash(hash, self.by_bucket.len() as u32)
    }
}

impl Placement for Jump {
    fn shards(&self) -> &[ShardSpec] {
        &self.shards
    }

    fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    #[inline]
    fn route_hash(&self, hash: u64) -> usize {
        usize::from(self.by_bucket[self.bucket(hash) as usize])
    }

    fn preference_hash(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let len = self.by_bucket.len();
        let want = n.min(len);
        if want == 0 {
            return;
        }
        out.push(self.route_hash(hash));
        let mut misses = 0;
        let mut j = 1u64;
        while out.len() < want && misses < 8 * want + 32 {
            let b = jump_hash(mix(hash.wrapping_add(j.wrapping_mul(PHI))), len as u32);
            let i = usize::from(self.by_bucket[b as usize]);
            if out.contains(&i) {
                misses += 1;
            } else {
                out.push(i);
            }
            j += 1;
        }
        for &i in self.by_bucket.iter() {
            if out.len() == want {
                break;
            }
            let i = usize::from(i);
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_bucket_by_their_trailing_number() {
        assert_eq!(trailing_number("kv-12"), Some(12));
        assert_eq!(trailing_number("7"), Some(7));
        assert_eq!(trailing_number("kv-"), None);
        assert_eq!(trailing_number("kv-1234567890"), None);
    }

    #[test]
    fn the_reference_function_matches_the_published_algorithm() {
        // Values of the reference implementation (a fixed key, growing bucket counts).
        let key = 0x0123_4567_89ab_cdefu64;
        let mut last = 0;
        for n in 1..200u32 {
            let b = jump_hash(key, n);
            assert!(b < n);
            // Growing from n-1 to n either keeps the bucket or moves the key to the new one.
            if n > 1 {
                assert!(b == last || b == n - 1, "n={n}: {last} -> {b}");
            }
            last = b;
        }
        assert_eq!(jump_hash(0, 1), 0);
    }
}
