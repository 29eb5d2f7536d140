//! Smooth weighted round robin: each replica in turn, in proportion to its
//! weight, with each replica's turns spread evenly through the cycle (weights
//! 5, 1, 1 give `a a b a c a a`, never `a a a a a b c`).
//!
//! The cycle is computed when the membership changes, as an
//! earliest-deadline-first schedule (replica `i`'s `k`-th turn is due at
//! `(k + 1/2) / w[i]`), and stored as a table of indices; a pick is one atomic
//! increment and one load. Equal weights need no table. Weights whose cycle
//! would exceed [`MAX_CYCLE`] turns are scaled down (each keeps at least one turn).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;

/// The longest cycle kept, in turns.
pub(crate) const MAX_CYCLE: u64 = 1 << 16;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(PartialEq)]
struct Turn {
    due: f64,
    index: u32,
}

impl Eq for Turn {}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Turn {
    // The heap is a max-heap: the earliest due turn, then the lowest index,
    // compares greatest.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .due
            .total_cmp(&self.due)
            .then_with(|| other.index.cmp(&self.index))
    }
}

/// The cycle for `weights` (each at least 1), or `None` when they are all
/// equal and plain rotation does the same.
pub(crate) fn schedule(weights: &[u32]) -> Option<Box<[u32]>> {
    if weights.is_empty() || weights.iter().all(|&w| w == weights[0]) {
        return None;
    }
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x) / g.max(1)).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_CYCLE {
        for x in &mut w {
            *x = (*x * MAX_CYCLE / total).max(1);
        }
    }
    let len: u64 = w.iter().sum();
    let mut heap: BinaryHeap<Turn> = w
        .iter()
        .enumerate()
        .map(|(i, &x)| Turn {
            due: 0.5 / x as f64,
            index: i as u32,
        })
        .collect();
    let mut taken = vec![0u64; w.len()];
    let mut out = Vec::with_capacity(len as usize);
    while let Some(turn) = heap.pop() {
        let i = turn.index as usize;
        out.push(turn.index);
        taken[i] += 1;
        if taken[i] < w[i] {
            heap.push(Turn {
                due: (taken[i] as f64 + 0.5) / w[i] as f64,
                index: turn.index,
            });
        }
    }
    Some(out.into())
}

/// The index at position `pos` of the rotation over `n` replicas.
#[inline]
pub(crate) fn at(schedule: Option<&[u32]>, n: usize, pos: usize) -> usize {
    match schedule {
        Some(s) => s[pos % s.len()] as usize,
        None => pos % n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_follow_the_weights_and_spread_evenly() {
        let s = schedule(&[5, 1, 1]).unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s.iter().filter(|&&i| i == 0).count(), 5);
        // The heavy replica never takes more than three turns in a row.
        let runs = s.windows(4).filter(|w| w.iter().all(|&i| i == 0)).count();
        assert_eq!(runs, 0, "{s:?}");
        assert!(schedule(&[2, 2, 2]).is_none());
        assert_eq!(schedule(&[4, 2]).unwrap().len(), 3);
    }

    #[test]
    fn long_cycles_are_scaled_down() {
        let s = schedule(&[1_000_000, 999_999, 1]).unwrap();
        assert!(s.len() as u64 <= MAX_CYCLE + 3);
        assert!(s.contains(&2));
    }
}
