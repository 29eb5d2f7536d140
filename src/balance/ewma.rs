//! The peak-EWMA latency estimate (the default strategy's metric), kept in
//! atomics so that neither picks nor updates take a lock.
//!
//! The estimate jumps to any sample slower than it at once ("peak"), blends
//! faster samples in with weight `1 - e^(-elapsed/decay)`, and, when read,
//! decays towards zero with the time since its last update, so a replica
//! that was slow once and then got no traffic comes back into play.
//!
//! Unlike tower's `PeakEwma`, which records an error as the quick response it
//! often is, failures are charged here as at least the configured penalty.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Ticks;

/// One replica's estimate: an `f64` of nanoseconds and the ticks of its last
/// update, each in an atomic.
pub(crate) struct PeakEwma {
    bits: AtomicU64,
    at: AtomicU64,
}

/// The decay factor over `elapsed_ns` for a time constant of `tau_ns`.
///
/// Between calls on a busy replica the elapsed time is a tiny fraction of
/// the time constant (microseconds against seconds), where four terms of
/// e^-x's series are exact to within x^4/24 (below 1e-7 for x < 1/32), and
/// cost a few multiplications instead of a call to `exp`.
#[inline]
fn decay(elapsed_ns: u64, tau_ns: f64) -> f64 {
    if elapsed_ns == 0 {
        return 1.0;
    }
    let x = elapsed_ns as f64 / tau_ns;
    if x < 1.0 / 32.0 {
        1.0 - x * (1.0 - x * (0.5 - x * (1.0 / 6.0)))
    } else {
        (-x).exp()
    }
}

impl PeakEwma {
    pub(crate) fn new(initial_ns: f64, now: Ticks) -> PeakEwma {
        PeakEwma {
            bits: AtomicU64::new(initial_ns.to_bits()),
            at: AtomicU64::new(now.0),
        }
    }

    /// The estimate at `now`, in nanoseconds.
    #[inline]
    pub(crate) fn estimate(&self, now: Ticks, tau_ns: f64) -> f64 {
        let value = f64::from_bits(self.bits.load(Ordering::Relaxed));
        let at = self.at.load(Ordering::Relaxed);
        value * decay(now.0.saturating_sub(at), tau_ns)
    }

    /// Folds in one sample of `rtt_ns` observed at `now`.
    pub(crate) fn observe(&self, now: Ticks, rtt_ns: f64, tau_ns: f64) {
        let at = self.at.load(Ordering::Relaxed);
        let w = decay(now.0.saturating_sub(at), tau_ns);
        // A lost race retries with the winner's value; the timestamp is only
        // moved forward, so a late writer cannot make the estimate older.
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let decayed = old * w;
                let next = if rtt_ns > decayed {
                    rtt_ns
                } else {
                    decayed + rtt_ns * (1.0 - w)
                };
                Some(next.to_bits())
            });
        self.at.fetch_max(now.0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAU: f64 = 10e9;

    #[test]
    fn slower_samples_are_taken_at_once_and_faster_ones_blend_in() {
        let t0 = Ticks(1 << 62);
        let e = PeakEwma::new(10e6, t0);
        e.observe(t0, 100e6, TAU);
        assert_eq!(e.estimate(t0, TAU), 100e6);
        // One second later a 10ms sample moves the estimate only a little.
        let t1 = t0.plus(std::time::Duration::from_secs(1));
        e.observe(t1, 10e6, TAU);
        let est = e.estimate(t1, TAU);
        assert!(est > 90e6 && est < 100e6, "{est}");
    }

    #[test]
    fn the_short_decay_matches_exp() {
        for elapsed in [
            1u64,
            1_000,
            1_000_000,
            100_000_000,
            312_000_000,
            313_000_000,
            1 << 40,
        ] {
            let exact = (-(elapsed as f64) / TAU).exp();
            let ours = decay(elapsed, TAU);
            assert!((ours - exact).abs() < 1e-7, "{elapsed}: {ours} vs {exact}");
        }
    }

    #[test]
    fn an_idle_estimate_decays_towards_zero() {
        let t0 = Ticks(1 << 62);
        let e = PeakEwma::new(100e6, t0);
        let later = t0.plus(std::time::Duration::from_secs(10));
        let est = e.estimate(later, TAU);
        assert!((est - 100e6 / std::f64::consts::E).abs() < 1e3, "{est}");
    }
}
