//! Sliding windows of outcomes: the last N calls, or the last T of time in B
//! buckets. O(1) work per call, atomics only, no lock and no allocation.
//!
//! Both windows keep their running totals in a [`Tally`]: `(calls, failures)`
//! packed in one `AtomicU64` and slow calls in another. Every change to a
//! slot or bucket is paired with the same change to the tally, so the tally
//! always equals the sum of the window's contents once concurrent recorders
//! have finished; while they run it may lag by one outcome per recorder. The
//! two 32-bit halves of the packed word are biased by 2^31 so that such a
//! transient negative never borrows from its neighbour.

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
            self.slow.fetch_add(ds as u64, Relaxed).wrapping_add(ds as u64)
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
            retired: AtomicU64::new(0),
        })
    }

    /// Empties the window (a transition to closed). Rare path.
    pub(crate) fn reset(&self, tally: &Tally) {
        match self {
            Window::Count(w) => w.reset(tally),
            Window::Time(w) => w.clear(tally, 0, w.buckets.len() as u64),
        }
    }

    /// The counts in the window at `now`.
    pub(crate) fn counts(&self, tally: &Tally, now: u64) -> Counts {
        if let Window::Time(w) = self {
            w.slot_at(tally, now);
        }
        tally.counts()
    }

    /// Outcomes ever recorded through the window.
    pub(crate) fn lifetime_calls(&self, tally: &Tally) -> u64 {
        match self {
            Window::Count(_) => tally.pos.load(Relaxed),
            Window::Time(w) => w.retired.load(Relaxed).wrapping_add(tally.counts().calls),
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
    /// Calls in the low 32 bits, failures in the high 32 (unbiased).
    cf: AtomicU64,
    slow: AtomicU64,
}

/// The last `buckets * width` nanoseconds, in buckets that roll.
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    width: u64,
    /// The newest bucket's index in time (`ticks / width`) shifted left by
    /// `SLOT_BITS`, or-ed with its slot in `buckets`.
    cursor: AtomicU64,
    /// Calls that have left the window, for the lifetime count.
    retired: AtomicU64,
}

impl TimeWindow {
    /// The slot of the bucket that holds `now`, rolling the window forward
    /// (and clearing the buckets it passes) when `now` is past the newest.
    #[inline]
    fn slot_at(&self, tally: &Tally, now: u64) -> usize {
        let c = self.cursor.load(Relaxed);
        let head = c >> SLOT_BITS;
        let start = head.wrapping_mul(self.width);
        if now.wrapping_sub(start) < self.width {
            return (c & ((1 << SLOT_BITS) - 1)) as usize;
        }
        self.roll(tally, c, now)
    }

    #[cold]
    fn roll(&self, tally: &Tally, mut c: u64, now: u64) -> usize {
        let n = self.buckets.len() as u64;
        let idx = now / self.width;
        loop {
            let head = c >> SLOT_BITS;
            let slot = c & ((1 << SLOT_BITS) - 1);
            if idx <= head {
                // A clock read that lags the newest bucket: count it there.
                return slot as usize;
            }
            let new_slot = idx % n;
            let next = (idx << SLOT_BITS) | new_slot;
            match self.cursor.compare_exchange(c, next, Relaxed, Relaxed) {
                Ok(_) => {
                    let passed = (idx - head).min(n);
                    // Clear the `passed` buckets up to and including the new one.
                    let first = (new_slot + n - (passed - 1)) % n;
                    self.clear(tally, first, passed);
                    return new_slot as usize;
                }
                Err(actual) => c = actual,
            }
        }
    }

    /// Empties `count` buckets from slot `first` on, taking them off the tally.
    fn clear(&self, tally: &Tally, first: u64, count: u64) {
        let n = self.buckets.len() as u64;
        let (mut dc, mut df, mut ds) = (0i64, 0i64, 0i64);
        for k in 0..count.min(n) {
            let b = &self.buckets[((first + k) % n) as usize];
            let cf = b.cf.swap(0, Relaxed);
            dc -= (cf & LOW) as i64;
            df -= (cf >> 32) as i64;
            ds -= b.slow.swap(0, Relaxed) as i64;
        }
        if dc != 0 || df != 0 || ds != 0 {
            self.retired.fetch_add(dc.unsigned_abs(), Relaxed);
            tally.add(dc, df, ds, false);
        }
    }

    /// Records one outcome at `now` (ticks); returns the window's counts.
    #[inline]
    pub(crate) fn record(&self, tally: &Tally, bits: u8, now: u64, read_slow: bool) -> Counts {
        let b = &self.buckets[self.slot_at(tally, now)];
        let df = i64::from(bits & FAIL != 0);
        let d = pack(1, df);
        b.cf.fetch_add(d, Relaxed);
        let ds = i64::from(bits & SLOW != 0);
        if ds != 0 {
            b.slow.fetch_add(1, Relaxed);
        }
        tally.add(1, df, ds, read_slow)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn rec(w: &Window, t: &Tally, bits: u8, now: u64) {
        match w {
            Window::Count(c) => {
                c.record(t, bits, true);
            }
            Window::Time(tw) => {
                tw.record(t, bits, now, true);
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
            let Window::Count(w) = Window::count(size) else { unreachable!() };
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
