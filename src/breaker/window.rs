//! Sliding windows of outcomes: the last N calls, or the last T of time in B
//! buckets. O(1) work per call, atomics only, no lock and no allocation.
//!
//! The count window keeps its running totals in a [`Tally`]: `(calls,
//! failures)` packed in one `AtomicU64` and slow calls in another. Every
//! change to a slot is paired with the same change to the tally, so the tally
//! always equals the sum of the window's contents once concurrent recorders
//! have finished; while they run it may lag by one outcome per recorder. The
//! two 32-bit halves of the packed word are biased by 2^31 so that such a
//! transient negative never borrows from its neighbour. The time window adds
//! to its newest bucket and keeps the sum of the others, recomputed as it
//! rolls.

use super::sync::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// Slot bits of the count window.
pub(crate) const CALL: u8 = 1;
pub(crate) const FAIL: u8 = 2;
pub(crate) const SLOW: u8 = 4;

const BIAS: u64 = 1 << 31;
const ZERO_CF: u64 = BIAS | (BIAS << 32);
const LOW: u64 = 0xFFFF_FFFF;

/// The most buckets a time window may have (the slot field of its cursor).
pub const MAX_BUCKETS: u32 = 1024;
const SLOT_BITS: u32 = 10;

/// The packed delta of `dc` calls and `df` failures.
#[inline]
fn pack(dc: i64, df: i64) -> u64 {
    (dc as u64).wrapping_add((df as u64) << 32)
}

/// Outcomes in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Counts {
    #[inline]
    fn decode(cf: u64, slow: u64) -> Counts {
        let field = |v: u64| (v as i64 - BIAS as i64).max(0) as u64;
        Counts {
            calls: field(cf & LOW),
            failures: field(cf >> 32),
            slow: (slow as i64).max(0) as u64,
        }
    }
}

/// The running totals of a window, and the count window's write position.
/// Kept together (and first in the core) so that a call touches one line.
pub(crate) struct Tally {
    /// Count window: outcomes ever recorded (the next write position).
    pos: AtomicU64,
    cf: AtomicU64,
    slow: AtomicU64,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            pos: AtomicU64::new(0),
            cf: AtomicU64::new(ZERO_CF),
            slow: AtomicU64::new(0),
        }
    }

    #[inline]
    fn add(&self, dc: i64, df: i64, ds: i64, read_slow: bool) -> Counts {
        let d = pack(dc, df);
        let cf = self.cf.fetch_add(d, Relaxed).wrapping_add(d);
        let slow = if ds != 0 {
            self.slow
                .fetch_add(ds as u64, Relaxed)
                .wrapping_add(ds as u64)
        } else if read_slow {
            self.slow.load(Relaxed)
        } else {
            0
        };
        Counts::decode(cf, slow)
    }

    fn counts(&self) -> Counts {
        Counts::decode(self.cf.load(Relaxed), self.slow.load(Relaxed))
    }
}

/// A count window (the last `n` outcomes) or a time window.
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn count(size: u32) -> Window {
        let size = size.max(1);
        Window::Count(CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            size,
            magic: (u64::MAX / u64::from(size)).wrapping_add(1),
        })
    }

    pub(crate) fn time(width_nanos: u64, buckets: u32) -> Window {
        let buckets = buckets.clamp(1, MAX_BUCKETS);
        Window::Time(TimeWindow {
            buckets: (0..buckets)
                .map(|_| Bucket {
                    cf: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                })
                .collect(),
            width: width_nanos.max(1),
            cursor: AtomicU64::new(0),
            sealed_cf: AtomicU64::new(0),
            sealed_slow: AtomicU64::new(0),
            retired: AtomicU64::new(0),
        })
    }

    /// Empties the window (a transition to closed). Rare path.
    pub(crate) fn reset(&self, tally: &Tally) {
        match self {
            Window::Count(w) => w.reset(tally),
            Window::Time(w) => w.reset(),
        }
    }

    /// The counts in the window at `now`.
    pub(crate) fn counts(&self, tally: &Tally, now: u64) -> Counts {
        match self {
            Window::Count(_) => tally.counts(),
            Window::Time(w) => w.counts(w.slot_at(now), true),
        }
    }

    /// Outcomes ever recorded through the window.
    pub(crate) fn lifetime_calls(&self, tally: &Tally) -> u64 {
        match self {
            Window::Count(_) => tally.pos.load(Relaxed),
            Window::Time(w) => {
                let head = (w.cursor.load(Relaxed) & SLOT_MASK) as usize;
                w.retired
                    .load(Relaxed)
                    .wrapping_add(w.counts(head, false).calls)
            }
        }
    }
}

/// The last `size` outcomes, in a ring of one byte per outcome.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    size: u32,
    /// Lemire's fastmod constant: `i % size` without a division.
    magic: u64,
}

impl CountWindow {
    #[inline]
    fn index(&self, i: u64) -> usize {
        let low = self.magic.wrapping_mul(u64::from(i as u32));
        ((u128::from(low) * u128::from(self.size)) >> 64) as usize
    }

    /// Records one outcome (`bits` = CALL | FAIL? | SLOW?). Returns the
    /// window's counts after it, or `None` when the window did not change
    /// (an outcome replaced by an equal one), so nothing needs evaluating.
    #[inline]
    pub(crate) fn record(&self, tally: &Tally, bits: u8, read_slow: bool) -> Option<Counts> {
        let i = tally.pos.fetch_add(1, Relaxed);
        let slot = &self.slots[self.index(i)];
        // A healthy window replaces a success with a success: nothing to
        // write, nothing to count, nothing to evaluate.
        if slot.load(Relaxed) == bits {
            return None;
        }
        let old = slot.swap(bits, Relaxed);
        if old == bits {
            return None;
        }
        let bit = |v: u8, b: u8| i64::from(v & b != 0);
        Some(tally.add(
            bit(bits, CALL) - bit(old, CALL),
            bit(bits, FAIL) - bit(old, FAIL),
            bit(bits, SLOW) - bit(old, SLOW),
            read_slow,
        ))
    }

    fn reset(&self, tally: &Tally) {
        let (mut dc, mut df, mut ds) = (0i64, 0i64, 0i64);
        for slot in self.slots.iter() {
            let old = slot.swap(0, Relaxed);
            dc -= i64::from(old & CALL != 0);
            df -= i64::from(old & FAIL != 0);
            ds -= i64::from(old & SLOW != 0);
        }
        tally.add(dc, df, ds, false);
    }
}

struct Bucket {
    /// Calls in the low 32 bits, failures in the high 32.
    cf: AtomicU64,
    slow: AtomicU64,
}

const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;

/// The last `buckets * width` nanoseconds, in buckets that roll.
///
/// A call adds to the newest bucket only (one `fetch_add`). The sums of the
/// other buckets are kept in `sealed_*`, recomputed whenever the window rolls
/// (once per bucket width, O(buckets)), so the window's counts are the sealed
/// sums plus the newest bucket: two loads.
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    width: u64,
    /// The newest bucket's index in time (`ticks / width`) shifted left by
    /// `SLOT_BITS`, or-ed with its slot in `buckets`.
    cursor: AtomicU64,
    sealed_cf: AtomicU64,
    sealed_slow: AtomicU64,
    /// Calls that have left the window, for the lifetime count.
    retired: AtomicU64,
}

impl TimeWindow {
    /// The slot of the bucket that holds `now`, rolling the window forward
    /// when `now` is past the newest bucket.
    #[inline]
    fn slot_at(&self, now: u64) -> usize {
        let c = self.cursor.load(Relaxed);
        let start = (c >> SLOT_BITS).wrapping_mul(self.width);
        if now.wrapping_sub(start) < self.width {
            return (c & SLOT_MASK) as usize;
        }
        self.roll(c, now)
    }

    #[cold]
    fn roll(&self, mut c: u64, now: u64) -> usize {
        let n = self.buckets.len() as u64;
        let idx = now / self.width;
        loop {
            let head = c >> SLOT_BITS;
            if idx <= head {
                // A clock read that lags the newest bucket: count it there.
                return (c & SLOT_MASK) as usize;
            }
            let slot = idx % n;
            match self
                .cursor
                .compare_exchange(c, (idx << SLOT_BITS) | slot, Relaxed, Relaxed)
            {
                Ok(_) => {
                    // Empty the buckets the window moved past, up to the new
                    // newest, then re-add the sealed sums.
                    let passed = (idx - head).min(n);
                    let first = (slot + n - (passed - 1)) % n;
                    let mut retired = 0;
                    for k in 0..passed {
                        let b = &self.buckets[((first + k) % n) as usize];
                        retired += b.cf.swap(0, Relaxed) & LOW;
                        b.slow.swap(0, Relaxed);
                    }
                    self.retired.fetch_add(retired, Relaxed);
                    self.seal(slot as usize);
                    return slot as usize;
                }
                Err(actual) => c = actual,
            }
        }
    }

    /// Recomputes the sums of every bucket but the newest.
    fn seal(&self, newest: usize) {
        let (mut cf, mut slow) = (0u64, 0u64);
        for (i, b) in self.buckets.iter().enumerate() {
            if i != newest {
                cf = cf.wrapping_add(b.cf.load(Relaxed));
                slow = slow.wrapping_add(b.slow.load(Relaxed));
            }
        }
        self.sealed_cf.store(cf, Relaxed);
        self.sealed_slow.store(slow, Relaxed);
    }

    fn reset(&self) {
        let mut retired = 0;
        for b in self.buckets.iter() {
            retired += b.cf.swap(0, Relaxed) & LOW;
            b.slow.swap(0, Relaxed);
        }
        self.retired.fetch_add(retired, Relaxed);
        self.sealed_cf.store(0, Relaxed);
        self.sealed_slow.store(0, Relaxed);
    }

    /// The sealed sums plus bucket `head`.
    #[inline]
    fn counts(&self, head: usize, read_slow: bool) -> Counts {
        let b = &self.buckets[head];
        let cf = self
            .sealed_cf
            .load(Relaxed)
            .wrapping_add(b.cf.load(Relaxed));
        let slow = if read_slow {
            self.sealed_slow
                .load(Relaxed)
                .wrapping_add(b.slow.load(Relaxed))
        } else {
            0
        };
        Counts {
            calls: cf & LOW,
            failures: cf >> 32,
            slow,
        }
    }

    /// Records one outcome at `now` (ticks); returns the window's counts.
    #[inline]
    pub(crate) fn record(&self, bits: u8, now: u64, read_slow: bool) -> Counts {
        let slot = self.slot_at(now);
        let b = &self.buckets[slot];
        b.cf.fetch_add(pack(1, i64::from(bits & FAIL != 0)), Relaxed);
        if bits & SLOW != 0 {
            b.slow.fetch_add(1, Relaxed);
        }
        self.counts(slot, read_slow)
    }
}

#[cfg(all(test, not(tower_fleet_loom)))]
mod tests {
    use super::*;

    fn rec(w: &Window, t: &Tally, bits: u8, now: u64) {
        match w {
            Window::Count(c) => {
                c.record(t, bits, true);
            }
            Window::Time(tw) => {
                tw.record(bits, now, true);
            }
        }
    }

    fn counts(w: &Window, t: &Tally, now: u64) -> (u64, u64, u64) {
        let c = w.counts(t, now);
        (c.calls, c.failures, c.slow)
    }

    #[test]
    fn count_window_keeps_the_last_n_outcomes() {
        let t = Tally::new();
        let w = Window::count(3);
        for _ in 0..10 {
            rec(&w, &t, CALL, 0);
        }
        assert_eq!(counts(&w, &t, 0), (3, 0, 0));
        rec(&w, &t, CALL | FAIL, 0);
        rec(&w, &t, CALL | FAIL | SLOW, 0);
        assert_eq!(counts(&w, &t, 0), (3, 2, 1));
        for _ in 0..3 {
            rec(&w, &t, CALL, 0);
        }
        assert_eq!(counts(&w, &t, 0), (3, 0, 0));
        assert_eq!(w.lifetime_calls(&t), 15);
        rec(&w, &t, CALL | FAIL, 0);
        w.reset(&t);
        assert_eq!(counts(&w, &t, 0), (0, 0, 0));
    }

    #[test]
    fn fastmod_matches_the_remainder() {
        for size in [1u32, 2, 3, 7, 100, 1000, 65_537, 1_000_000] {
            let Window::Count(w) = Window::count(size) else {
                unreachable!()
            };
            for i in [0u64, 1, 5, 99, 100, 101, 12_345_678, u64::from(u32::MAX)] {
                assert_eq!(w.index(i), (i as u32 % size) as usize, "size {size} i {i}");
            }
        }
    }

    #[test]
    fn time_window_buckets_expire() {
        let t = Tally::new();
        let w = Window::time(10, 3); // 3 buckets of 10 ns
        let base = 1_000_000;
        rec(&w, &t, CALL | FAIL, base);
        rec(&w, &t, CALL, base + 10);
        rec(&w, &t, CALL | SLOW, base + 25);
        assert_eq!(counts(&w, &t, base + 29), (3, 1, 1));
        // The first bucket leaves the window.
        assert_eq!(counts(&w, &t, base + 30), (2, 0, 1));
        assert_eq!(counts(&w, &t, base + 45), (1, 0, 1));
        // A long gap empties it.
        assert_eq!(counts(&w, &t, base + 1_000), (0, 0, 0));
        assert_eq!(w.lifetime_calls(&t), 3);
        // Late clock reads count in the newest bucket.
        rec(&w, &t, CALL, base + 5);
        assert_eq!(counts(&w, &t, base + 1_000), (1, 0, 0));
    }
}
