//! `BreakerConfig`: the circuit breaker as data, with presets.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::MAX_HALF_OPEN_CALLS;
use super::window::MAX_BUCKETS;
use crate::config::{fmt_duration, non_zero_duration, ConfigError, Validate};

/// The largest count window.
pub const MAX_WINDOW_CALLS: u32 = 1_000_000;
/// The longest time window.
pub const MAX_WINDOW_DURATION: Duration = Duration::from_secs(3600);
/// Finagle's failure-accrual default, for [`BreakerConfig::consecutive_failures`].
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;

/// Which outcomes the trip conditions look at.
///
/// In TOML, a table tagged by `kind`:
///
/// ```toml
/// [window]
/// kind = "count"   # the last `size` calls
/// size = 100
/// # kind = "time"  # the last `duration`, in `buckets` that roll
/// # duration = "60s"
/// # buckets = 60
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowConfig {
    /// The last `size` calls (resilience4j's COUNT_BASED). Each call costs
    /// one slot write; a window of successes that sees another success
    /// writes nothing.
    Count {
        /// How many calls. Default 100; from 1 to 1,000,000. A larger window
        /// reacts more slowly and more surely.
        size: u32,
    },
    /// The calls of the last `duration`, kept in `buckets` equal buckets
    /// that roll: an outcome leaves the window between `duration -
    /// duration / buckets` and `duration` after it was recorded (resilience4j's
    /// TIME_BASED, with one-second buckets when `buckets` equals the seconds).
    /// Reads the clock once per call: pair it with a coarse clock
    /// ([`BreakerConfig::clock_resolution`]) on hot paths.
    Time {
        /// How far back the window reaches. From 1ms to 1h.
        #[serde(with = "crate::config::duration")]
        duration: Duration,
        /// How many buckets: from 1 to 1,024, each at least 1ms wide.
        /// Default 10. More buckets, smoother expiry.
        #[serde(default = "default_buckets")]
        buckets: u32,
    },
}

fn default_buckets() -> u32 {
    10
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig::Count { size: 100 }
    }
}

impl Validate for WindowConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            WindowConfig::Count { size } => {
                if size == 0 || size > MAX_WINDOW_CALLS {
                    return Err(ConfigError::new(
                        "size",
                        size,
                        format!("must be from 1 to {MAX_WINDOW_CALLS}"),
                    ));
                }
            }
            WindowConfig::Time { duration, buckets } => {
                if duration > MAX_WINDOW_DURATION {
                    return Err(ConfigError::new(
                        "duration",
                        fmt_duration(duration),
                        "must be at most 1h",
                    ));
                }
                if buckets == 0 || buckets > MAX_BUCKETS {
                    return Err(ConfigError::new(
                        "buckets",
                        buckets,
                        format!("must be from 1 to {MAX_BUCKETS}"),
                    ));
                }
                if duration / buckets < Duration::from_millis(1) {
                    return Err(ConfigError::new(
                        "duration",
                        fmt_duration(duration),
                        format!("must give each of the {buckets} buckets at least 1ms"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What an open breaker does to callers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenMode {
    /// `poll_ready` is ready at once and the call fails with
    /// [`BreakerError::Open`](super::BreakerError::Open): for the edge of a
    /// stack, where the caller wants an answer now. The default.
    #[default]
    FailFast,
    /// `poll_ready` is `Pending` while open (and while half-open has no free
    /// probe slot), and wakes when that may change: for a replica inside a
    /// balancer, which then sends traffic to the other replicas.
    NotReady,
}

/// The state a breaker starts in (change it later through the handle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialState {
    /// Normal operation. The default.
    #[default]
    Closed,
    /// Refuses every call until told otherwise.
    ForcedOpen,
    /// Passes every call and records nothing.
    Disabled,
    /// Records and emits events, never trips: roll a breaker out with this,
    /// watch what it would have done, then switch it to closed.
    MetricsOnly,
}

/// Configuration of the [`CircuitBreaker`](super::CircuitBreaker).
///
/// Defaults follow resilience4j's: a count window of 100 calls, trips at a
/// 50% failure rate once 100 calls are in the window, stays open 60 s, then
/// admits 10 probes. Slow-call detection and the consecutive-failures
/// condition are off until configured.
///
/// ```toml
/// failure_rate_threshold = 50.0
/// minimum_calls = 100
/// slow_call_duration = "2s"         # off when absent
/// slow_call_rate_threshold = 100.0
/// consecutive_failures = 5          # off when absent
/// open_duration = "60s"
/// open_duration_multiplier = 2.0    # 1.0: no growth
/// max_open_duration = "10m"
/// open_jitter = 0.2
/// half_open_calls = 10
/// max_half_open_duration = "60s"
/// open_mode = "fail_fast"           # or "not_ready"
/// initial_state = "closed"          # forced_open, disabled, metrics_only
///
/// [window]
/// kind = "count"
/// size = 100
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Which recent outcomes the trip conditions read. Default: the last 100
    /// calls.
    pub window: WindowConfig,
    /// How many calls the window must hold before the rate conditions are
    /// evaluated. Default 100; at least 1. Lower it for low-traffic
    /// backends, or the breaker never has enough calls to judge. With a count
    /// window, a value above the window's size acts as the size.
    pub minimum_calls: u32,
    /// Trip when at least this percentage of the window's calls failed.
    /// Default 50.0; in (0, 100], to 0.01. Lower it for backends whose
    /// failures are expensive to wait out.
    pub failure_rate_threshold: f64,
    /// A call that takes longer than this (from the hand-off to the inner
    /// service to its response, whatever the outcome) is slow. Default: off.
    /// Enabling it costs two clock reads per call (one atomic load each with a
    /// coarse clock). Set it a little above the latency you promise callers.
    #[serde(
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_call_duration: Option<Duration>,
    /// Trip when at least this percentage of the window's calls were slow.
    /// Default 100.0; in (0, 100], to 0.01. Used only with
    /// `slow_call_duration`.
    pub slow_call_rate_threshold: f64,
    /// Trip after this many failures in a row, without waiting for
    /// `minimum_calls` (Finagle's failure accrual; 5 is its default). Default:
    /// off; at least 1. Useful for replicas that fail hard and suddenly.
    pub consecutive_failures: Option<u32>,
    /// How long the breaker stays open after its first trip. Default 60s;
    /// above zero. Shorter for backends that recover quickly (a restarted
    /// replica), longer for ones that need time.
    #[serde(with = "crate::config::duration")]
    pub open_duration: Duration,
    /// Each trip that follows another without the breaker closing in between
    /// multiplies the open duration by this. Default 1.0 (no growth); from
    /// 1.0 to 100.0. 2.0 backs off quickly from a backend that stays down.
    pub open_duration_multiplier: f64,
    /// The longest a grown open duration may be. Default 10m; at least
    /// `open_duration`.
    #[serde(with = "crate::config::duration")]
    pub max_open_duration: Duration,
    /// Shortens each open duration by a random fraction of up to this much,
    /// so that a fleet of clients does not probe in lock-step. Default 0.0;
    /// from 0.0 to 1.0 (0.2 is a good choice for fleets).
    pub open_jitter: f64,
    /// How many probe calls half-open admits; once all have finished, the
    /// breaker closes if their failure and slow rates are under the
    /// thresholds and reopens otherwise. Callers beyond them are refused, not
    /// queued. Default 10; from 1 to 255.
    pub half_open_calls: u32,
    /// The longest half-open may wait for its probes to finish before it
    /// reopens (probes that hang, or reservations never used). Default 60s;
    /// above zero. Keep it above the inner service's timeout.
    #[serde(with = "crate::config::duration")]
    pub max_half_open_duration: Duration,
    /// What an open breaker does to callers: fail fast (the default) or
    /// report not-ready (inside a balancer).
    pub open_mode: OpenMode,
    /// The state the breaker starts in. Default closed.
    pub initial_state: InitialState,
    /// When set, the breaker reads a coarse clock ticked at this resolution
    /// (one atomic load per read) instead of tokio's; building it then needs
    /// a tokio runtime. Default: off. Set it (1ms-10ms) with a time window or
    /// slow-call detection on hot paths; it adds at most one resolution of
    /// error to latencies and bucket edges.
    #[serde(
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub clock_resolution: Option<Duration>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: WindowConfig::default(),
            minimum_calls: 100,
            failure_rate_threshold: 50.0,
            slow_call_duration: None,
            slow_call_rate_threshold: 100.0,
            consecutive_failures: None,
            open_duration: Duration::from_secs(60),
            open_duration_multiplier: 1.0,
            max_open_duration: Duration::from_secs(600),
            open_jitter: 0.0,
            half_open_calls: 10,
            max_half_open_duration: Duration::from_secs(60),
            open_mode: OpenMode::FailFast,
            initial_state: InitialState::Closed,
            clock_resolution: None,
        }
    }
}

impl BreakerConfig {
    /// resilience4j's defaults (the same as `Default`).
    pub fn standard() -> BreakerConfig {
        BreakerConfig::default()
    }

    /// For the edge of a stack that must shed a failing backend quickly:
    /// a window of 20 calls judged from 10, five failures in a row also trip,
    /// 10s open growing to 2m, 3 probes.
    pub fn sensitive() -> BreakerConfig {
        BreakerConfig {
            window: WindowConfig::Count { size: 20 },
            minimum_calls: 10,
            consecutive_failures: Some(DEFAULT_CONSECUTIVE_FAILURES),
            open_duration: Duration::from_secs(10),
            open_duration_multiplier: 2.0,
            max_open_duration: Duration::from_secs(120),
            open_jitter: 0.2,
            half_open_calls: 3,
            max_half_open_duration: Duration::from_secs(30),
            ..BreakerConfig::default()
        }
    }

    /// For one replica inside a balancer: not-ready when open, so the
    /// balancer skips it; a window of 50 calls judged from 20, five failures
    /// in a row trip; 5s open doubling to 1m with jitter; 3 probes.
    pub fn replica() -> BreakerConfig {
        BreakerConfig {
            window: WindowConfig::Count { size: 50 },
            minimum_calls: 20,
            consecutive_failures: Some(DEFAULT_CONSECUTIVE_FAILURES),
            open_duration: Duration::from_secs(5),
            open_duration_multiplier: 2.0,
            max_open_duration: Duration::from_secs(60),
            open_jitter: 0.2,
            half_open_calls: 3,
            max_half_open_duration: Duration::from_secs(30),
            open_mode: OpenMode::NotReady,
            ..BreakerConfig::default()
        }
    }
}

fn check_percent(field: &str, v: f64) -> Result<(), ConfigError> {
    if !(v > 0.0 && v <= 100.0) {
        return Err(ConfigError::new(field, v, "must be in (0, 100]"));
    }
    Ok(())
}

impl Validate for BreakerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.window.validate().map_err(|e| e.within("window"))?;
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", 0, "must be at least 1"));
        }
        check_percent("failure_rate_threshold", self.failure_rate_threshold)?;
        check_percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if let Some(d) = self.slow_call_duration {
            non_zero_duration("slow_call_duration", d)?;
        }
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                "consecutive_failures",
                0,
                "must be at least 1",
            ));
        }
        non_zero_duration("open_duration", self.open_duration)?;
        let m = self.open_duration_multiplier;
        if !(1.0..=100.0).contains(&m) {
            return Err(ConfigError::new(
                "open_duration_multiplier",
                m,
                "must be from 1.0 to 100.0",
            ));
        }
        if self.max_open_duration < self.open_duration {
            return Err(ConfigError::new(
                "max_open_duration",
                fmt_duration(self.max_open_duration),
                "must be at least open_duration",
            ));
        }
        if !(0.0..=1.0).contains(&self.open_jitter) {
            return Err(ConfigError::new(
                "open_jitter",
                self.open_jitter,
                "must be from 0.0 to 1.0",
            ));
        }
        if self.half_open_calls == 0 || self.half_open_calls > MAX_HALF_OPEN_CALLS {
            return Err(ConfigError::new(
                "half_open_calls",
                self.half_open_calls,
                format!("must be from 1 to {MAX_HALF_OPEN_CALLS}"),
            ));
        }
        non_zero_duration("max_half_open_duration", self.max_half_open_duration)?;
        if let Some(r) = self.clock_resolution {
            non_zero_duration("clock_resolution", r)?;
        }
        Ok(())
    }
}
