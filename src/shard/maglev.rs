//! Google's Maglev lookup table (Eisenbud et al., NSDI 2016), weighted.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::error::PlacementError;
use super::placement::{fill_in_order, sorted_members, Placement, ShardSpec};
use crate::config::ConfigError;
use crate::key::KeyHasher;

/// The default table size: a prime, large enough for even balance up to a few
/// hundred shards.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// The largest table size accepted.
pub const MAX_TABLE_SIZE: u32 = 5_000_011;

const OFFSET_SEED: u64 = 0x6d61_676c_6576_3031; // "maglev01"
const SKIP_SEED: u64 = 0x6d61_676c_6576_3032; // "maglev02"
const EMPTY: u16 = u16::MAX;

/// A Maglev table: O(1) lookup (one multiply and one load), even balance, and
/// little disruption when the membership changes.
///
/// Each shard fills table slots along its own permutation of the table,
/// taking turns in proportion to its weight, until every slot has an owner.
/// A key's owner is the shard in slot `hash × M / 2^64` (the high half of the
/// product, which spreads a 64-bit hash over the table without a division).
///
/// - The table size `M` is a configured prime (default 65,537, at most
///   5,000,011), not derived from the number of shards, so two routers that
///   briefly see different memberships still agree on most keys. **Changing
///   the table size reshuffles nearly every key**: treat it as part of the
///   fleet's identity. Give it at least 100 slots per shard for even balance.
/// - The table is built from the shards sorted by id, so it does not depend on
///   the order in which they were added.
/// - One removal or addition moves a little more than the optimal share of
///   keys (the tests of this crate bound it); unlike the ring, the second entry
///   of a preference list is **not** promised to be where a key goes when its
///   owner is removed.
/// - The preference list walks the table from the key's slot and collects
///   distinct shards in the order it meets them.
///
/// ```
/// use tower_fleet::shard::{Maglev, Placement, ShardSpec};
///
/// let shards = [ShardSpec::new("a"), ShardSpec::new("b"), ShardSpec::new("c").weight(2)];
/// let table = Maglev::build(65_537, Default::default(), &shards).unwrap();
/// let owner = table.route(b"user:42");
/// assert_eq!(table.preference_list(b"user:42", 2)[0], owner);
/// ```
#[derive(Clone)]
pub struct Maglev {
    shards: Vec<ShardSpec>,
    hasher: KeyHasher,
    table: Box<[u16]>,
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("table_size", &self.table.len())
            .field("shards", &self.shards.len())
            .field("hasher", &self.hasher)
            .finish()
    }
}

/// Checks that `table_size` is a prime within the accepted range.
pub(crate) fn check_table_size(table_size: u32) -> Result<(), ConfigError> {
    if table_size > MAX_TABLE_SIZE {
        return Err(ConfigError::new(
            "table_size",
            table_size,
            format!("must be at most {MAX_TABLE_SIZE}"),
        ));
    }
    if !is_prime(table_size) {
        return Err(ConfigError::new(
            "table_size",
            table_size,
            "must be a prime number",
        ));
    }
    Ok(())
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

impl Maglev {
    /// Builds the table of size `table_size` (a prime, at least the number of
    /// shards) for `shards`.
    pub fn build(
        table_size: u32,
        hasher: KeyHasher,
        shards: &[ShardSpec],
    ) -> Result<Maglev, PlacementError> {
        check_table_size(table_size)?;
        let shards = sorted_members(shards)?;
        let m = table_size as usize;
        if m < shards.len() {
            return Err(PlacementError::TableTooSmall {
                table_size,
                shards: shards.len(),
            });
        }
        let mut table = vec![EMPTY; m].into_boxed_slice();
        let max_weight = shards
            .iter()
            .map(|s| u64::from(s.weight))
            .max()
            .unwrap_or(1);
        // Per shard: the next slot of its permutation, its step, and its turn target.
        let mut next: Vec<u64> = Vec::with_capacity(shards.len());
        let mut skip: Vec<u64> = Vec::with_capacity(shards.len());
        let mut target = vec![0u64; shards.len()];
        let m64 = m as u64;
        for s in &shards {
            let id = s.id.as_str().as_bytes();
            next.push(xxh3_64_with_seed(id, OFFSET_SEED) % m64);
            skip.push(xxh3_64_with_seed(id, SKIP_SEED) % (m64 - 1).max(1) + 1);
        }
        let mut filled = 0usize;
        let mut round = 1u64;
        while filled < m {
            for i in 0..shards.len() {
                if filled == m {
                    break;
                }
                // A shard of the largest weight takes a slot every round; one of
                // a third of it every third round.
                let w = u64::from(shards[i].weight);
                if round * w < target[i] {
                    continue;
                }
                target[i] += max_weight;
                loop {
                    let slot = next[i] as usize;
                    next[i] += skip[i];
                    if next[i] >= m64 {
                        next[i] -= m64;
                    }
                    if table[slot] == EMPTY {
                        table[slot] = i as u16;
                        filled += 1;
                        break;
                    }
                }
            }
            round += 1;
        }
        Ok(Maglev {
            shards,
            hasher,
            table,
        })
    }

    /// The table size `M`.
    pub fn table_size(&self) -> usize {
        self.table.len()
    }

    #[inline]
    fn slot(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.table.len() as u128) >> 64) as usize
    }
}

impl Placement for Maglev {
    fn shards(&self) -> &[ShardSpec] {
        &self.shards
    }

    fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    #[inline]
    fn route_hash(&self, hash: u64) -> usize {
        usize::from(self.table[self.slot(hash)])
    }

    fn preference_hash(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.shards.len());
        let m = self.table.len();
        let start = self.slot(hash);
        for step in 0..m {
            if out.len() == want {
                return;
            }
            let mut slot = start + step;
            if slot >= m {
                slot -= m;
            }
            let owner = usize::from(self.table[slot]);
            if !out.contains(&owner) {
                out.push(owner);
            }
        }
        // Only shards with no slot at all (tiny weights in a small table) are left.
        fill_in_order(self.shards.len(), want, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_recognised() {
        assert!(is_prime(65_537));
        assert!(is_prime(5_000_011));
        assert!(is_prime(2));
        assert!(!is_prime(65_536));
        assert!(!is_prime(1));
        assert!(!is_prime(0));
    }

    #[test]
    fn every_shard_gets_its_weighted_share_of_slots() {
        let shards: Vec<_> = (0..10)
            .map(|i| ShardSpec::new(format!("s{i}")).weight(1 + (i % 2)))
            .collect();
        let t = Maglev::build(65_537, KeyHasher::default(), &shards).unwrap();
        let mut counts = [0usize; 10];
        for &s in t.table.iter() {
            counts[usize::from(s)] += 1;
        }
        // weights 1 and 2 alternate: 15 units, 4369 slots a unit
        for (i, c) in counts.iter().enumerate() {
            let expect = 65_537.0 / 15.0 * (1 + (i % 2)) as f64;
            assert!(
                (*c as f64 - expect).abs() <= 2.0,
                "shard {i}: {c} slots, expected {expect}"
            );
        }
    }

    #[test]
    fn a_table_as_small_as_the_membership_still_builds() {
        let shards: Vec<_> = (0..7).map(|i| ShardSpec::new(format!("s{i}"))).collect();
        let t = Maglev::build(7, KeyHasher::default(), &shards).unwrap();
        let mut seen: Vec<u16> = t.table.to_vec();
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<u16>>());
        let mut out = Vec::new();
        t.preference_hash(12345, 10, &mut out);
        assert_eq!(out.len(), 7);
    }
}
