//! Hedging ("backup requests", from Dean and Barroso's "The Tail at Scale"):
//! its configuration, and the latency histogram behind percentile delays.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Ticks;
use crate::config::{fmt_duration, ConfigError, Validate};

/// Configuration of hedging: when to send a backup copy of a request that
/// has not answered yet.
///
/// ```toml
/// [hedge]
/// delay = "20ms"        # fixed delay, or the floor of the percentile delay
/// percentile = 0.95     # optional: hedge after the p95 of recent attempts
/// window = "10s"
/// min_samples = 100
/// ```
///
/// With `percentile`, a lock-free log-linear histogram collects the latency
/// of every attempt that completes: 16 buckets per power of two (so the
/// delay is at most 1/16 above the true percentile), two generations that
/// rotate every `window`, the percentile computed once per rotation. Reading
/// the delay on the request path is one atomic load; recording a latency is
/// two clock reads and one atomic add.
///
/// A hedge is an attempt: it counts toward `max_attempts`, withdraws from
/// the retry budget (when the budget is empty, no hedge is sent), and carries
/// the next attempt mark. Only retryable requests that can be copied are
/// hedged, and only once, while their first attempt is in flight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HedgeConfig {
    /// How long the first attempt may run before the backup is sent; with
    /// `percentile`, the least delay. Default 50ms; zero sends both copies at
    /// once (doubling load, up to the budget), at most 1h.
    #[serde(with = "crate::config::duration")]
    pub delay: Duration,
    /// When set, hedge after this percentile of the latencies of recent
    /// attempts (0.95 is p95), never sooner than `delay`. Between 0 and 1,
    /// exclusive. Default: none (a fixed delay). A high percentile hedges
    /// only the tail: p95 sends about 5% more requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// How long latencies count toward the percentile: the delay is computed
    /// from the last full window. Default 10s; 100ms to 1h.
    #[serde(with = "crate::config::duration")]
    pub window: Duration,
    /// The fewest latencies a window needs before its percentile is used; a
    /// window with fewer sends no hedges. Default 100; at least 1.
    pub min_samples: u32,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            delay: Duration::from_millis(50),
            percentile: None,
            window: Duration::from_secs(10),
            min_samples: 100,
        }
    }
}

impl HedgeConfig {
    /// Hedging after a fixed delay.
    pub fn after(delay: Duration) -> HedgeConfig {
        HedgeConfig {
            delay,
            ..HedgeConfig::default()
        }
    }

    /// Hedging after `percentile` (0.95 is p95) of recent latencies, never
    /// sooner than `floor`.
    pub fn at_percentile(percentile: f64, floor: Duration) -> HedgeConfig {
        HedgeConfig {
            delay: floor,
            percentile: Some(percentile),
            ..HedgeConfig::default()
        }
    }
}

impl Validate for HedgeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.delay > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "delay",
                fmt_duration(self.delay),
                "must be at most 1h",
            ));
        }
        if let Some(p) = self.percentile {
            if !(p.is_finite() && p > 0.0 && p < 1.0) {
                return Err(ConfigError::new(
                    "percentile",
                    p,
                    "must be between 0 and 1, exclusive",
                ));
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.window) {
            return Err(ConfigError::new(
                "window",
                fmt_duration(self.window),
                "must be between 100ms and 1h",
            ));
        }
        if self.min_samples == 0 {
            return Err(ConfigError::new("min_samples", 0, "must be at least 1"));
        }
        Ok(())
    }
}

/// Latencies are counted in units of 1024 ns.
const SHIFT: u32 = 10;
/// Values below this are counted exactly; above, 16 buckets per power of two.
const LINEAR: u64 = 16;
/// Latencies above 2^40 units (about 13 days) share the last bucket.
const TOP_BIT: u32 = 40;
const BUCKET_COUNT: usize = ((TOP_BIT - 3) * 16) as usize;
const NO_DELAY: u64 = u64::MAX;

fn bucket_of(latency: Duration) -> usize {
    let v = u64::try_from(latency.as_nanos() >> SHIFT)
        .unwrap_or(u64::MAX)
        .min((1 << TOP_BIT) - 1);
    if v < LINEAR {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros();
    ((octave - 3) * 16) as usize + ((v >> (octave - 4)) & 15) as usize
}

/// The upper end of a bucket (exclusive), in nanoseconds.
fn bucket_top(index: usize) -> u64 {
    let i = index as u64;
    let units = if i < LINEAR {
        i + 1
    } else {
        let octave = i / 16 + 3;
        (16 + i % 16 + 1) << (octave - 4)
    };
    units << SHIFT
}

/// Collects attempt latencies and keeps the hedge delay of the last window.
pub(crate) struct LatencyTracker {
    generations: [Box<[AtomicU64]>; 2],
    current: AtomicUsize,
    rotated_at: AtomicU64,
    window: u64,
    percentile: f64,
    min_samples: u64,
    floor: Duration,
    delay: AtomicU64,
    rotating: Mutex<()>,
}

impl LatencyTracker {
    pub(crate) fn new(config: &HedgeConfig, percentile: f64, now: Ticks) -> LatencyTracker {
        let generation = || {
            (0..BUCKET_COUNT)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[_]>>()
        };
        LatencyTracker {
            generations: [generation(), generation()],
            current: AtomicUsize::new(0),
            rotated_at: AtomicU64::new(now.0),
            window: u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX),
            percentile,
            min_samples: u64::from(config.min_samples),
            floor: config.delay,
            delay: AtomicU64::new(NO_DELAY),
            rotating: Mutex::new(()),
        }
    }

    /// The hedge delay: the percentile of the last full window, at least the
    /// floor, or `None` while no window had enough samples.
    #[inline]
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay.load(Ordering::Relaxed) {
            NO_DELAY => None,
            nanos => Some(Duration::from_nanos(nanos).max(self.floor)),
        }
    }

    pub(crate) fn record(&self, latency: Duration, now: Ticks) {
        let generation = &self.generations[self.current.load(Ordering::Acquire)];
        generation[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
        if now
            .0
            .saturating_sub(self.rotated_at.load(Ordering::Relaxed))
            >= self.window
        {
            self.rotate(now);
        }
    }

    #[cold]
    fn rotate(&self, now: Ticks) {
        // One rotation at a time; callers that find it taken just go on.
        let Ok(_guard) = self.rotating.try_lock() else {
            return;
        };
        let last = self.rotated_at.load(Ordering::Relaxed);
        let elapsed = now.0.saturating_sub(last);
        if elapsed < self.window {
            return;
        }
        let current = self.current.load(Ordering::Acquire);
        // A window that ended long ago says nothing about latency now.
        let delay = if elapsed >= self.window.saturating_mul(2) {
            None
        } else {
            self.percentile_of(&self.generations[current])
        };
        self.delay
            .store(delay.unwrap_or(NO_DELAY), Ordering::Relaxed);
        let next = 1 - current;
        for bucket in self.generations[next].iter() {
            bucket.store(0, Ordering::Relaxed);
        }
        self.current.store(next, Ordering::Release);
        self.rotated_at.store(now.0, Ordering::Relaxed);
        tracing::debug!(delay = ?delay, "hedge delay recomputed");
    }

    fn percentile_of(&self, buckets: &[AtomicU64]) -> Option<u64> {
        let counts: Vec<u64> = buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total < self.min_samples || total == 0 {
            return None;
        }
        let rank = ((self.percentile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_top(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_close_to_their_values() {
        let mut last = 0;
        for micros in (0..2_000_000u64).step_by(997) {
            let d = Duration::from_micros(micros);
            let i = bucket_of(d);
            assert!(i >= last && i < BUCKET_COUNT);
            last = i;
            let top = bucket_top(i) as f64;
            let nanos = d.as_nanos() as f64;
            assert!(top > nanos, "{micros}us lands below its bucket's top");
            assert!(
                top <= (nanos * 17.0 / 16.0).max(2048.0) + 1024.0,
                "{micros}us: top {top}"
            );
        }
        assert_eq!(
            bucket_of(Duration::from_secs(u64::MAX / 4)),
            BUCKET_COUNT - 1
        );
    }

    #[test]
    fn the_delay_is_the_percentile_of_the_last_full_window() {
        let config = HedgeConfig {
            min_samples: 10,
            ..HedgeConfig::at_percentile(0.9, Duration::from_millis(1))
        };
        let t0 = Ticks(1 << 62);
        let tracker = LatencyTracker::new(&config, 0.9, t0);
        for ms in 1..=100 {
            tracker.record(Duration::from_millis(ms), t0);
        }
        assert_eq!(tracker.delay(), None, "no window has ended yet");
        tracker.record(Duration::from_millis(50), t0.plus(config.window));
        let d = tracker.delay().unwrap();
        assert!(
            d >= Duration::from_millis(90) && d <= Duration::from_millis(96),
            "{d:?}"
        );
        // A window with too few samples turns hedging off.
        tracker.record(Duration::from_millis(50), t0.plus(config.window * 2));
        assert_eq!(tracker.delay(), None);
    }
}
