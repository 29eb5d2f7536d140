//! `RetryConfig`: the retry layer as data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::Backoff;
use super::hedge::HedgeConfig;
use crate::config::{fmt_duration, non_zero_duration, ConfigError, Validate};

/// The most attempts a request may make.
pub const MAX_ATTEMPTS: u32 = 100;

/// Configuration of the [`Retry`](super::Retry) layer.
///
/// Every field has a default, so an empty document is a valid configuration:
/// three attempts, full-jitter backoff from 50ms to 1s, a budget of 20% of
/// requests plus 10 retries a second, no timeouts, no hedging.
///
/// ```toml
/// max_attempts = 3          # including the first attempt
/// attempt_timeout = "500ms" # optional
/// timeout = "2s"            # optional: the whole request, retries included
/// max_retry_after = "10s"
///
/// [backoff]
/// base = "50ms"
/// max = "1s"
/// jitter = "full"
///
/// [budget]
/// ratio = 0.2
/// min_per_second = 10
/// ttl = "10s"
///
/// [hedge]                   # present: hedging on
/// delay = "50ms"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// How many times a request may be sent, **including the first attempt**
    /// (as resilience4j counts; Envoy and Polly count retries only, so their
    /// `num_retries = 2` is `max_attempts = 3` here). A hedge is an attempt.
    /// Default 3; 1 (never retry) to 100. Raise it only together with a
    /// budget and a deadline: each attempt multiplies the load of a failing
    /// backend.
    pub max_attempts: u32,
    /// How long one attempt may take, from when it starts waiting for the
    /// inner service to be ready until its response arrives; a slower attempt
    /// is dropped (cancelled) and counts as a failure. Default: none. Set it
    /// a little above the backend's p99 latency, so that a stuck attempt is
    /// retried while the request's deadline still leaves room.
    #[serde(
        default,
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempt_timeout: Option<Duration>,
    /// How long the whole request may take, retries and waits included.
    /// It becomes the request's deadline (the earlier of it and a deadline
    /// the request already carries), which inner layers also respect when the
    /// request can carry one. Default: none (only the request's own
    /// deadline, if any).
    #[serde(
        default,
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// The longest retry-after hint the layer waits for. A failure whose
    /// hint is longer (or that would end after the request's deadline)
    /// returns at once instead of waiting. Default 10s; more than zero.
    /// Lower it for interactive traffic, raise it for batch work that
    /// would rather wait out an open breaker.
    #[serde(with = "crate::config::duration")]
    pub max_retry_after: Duration,
    /// The wait between attempts when no retry-after hint is given.
    pub backoff: Backoff,
    /// The retry budget shared by every clone of the layer.
    pub budget: BudgetConfig,
    /// Backup requests. Absent (the default): no hedging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge: Option<HedgeConfig>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            attempt_timeout: None,
            timeout: None,
            max_retry_after: Duration::from_secs(10),
            backoff: Backoff::default(),
            budget: BudgetConfig::default(),
            hedge: None,
        }
    }
}

impl Validate for RetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(ConfigError::new(
                "max_attempts",
                self.max_attempts,
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            ));
        }
        if let Some(t) = self.attempt_timeout {
            non_zero_duration("attempt_timeout", t)?;
        }
        if let Some(t) = self.timeout {
            non_zero_duration("timeout", t)?;
        }
        non_zero_duration("max_retry_after", self.max_retry_after)?;
        self.backoff.validate().map_err(|e| e.within("backoff"))?;
        self.budget.validate().map_err(|e| e.within("budget"))?;
        if let Some(h) = &self.hedge {
            h.validate().map_err(|e| e.within("hedge"))?;
        }
        Ok(())
    }
}

/// Configuration of a [`RetryBudget`](super::RetryBudget) (Finagle's retry
/// budget): retries may reach `ratio` of the requests of the last `ttl`,
/// plus `min_per_second` a second.
///
/// With the defaults, a client sending 1,000 requests a second may retry 200
/// of them a second (plus 10); one sending 5 a second may still retry 10 a
/// second. So a backend that fails everything receives at most 1.2 times the
/// traffic (plus the reserve), never `max_attempts` times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Whether retries are budgeted. Default `true`. Turning it off lets
    /// every failing request retry `max_attempts - 1` times: only for tests
    /// and for services that bound retries elsewhere.
    pub enabled: bool,
    /// Retries (and hedges) allowed per request, on top of the reserve, in
    /// steps of 0.001. Default 0.2 (20%, Finagle's and Envoy's default); 0
    /// to 1000. Lower it for backends that fall over under load; 0 leaves
    /// only the reserve.
    pub ratio: f64,
    /// Retries a second that are allowed however few requests there are,
    /// so a quiet client can retry at all. Default 10; at most 1,000,000.
    /// Raise it for low-traffic clients whose every request matters.
    pub min_per_second: u32,
    /// How long a request's deposit (and a retry's withdrawal) counts.
    /// Default 10s; 1s to 60s. Shorter windows react faster to a change of
    /// traffic; longer ones smooth out bursts.
    #[serde(with = "crate::config::duration")]
    pub ttl: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            enabled: true,
            ratio: 0.2,
            min_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

/// The largest budget `ratio`.
pub const MAX_RATIO: f64 = 1000.0;
/// The largest budget `min_per_second`.
pub const MAX_MIN_PER_SECOND: u32 = 1_000_000;

impl Validate for BudgetConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.ratio.is_finite() && (0.0..=MAX_RATIO).contains(&self.ratio)) {
            return Err(ConfigError::new(
                "ratio",
                self.ratio,
                "must be between 0 and 1000",
            ));
        }
        if self.min_per_second > MAX_MIN_PER_SECOND {
            return Err(ConfigError::new(
                "min_per_second",
                self.min_per_second,
                "must be at most 1000000",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.ttl) {
            return Err(ConfigError::new(
                "ttl",
                fmt_duration(self.ttl),
                "must be between 1s and 60s",
            ));
        }
        Ok(())
    }
}
