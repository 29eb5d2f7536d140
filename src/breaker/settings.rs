//! The configuration as the core uses it: thresholds in integers, and the
//! open-duration growth and jitter that transitions draw from.

use std::time::Duration;

use super::config::{BreakerConfig, OpenMode, WindowConfig};

/// The configuration, turned into what the hot path compares with.
pub(crate) struct Settings {
    /// Thresholds in hundredths of a percent.
    pub(super) failure_bp: u64,
    pub(super) slow_bp: u64,
    pub(super) min_calls: u64,
    pub(crate) slow_nanos: Option<u64>,
    pub(super) consecutive: Option<u64>,
    pub(super) open_duration: Duration,
    pub(super) multiplier: f64,
    pub(super) max_open: Duration,
    pub(super) jitter: f64,
    pub(crate) half_open_calls: u32,
    pub(super) max_half_open: Duration,
    pub(crate) mode: OpenMode,
}

fn basis_points(percent: f64) -> u64 {
    ((percent * 100.0).round() as u64).clamp(1, 10_000)
}

impl Settings {
    pub(super) fn new(c: &BreakerConfig) -> Settings {
        let min_calls = match c.window {
            WindowConfig::Count { size } => c.minimum_calls.min(size),
            WindowConfig::Time { .. } => c.minimum_calls,
        };
        Settings {
            failure_bp: basis_points(c.failure_rate_threshold),
            slow_bp: basis_points(c.slow_call_rate_threshold),
            min_calls: u64::from(min_calls.max(1)),
            slow_nanos: c
                .slow_call_duration
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            consecutive: c.consecutive_failures.map(u64::from),
            open_duration: c.open_duration,
            multiplier: c.open_duration_multiplier,
            max_open: c.max_open_duration.max(c.open_duration),
            jitter: c.open_jitter.clamp(0.0, 1.0),
            half_open_calls: c
                .half_open_calls
                .clamp(1, super::state::MAX_HALF_OPEN_CALLS),
            max_half_open: c.max_half_open_duration,
            mode: c.open_mode,
        }
    }

    /// Whether `failed` of `calls` reaches the failure-rate threshold.
    #[inline]
    pub(super) fn fails(&self, failed: u64, calls: u64) -> bool {
        failed * 10_000 >= self.failure_bp * calls
    }

    #[inline]
    pub(super) fn too_slow(&self, slow: u64, calls: u64) -> bool {
        self.slow_nanos.is_some() && slow * 10_000 >= self.slow_bp * calls
    }
}

/// What only transitions touch, under the mutex.
pub(super) struct SlowPath {
    /// Trips since the breaker last closed: the exponent of the open growth.
    pub(super) consecutive_trips: u32,
    pub(super) rng: u64,
}

impl SlowPath {
    /// splitmix64: a jitter source needs no more.
    pub(super) fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The open duration of the next trip: grown by the multiplier for each
    /// trip since the breaker last closed, capped, then shortened by jitter.
    pub(super) fn open_duration(&mut self, s: &Settings) -> Duration {
        let base = s.open_duration.as_secs_f64();
        let factor = s.multiplier.powi(self.consecutive_trips.min(1_000) as i32);
        let grown = base * factor;
        let capped = if grown.is_finite() && grown < s.max_open.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            s.max_open
        };
        self.consecutive_trips = self.consecutive_trips.saturating_add(1);
        if s.jitter > 0.0 {
            let cut = s.jitter * self.next_unit();
            Duration::from_secs_f64(capped.as_secs_f64() * (1.0 - cut))
        } else {
            capped
        }
    }
}
