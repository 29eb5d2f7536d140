//! Rendezvous (highest random weight) hashing, weighted, with a score that is
//! computed bit-identically on every platform.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::error::PlacementError;
use super::placement::{sorted_members, Placement, ShardSpec};
use crate::key::KeyHasher;

const SHARD_SEED: u64 = 0x7265_6e64_657a_766f; // "rendezvo"

/// Rendezvous hashing (Thaler and Ravishankar's highest random weight): every
/// shard scores every key, and the key belongs to the shard with the best
/// score.
///
/// - Exact minimal disruption: removing a shard moves only its keys (each to
///   its second-best shard), adding one moves keys only to it.
/// - `preference_list(key, n)` is the top `n` by score, so
///   `preference_list(k)[1]` is exactly where `k` goes once its owner leaves.
/// - Weighted: a shard's score is `w / -ln(u)` for the key-and-shard hash `u`
///   in (0, 1) (Schindelhauer and Schomaker's logarithmic method), which gives
///   each shard a share of keys proportional to its weight, and keeps
///   disruption minimal when weights change.
/// - Deterministic everywhere: the logarithm is not `f64::ln`, whose last bits
///   may differ between platforms and Rust versions, but a fixed-point
///   `log2` made of integer operations only (a 257-entry table computed at
///   compile time by repeated squaring, plus linear interpolation), so every
///   router ranks shards identically. Golden vectors pin it.
/// - A lookup costs one 64-bit mix per shard (O(N), no allocation): fine for
///   tens to hundreds of shards; use Maglev or Memento beyond that. When all
///   weights are equal the logarithm is skipped.
#[derive(Clone)]
pub struct Rendezvous {
    shards: Vec<ShardSpec>,
    hasher: KeyHasher,
    seeds: Box<[u64]>,
    /// `2^48 / weight`, or empty when every weight is equal.
    inverse_weights: Box<[u64]>,
}

impl fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendezvous")
            .field("shards", &self.shards.len())
            .field("weighted", &!self.inverse_weights.is_empty())
            .field("hasher", &self.hasher)
            .finish()
    }
}

/// MurmurHash3's 64-bit finalizer: a bijective mix of the key hash and a shard seed.
#[inline]
pub(crate) fn mix(x: u64) -> u64 {
    let mut x = x;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// `log2(1 + i/256)` for `i` in `0..=256`, in 32-bit fixed point, computed by
/// the classic bit-by-bit method (square, compare with 2, halve) in integers.
const LOG2_TABLE: [u64; 257] = log2_table();

const fn log2_table() -> [u64; 257] {
    let mut table = [0u64; 257];
    let mut i = 0;
    while i <= 256 {
        // x = 1 + i/256 in Q62.
        let mut x: u128 = (1u128 << 62) + ((i as u128) << 54);
        let mut y: u64 = 0;
        let mut bit = 0;
        while bit < 32 {
            x = (x * x) >> 62;
            if x >= (2u128 << 62) {
                x >>= 1;
                y |= 1 << (31 - bit);
            }
            bit += 1;
        }
        table[i] = y;
        i += 1;
    }
    table[256] = 1 << 32;
    table
}

/// `-log2(h / 2^64)` in 32-bit fixed point, for `h >= 1`: how unlikely the
/// hash is. Integer operations only.
#[inline]
pub(crate) fn neg_log2(h: u64) -> u64 {
    let h = h.max(1);
    let lz = h.leading_zeros();
    // The mantissa's fraction, in Q64.
    let frac = (h << lz) << 1;
    let idx = (frac >> 56) as usize;
    let t = (frac >> 24) & 0xffff_ffff;
    let lo = LOG2_TABLE[idx];
    let hi = LOG2_TABLE[idx + 1];
    let log2_frac = lo + (((hi - lo) * t) >> 32);
    let log2_h = (u64::from(63 - lz) << 32) + log2_frac;
    (64u64 << 32) - log2_h
}

impl Rendezvous {
    /// Builds the placement for `shards`.
    pub fn build(hasher: KeyHasher, shards: &[ShardSpec]) -> Result<Rendezvous, PlacementError> {
        let shards = sorted_members(shards)?;
        let seeds = shards
            .iter()
            .map(|s| xxh3_64_with_seed(s.id.as_str().as_bytes(), SHARD_SEED))
            .collect();
        let first = shards[0].weight;
        let inverse_weights = if shards.iter().all(|s| s.weight == first) {
            Box::default()
        } else {
            shards
                .iter()
                .map(|s| (1u64 << 48) / u64::from(s.weight))
                .collect()
        };
        Ok(Rendezvous {
            shards,
            hasher,
            seeds,
            inverse_weights,
        })
    }

    /// The score of shard `i` for a key hash: lower is better. Unweighted: the
    /// complement of the mixed hash; weighted: `-log2(u) / w` in fixed point.
    #[inline]
    fn cost(&self, hash: u64, i: usize) -> u128 {
        let h = mix(hash ^ self.seeds[i]);
        if self.inverse_weights.is_empty() {
            u128::from(!h)
        } else {
            u128::from(neg_log2(h)) * u128::from(self.inverse_weights[i])
        }
    }
}

impl Placement for Rendezvous {
    fn shards(&self) -> &[ShardSpec] {
        &self.shards
    }

    fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    #[inline]
    fn route_hash(&self, hash: u64) -> usize {
        let mut best = 0;
        let mut best_cost = u128::MAX;
        if self.inverse_weights.is_empty() {
            // The highest mixed hash wins; ties go to the smaller id.
            let mut best_h = 0u64;
            for (i, seed) in self.seeds.iter().enumerate() {
                let h = mix(hash ^ seed);
                if h > best_h || i == 0 {
                    best_h = h;
                    best = i;
                }
            }
            return best;
        }
        for i in 0..self.seeds.len() {
            let c = self.cost(hash, i);
            if c < best_cost {
                best_cost = c;
                best = i;
            }
        }
        best
    }

    fn preference_hash(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(self.shards.len());
        if want == 0 {
            return;
        }
        if want > 8 {
            let mut all: Vec<(u128, usize)> = (0..self.shards.len())
                .map(|i| (self.cost(hash, i), i))
                .collect();
            all.sort_unstable();
            out.extend(all.into_iter().take(want).map(|(_, i)| i));
            return;
        }
        // Insertion into a short sorted list of the best so far.
        let mut best: [(u128, usize); 8] = [(u128::MAX, usize::MAX); 8];
        for i in 0..self.shards.len() {
            let c = (self.cost(hash, i), i);
            if c < best[want - 1] {
                let mut j = want - 1;
                while j > 0 && c < best[j - 1] {
                    best[j] = best[j - 1];
                    j -= 1;
                }
                best[j] = c;
            }
        }
        out.extend(best[..want].iter().map(|b| b.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_point_log_tracks_the_real_one() {
        for h in [
            1u64,
            2,
            3,
            1 << 20,
            12_345_678_901,
            u64::MAX / 3,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let exact = 64.0 - (h as f64).log2();
            let ours = neg_log2(h) as f64 / (1u64 << 32) as f64;
            assert!((ours - exact).abs() < 1e-5, "h={h}: {ours} vs {exact}");
        }
        assert_eq!(LOG2_TABLE[0], 0);
        assert_eq!(LOG2_TABLE[128], 0x95c0_1a39); // log2(1.5) in Q32, truncated by the squaring method
    }

    #[test]
    fn unweighted_and_weighted_paths_agree_when_weights_are_equal_up_to_ties() {
        let shards: Vec<ShardSpec> = (0..20).map(|i| ShardSpec::new(format!("s{i}"))).collect();
        let plain = Rendezvous::build(KeyHasher::default(), &shards).unwrap();
        // Same weights, forced through the logarithm.
        let mut logged = plain.clone();
        logged.inverse_weights = vec![1u64 << 48; 20].into_boxed_slice();
        let mut same = 0;
        for k in 0..10_000u64 {
            let h = mix(k);
            if plain.route_hash(h) == logged.route_hash(h) {
                same += 1;
            }
        }
        // -log2 is monotone, so only fixed-point ties can differ.
        assert!(same >= 9_990, "{same}");
    }
}
