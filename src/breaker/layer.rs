//! `BreakerBuilder` and `CircuitBreakerLayer`: the ways to make a breaker.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::config::{BreakerConfig, InitialState, OpenMode, WindowConfig};
use super::core::Core;
use super::service::CircuitBreaker;
use crate::classify::ErrorIsFailure;
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};
use crate::NoRuntime;

/// Why a breaker could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerBuildError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `clock_resolution` asks for a coarse clock outside a tokio runtime.
    #[error(transparent)]
    NoRuntime(#[from] NoRuntime),
}

/// Builds a [`CircuitBreaker`] (or a [`CircuitBreakerLayer`]). Start with
/// [`CircuitBreaker::builder`]; every setting is a field of [`BreakerConfig`],
/// validated the same way by [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use tower::service_fn;
/// use tower_fleet::breaker::{CircuitBreaker, OpenMode};
///
/// # fn main() -> Result<(), tower_fleet::breaker::BreakerBuildError> {
/// let backend = service_fn(|req: String| async move { Ok::<_, std::io::Error>(req) });
/// let breaker = CircuitBreaker::builder()
///     .count_window(50)
///     .minimum_calls(20)
///     .failure_rate_threshold(25.0)
///     .slow_call_duration(Duration::from_millis(500))
///     .consecutive_failures(5)
///     .open_duration(Duration::from_secs(10))
///     .open_mode(OpenMode::NotReady)
///     .build(backend)?;
/// # let _ = breaker;
/// # Ok(()) }
/// ```
pub struct BreakerBuilder<C = ErrorIsFailure> {
    config: BreakerConfig,
    clock: Option<Clock>,
    classify: C,
    seed: Option<u64>,
}

impl<C> fmt::Debug for BreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker<(), ErrorIsFailure> {
    /// A builder with the default configuration (resilience4j's defaults;
    /// see [`BreakerConfig`]) and the default classifier (`Err` fails).
    pub fn builder() -> BreakerBuilder {
        BreakerBuilder {
            config: BreakerConfig::default(),
            clock: None,
            classify: ErrorIsFailure,
            seed: None,
        }
    }
}

impl<S> CircuitBreaker<S, ErrorIsFailure> {
    /// A breaker around `inner` with this configuration.
    pub fn new(inner: S, config: BreakerConfig) -> Result<Self, BreakerBuildError> {
        CircuitBreaker::builder().config(config).build(inner)
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl<C> BreakerBuilder<C> {
    /// Takes every setting of a [`BreakerConfig`].
    #[must_use]
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// A count window of the last `size` calls.
    #[must_use]
    pub fn count_window(mut self, size: u32) -> Self {
        self.config.window = WindowConfig::Count { size };
        self
    }

    /// A time window of the last `duration`, in `buckets` buckets.
    #[must_use]
    pub fn time_window(mut self, duration: Duration, buckets: u32) -> Self {
        self.config.window = WindowConfig::Time { duration, buckets };
        self
    }

    setter!(
        /// See [`BreakerConfig::minimum_calls`].
        minimum_calls: u32
    );
    setter!(
        /// See [`BreakerConfig::failure_rate_threshold`].
        failure_rate_threshold: f64
    );
    setter!(
        /// See [`BreakerConfig::slow_call_rate_threshold`].
        slow_call_rate_threshold: f64
    );
    setter!(
        /// See [`BreakerConfig::open_duration`].
        open_duration: Duration
    );
    setter!(
        /// See [`BreakerConfig::open_duration_multiplier`].
        open_duration_multiplier: f64
    );
    setter!(
        /// See [`BreakerConfig::max_open_duration`].
        max_open_duration: Duration
    );
    setter!(
        /// See [`BreakerConfig::open_jitter`].
        open_jitter: f64
    );
    setter!(
        /// See [`BreakerConfig::half_open_calls`].
        half_open_calls: u32
    );
    setter!(
        /// See [`BreakerConfig::max_half_open_duration`].
        max_half_open_duration: Duration
    );
    setter!(
        /// See [`BreakerConfig::open_mode`].
        open_mode: OpenMode
    );
    setter!(
        /// See [`BreakerConfig::initial_state`].
        initial_state: InitialState
    );

    /// Turns on slow-call detection: calls longer than `limit` are slow.
    #[must_use]
    pub fn slow_call_duration(mut self, limit: Duration) -> Self {
        self.config.slow_call_duration = Some(limit);
        self
    }

    /// Trips after `n` failures in a row, without waiting for
    /// `minimum_calls`.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.config.consecutive_failures = Some(n);
        self
    }

    /// Finagle's failure accrual: trips after
    /// [`DEFAULT_CONSECUTIVE_FAILURES`](super::DEFAULT_CONSECUTIVE_FAILURES)
    /// (5) failures in a row.
    #[must_use]
    pub fn failure_accrual(self) -> Self {
        self.consecutive_failures(super::config::DEFAULT_CONSECUTIVE_FAILURES)
    }

    /// Reads a coarse clock ticked every `resolution` (see
    /// [`BreakerConfig::clock_resolution`]).
    #[must_use]
    pub fn clock_resolution(mut self, resolution: Duration) -> Self {
        self.config.clock_resolution = Some(resolution);
        self
    }

    /// The clock to read (tokio's by default); overrides `clock_resolution`.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Seeds the open-duration jitter, for reproducible runs (random by default).
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How outcomes are judged (default [`ErrorIsFailure`]): any
    /// [`Classify`](crate::classify::Classify), e.g. a closure
    /// `|r: &Result<Res, E>| -> Outcome`. It is cloned into each call.
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> BreakerBuilder<C2> {
        BreakerBuilder {
            config: self.config,
            clock: self.clock,
            classify,
            seed: self.seed,
        }
    }

    /// Validates the configuration and makes the clock.
    fn prepare(&self) -> Result<Clock, BreakerBuildError> {
        self.config.validate()?;
        match (&self.clock, self.config.clock_resolution) {
            (Some(c), _) => Ok(c.clone()),
            (None, Some(res)) => Ok(Clock::coarse(res)?),
            (None, None) => Ok(Clock::default()),
        }
    }

    /// A breaker around `inner`. Fails on an invalid configuration, or when
    /// `clock_resolution` is set outside a tokio runtime.
    pub fn build<S>(self, inner: S) -> Result<CircuitBreaker<S, C>, BreakerBuildError> {
        let clock = self.prepare()?;
        let core = Arc::new(Core::new(&self.config, clock, self.seed));
        Ok(CircuitBreaker::from_parts(inner, core, self.classify))
    }

    /// A layer that puts a breaker of its own around every service it wraps.
    pub fn layer(self) -> Result<CircuitBreakerLayer<C>, BreakerBuildError> {
        let clock = self.prepare()?;
        Ok(CircuitBreakerLayer {
            config: Arc::new(self.config),
            clock,
            classify: self.classify,
            seed: self.seed,
            made: Arc::default(),
        })
    }
}

/// Puts a [`CircuitBreaker`] around a service, for `tower::ServiceBuilder`.
/// Each service it wraps gets a breaker of its own (one per replica); clones
/// of one wrapped service share theirs.
///
/// ```
/// use tower::{service_fn, ServiceBuilder};
/// use tower_fleet::breaker::{BreakerConfig, CircuitBreakerLayer};
///
/// let layer = CircuitBreakerLayer::new(BreakerConfig::replica()).unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|req: u8| async move { Ok::<_, std::io::Error>(req) }));
/// # let _ = svc;
/// ```
pub struct CircuitBreakerLayer<C = ErrorIsFailure> {
    config: Arc<BreakerConfig>,
    clock: Clock,
    classify: C,
    seed: Option<u64>,
    /// Breakers made so far: salts the jitter seed of each.
    made: Arc<std::sync::atomic::AtomicU64>,
}

impl<C: Clone> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            config: self.config.clone(),
            clock: self.clock.clone(),
            classify: self.classify.clone(),
            seed: self.seed,
            made: self.made.clone(),
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CircuitBreakerLayer {
    /// A layer with this configuration and the default classifier. Fails on
    /// an invalid configuration, or when `clock_resolution` is set outside a
    /// tokio runtime.
    pub fn new(config: BreakerConfig) -> Result<CircuitBreakerLayer, BreakerBuildError> {
        CircuitBreaker::builder().config(config).layer()
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// A layer that skips validation and uses tokio's clock: for callers that
    /// already hold the validation error and only need the types to line up.
    pub(crate) fn unvalidated(config: BreakerConfig, classify: C) -> CircuitBreakerLayer<C> {
        CircuitBreakerLayer {
            config: Arc::new(config),
            clock: Clock::default(),
            classify,
            seed: None,
            made: Arc::default(),
        }
    }

    /// The configuration every breaker of this layer gets.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        // Each breaker of a seeded layer gets its own jitter stream.
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = self.seed.map(|s| s ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let core = Arc::new(Core::new(&self.config, self.clock.clone(), seed));
        CircuitBreaker::from_parts(inner, core, self.classify.clone())
    }
}
