//! The random strategy: a replica drawn in proportion to its weight. Also the
//! balancer's source of randomness for every strategy.
//!
//! Randomness comes from a per-thread wyrand generator (one multiply per
//! draw, no lock, no shared cache line); weighted draws use Vose's alias
//! table, built when the membership changes, so a draw is O(1) at any set size.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x243f_6a88_85a3_08d3);
    let mut z = NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniformly random `u64` (wyrand).
#[inline]
pub(crate) fn next_u64() -> u64 {
    RNG.with(|c| {
        let s = c.get().wrapping_add(0xa076_1d64_78bd_642f);
        c.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A uniformly random index below `n` (`n > 0`), from 32 random bits.
#[inline]
fn scale(bits: u32, n: usize) -> usize {
    ((u64::from(bits) * n as u64) >> 32) as usize
}

/// A uniformly random index below `n` (`n > 0`, at most `u32::MAX`).
#[inline]
pub(crate) fn below(n: usize) -> usize {
    scale((next_u64() >> 32) as u32, n)
}

/// Two distinct uniformly random indices below `n` (`n >= 2`) from one draw.
#[inline]
pub(crate) fn pair(n: usize) -> (usize, usize) {
    let r = next_u64();
    let a = scale((r >> 32) as u32, n);
    let b = scale(r as u32, n - 1);
    (a, if b >= a { b + 1 } else { b })
}

/// `true` with probability `p` (0 to 1).
#[inline]
pub(crate) fn chance(p: f64) -> bool {
    ((next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
}

/// Vose's alias table: draws index `i` with probability `w[i] / sum(w)`.
pub(crate) struct Alias {
    /// Keep `i` when the coin (32 bits) is below `keep[i]`, else take `alias[i]`.
    keep: Box<[u32]>,
    alias: Box<[u32]>,
}

impl Alias {
    /// The table for `weights` (each at least 1), or `None` when they are all
    /// equal and a uniform draw does the same job.
    pub(crate) fn new(weights: &[u32]) -> Option<Alias> {
        let n = weights.len();
        if n == 0 || weights.iter().all(|&w| w == weights[0]) {
            return None;
        }
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let mut scaled: Vec<f64> = weights
            .iter()
            .map(|&w| f64::from(w) * n as f64 / total)
            .collect();
        let mut keep = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = (scaled[s] * f64::from(u32::MAX)) as u32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Some(Alias {
            keep: keep.into(),
            alias: alias.into(),
        })
    }

    /// One weighted draw.
    #[inline]
    pub(crate) fn sample(&self) -> usize {
        let r = next_u64();
        let i = scale((r >> 32) as u32, self.keep.len());
        if (r as u32) < self.keep[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// A random index below `n`, by weight when the set has an alias table.
#[inline]
pub(crate) fn draw(alias: Option<&Alias>, n: usize) -> usize {
    match alias {
        Some(a) => a.sample(),
        None => below(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_draws_follow_the_weights() {
        let weights = [1, 2, 7];
        let alias = Alias::new(&weights).unwrap();
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[alias.sample()] += 1;
        }
        for (c, w) in counts.iter().zip(weights) {
            let expected = 10_000.0 * f64::from(w);
            assert!(
                (f64::from(*c) - expected).abs() < expected * 0.05,
                "{counts:?}"
            );
        }
        assert!(Alias::new(&[3, 3, 3]).is_none());
    }

    #[test]
    fn pairs_are_distinct_and_cover_the_set() {
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let (a, b) = pair(5);
            assert_ne!(a, b);
            assert!(a < 5 && b < 5);
            seen[a] += 1;
            seen[b] += 1;
        }
        assert!(seen.iter().all(|&c| c > 3_000), "{seen:?}");
        let hits = (0..10_000).filter(|_| chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }
}
