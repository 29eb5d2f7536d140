//! `RetryBuilder` and `RetryLayer`: the ways to make a `Retry`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::backoff::Backoff;
use super::budget::RetryBudget;
use super::config::{BudgetConfig, RetryConfig};
use super::handle::{RetryHandle, Stats};
use super::hedge::{HedgeConfig, LatencyTracker};
use super::policy::Policy;
use super::service::{Retry, Shared};
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};

/// Builds a [`Retry`] service or a [`RetryLayer`]. Start with
/// [`Retry::builder`]; every setting defaults to [`RetryConfig::default`].
///
/// ```
/// use std::time::Duration;
/// use tower_fleet::retry::{Backoff, Jitter, Retry};
///
/// let layer = Retry::builder()
///     .max_attempts(4)
///     .attempt_timeout(Duration::from_millis(300))
///     .backoff(Backoff::new(Duration::from_millis(20), Duration::from_millis(500), Jitter::Full).unwrap())
///     .retryable(|req: &String| !req.starts_with("POST "))
///     .layer()
///     .unwrap();
/// assert_eq!(layer.handle().config().max_attempts, 4);
/// ```
pub struct RetryBuilder<P = Policy> {
    config: RetryConfig,
    budget: Option<RetryBudget>,
    clock: Clock,
    policy: P,
}

impl<P> fmt::Debug for RetryBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Retry<()> {
    /// A builder with the default configuration and policy: errors are
    /// failures, every request is retryable and copied with `Clone`, and
    /// retry-after hints come from errors.
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            config: RetryConfig::default(),
            budget: None,
            clock: Clock::default(),
            policy: Policy::default(),
        }
    }
}

impl<P> RetryBuilder<P> {
    /// Takes every setting of a [`RetryConfig`]. It is validated when the
    /// layer or service is built.
    #[must_use]
    pub fn config(mut self, config: RetryConfig) -> Self {
        self.config = config;
        self
    }

    /// How many times a request may be sent, including the first attempt
    /// (see [`RetryConfig::max_attempts`]).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// How long one attempt may take (see [`RetryConfig::attempt_timeout`]).
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.attempt_timeout = Some(timeout);
        self
    }

    /// How long the whole request may take (see [`RetryConfig::timeout`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// The longest retry-after hint waited for (see [`RetryConfig::max_retry_after`]).
    #[must_use]
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.config.max_retry_after = wait;
        self
    }

    /// The backoff between attempts.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// The retry budget's configuration (a new budget, shared by the
    /// layer's clones).
    #[must_use]
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.config.budget = budget;
        self.budget = None;
        self
    }

    /// An existing retry budget, to share it with other layers (one budget
    /// for a whole client, say). Its own configuration replaces `budget`.
    #[must_use]
    pub fn shared_budget(mut self, budget: RetryBudget) -> Self {
        self.config.budget = budget.config().clone();
        self.config.budget.enabled = true;
        self.budget = Some(budget);
        self
    }

    /// No retry budget: every failing request may use all its attempts.
    #[must_use]
    pub fn no_budget(mut self) -> Self {
        self.config.budget.enabled = false;
        self.budget = None;
        self
    }

    /// Hedging (backup requests).
    #[must_use]
    pub fn hedge(mut self, hedge: HedgeConfig) -> Self {
        self.config.hedge = Some(hedge);
        self
    }

    /// The clock of the budget's window and of the latency histogram
    /// (tokio's by default). [`Clock::coarse`] makes each clock read one
    /// atomic load, and timeouts and hedge delays are then set from it too
    /// (at most one tick early); timers always run on tokio's time, so a
    /// [`Clock::manual`] clock moves the budget's window but not the timers.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the whole policy (see [`RetryPolicy`](super::RetryPolicy)).
    #[must_use]
    pub fn policy<P2>(self, policy: P2) -> RetryBuilder<P2> {
        self.map_policy(|_| policy)
    }

    fn map_policy<P2>(self, f: impl FnOnce(P) -> P2) -> RetryBuilder<P2> {
        RetryBuilder {
            config: self.config,
            budget: self.budget,
            clock: self.clock,
            policy: f(self.policy),
        }
    }

    /// Builds a layer whose services share one budget and one set of counters.
    pub fn layer(self) -> Result<RetryLayer<P>, ConfigError> {
        self.config.validate()?;
        let owns_budget = self.budget.is_none();
        let budget = match (self.budget, self.config.budget.enabled) {
            (Some(b), _) => Some(b),
            (None, true) => Some(
                RetryBudget::from_config(&self.config.budget, self.clock.clone())
                    .map_err(|e| e.within("budget"))?,
            ),
            (None, false) => None,
        };
        let latency = self.config.hedge.as_ref().and_then(|h| {
            h.percentile
                .map(|p| LatencyTracker::new(h, p, self.clock.ticks()))
        });
        let retries = self.config.max_attempts > 1;
        let reads_clock = self.config.timeout.is_some()
            || self.config.attempt_timeout.is_some()
            || self.config.hedge.is_some();
        Ok(RetryLayer {
            shared: Arc::new(Shared {
                policy: self.policy,
                retries,
                reads_clock,
                coarse: self.clock.is_coarse(),
                owns_budget,
                config: self.config,
                budget,
                stats: Stats::default(),
                latency,
                clock: self.clock,
            }),
        })
    }

    /// Builds the service around `inner`.
    pub fn build<S>(self, inner: S) -> Result<Retry<S, P>, ConfigError> {
        Ok(self.layer()?.wrap(inner))
    }
}

impl<C, F, R, A> RetryBuilder<Policy<C, F, R, A>> {
    /// What counts as a failure (a [`Classify`](crate::classify::Classify)):
    /// only failures are retried.
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> RetryBuilder<Policy<C2, F, R, A>> {
        self.map_policy(|p| Policy {
            classify,
            retryable: p.retryable,
            replay: p.replay,
            retry_after: p.retry_after,
        })
    }

    /// Which requests may be sent more than once (a
    /// [`Retryable`](super::Retryable), such as `|req: &Req| -> bool`).
    #[must_use]
    pub fn retryable<F2>(self, retryable: F2) -> RetryBuilder<Policy<C, F2, R, A>> {
        self.map_policy(|p| Policy {
            classify: p.classify,
            retryable,
            replay: p.replay,
            retry_after: p.retry_after,
        })
    }

    /// How to copy a request (a [`Replay`](crate::signal::Replay)); `Clone`
    /// by default.
    #[must_use]
    pub fn replay<R2>(self, replay: R2) -> RetryBuilder<Policy<C, F, R2, A>> {
        self.map_policy(|p| Policy {
            classify: p.classify,
            retryable: p.retryable,
            replay,
            retry_after: p.retry_after,
        })
    }

    /// Where retry-after hints come from (a
    /// [`RetryAfter`](crate::signal::RetryAfter)); errors' unavailable
    /// signal by default.
    #[must_use]
    pub fn retry_after<A2>(self, retry_after: A2) -> RetryBuilder<Policy<C, F, R, A2>> {
        self.map_policy(|p| Policy {
            classify: p.classify,
            retryable: p.retryable,
            replay: p.replay,
            retry_after,
        })
    }
}

/// Applies retries to a service, for use with `tower::ServiceBuilder`.
///
/// Every service the layer makes (and every clone of them) shares the
/// layer's budget, counters and latency histogram.
///
/// ```
/// use tower::{service_fn, ServiceBuilder};
/// use tower_fleet::retry::{RetryConfig, RetryLayer};
///
/// let layer = RetryLayer::new(RetryConfig::default()).unwrap();
/// let handle = layer.handle();
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|req: String| async move { Ok::<_, tower_fleet::BoxError>(req) }));
/// assert_eq!(handle.snapshot().requests, 0);
/// # drop(svc);
/// ```
pub struct RetryLayer<P = Policy> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for RetryLayer<P> {
    fn clone(&self) -> Self {
        RetryLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<P> fmt::Debug for RetryLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &self.shared.config)
            .field("budget", &self.shared.budget)
            .finish()
    }
}

impl RetryLayer {
    /// A layer with this configuration and the default policy.
    pub fn new(config: RetryConfig) -> Result<RetryLayer, ConfigError> {
        Retry::builder().config(config).layer()
    }
}

impl<P> RetryLayer<P> {
    /// A handle on the counters and the budget of every service of this layer.
    pub fn handle(&self) -> RetryHandle
    where
        P: Send + Sync + 'static,
    {
        RetryHandle {
            shared: self.shared.clone(),
        }
    }

    fn wrap<S>(&self, inner: S) -> Retry<S, P> {
        Retry {
            inner,
            shared: self.shared.clone(),
        }
    }
}

impl<S, P> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        self.wrap(inner)
    }
}
