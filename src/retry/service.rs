//! The `Retry` service: sends a request again when it fails, within limits.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::budget::RetryBudget;
use super::config::RetryConfig;
use super::error::RetryError;
use super::future::ResponseFuture;
use super::handle::{Observe, RetryHandle, Stats};
use super::hedge::LatencyTracker;
use super::policy::{Policy, RetryPolicy};
use crate::clock::Clock;
use crate::signal::{AttemptMark, Carrier};
use crate::BoxError;

/// Sends a request again when an attempt fails: with jittered backoff,
/// within a retry budget, within the request's deadline, and optionally
/// with a backup copy when the first attempt is slow.
///
/// Built with [`Retry::builder`] or a [`RetryLayer`](super::RetryLayer). See
/// the [module docs](super) for the semantics; in short:
///
/// - `Clone` when the inner service is; every clone (and every service made
///   by the same layer) shares one budget, one set of counters and one
///   latency histogram.
/// - `poll_ready` is the inner service's. Retries and hedges drive a clone
///   of the inner service to readiness inside the response future, which is
///   why the inner service must be `Clone`.
/// - Errors are [`RetryError`]: the inner error boxed, or the layer's own
///   timeouts.
pub struct Retry<S, P = Policy> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<P>>,
}

/// What every clone of a layer shares.
pub(crate) struct Shared<P> {
    pub(crate) policy: P,
    pub(crate) config: RetryConfig,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) stats: Stats,
    /// Present in percentile hedging mode.
    pub(crate) latency: Option<LatencyTracker>,
    pub(crate) clock: Clock,
    /// `max_attempts > 1`.
    pub(crate) retries: bool,
    /// `timeout`, `attempt_timeout` or hedging is set: a call reads the clock.
    pub(crate) reads_clock: bool,
    /// The clock is the coarse one: timers are set from it.
    pub(crate) coarse: bool,
    /// The budget was made for this layer alone, so its deposits are this
    /// layer's requests.
    pub(crate) owns_budget: bool,
}

impl<P> Shared<P> {
    /// The time to set timers from: the layer's clock when it is the coarse
    /// one (one atomic load, at most one tick early), else tokio's.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        if self.coarse {
            self.clock.now()
        } else {
            Instant::now()
        }
    }

    /// The delay after which a request is hedged now, if it is.
    #[inline]
    pub(crate) fn hedge_delay(&self) -> Option<Duration> {
        let hedge = self.config.hedge.as_ref()?;
        match &self.latency {
            Some(tracker) => tracker.delay(),
            None => Some(hedge.delay),
        }
    }
}

impl<P: Send + Sync> Observe for Shared<P> {
    fn stats(&self) -> &Stats {
        &self.stats
    }
    fn requests(&self) -> u64 {
        match &self.budget {
            Some(budget) if self.owns_budget => budget.deposits(),
            _ => self.stats.requests.get(),
        }
    }
    fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }
    fn config(&self) -> &RetryConfig {
        &self.config
    }
    fn hedge_delay(&self) -> Option<Duration> {
        Shared::hedge_delay(self)
    }
}

impl<S: Clone, P> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("budget", &self.shared.budget)
            .finish()
    }
}

impl<S, P> Retry<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the retry layer.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The layer's configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.shared.config
    }

    /// A handle on the counters and the budget (shared by all clones).
    pub fn handle(&self) -> RetryHandle
    where
        P: Send + Sync + 'static,
    {
        RetryHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, P, Req> Service<Req> for Retry<S, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: RetryPolicy<Req, S::Response, S::Error>,
    Req: Carrier,
{
    type Response = S::Response;
    type Error = RetryError;
    type Future = ResponseFuture<S, P, Req>;

    /// The inner service's readiness; its error is returned as
    /// [`RetryError::Inner`].
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| RetryError::Inner(e.into()))
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let shared = &*self.shared;
        match &shared.budget {
            Some(budget) => {
                budget.deposit();
                // A budget of our own counts our requests: one atomic add
                // fewer per request.
                if !shared.owns_budget {
                    shared.stats.requests.inc();
                }
            }
            None => shared.stats.requests.inc(),
        }
        if shared.reads_clock || shared.latency.is_some() || req.deadline().is_some() {
            return self.call_timed(req);
        }
        // The common case: no timer, no clock read.
        let (spare, unsent_only) = shared.spare(&mut req);
        let fut = self.inner.call(req);
        let svc = spare.as_ref().map(|_| self.inner.clone());
        ResponseFuture::first(self.shared.clone(), fut, svc, spare, unsent_only)
    }
}

impl<S, P> Retry<S, P> {
    /// A call with a deadline, timeouts or hedging: the clock is read and
    /// the response future starts with its timers.
    #[inline(never)]
    fn call_timed<Req>(&mut self, mut req: Req) -> ResponseFuture<S, P, Req>
    where
        S: Service<Req> + Clone,
        P: RetryPolicy<Req, S::Response, S::Error>,
        Req: Carrier,
    {
        let shared = &*self.shared;
        let now = shared.reads_clock.then(|| shared.now());
        let deadline = match now {
            Some(now) => shared.deadline(&mut req, now),
            None => req.deadline(),
        };
        let (spare, unsent_only) = shared.spare(&mut req);
        let hedge_at = match (now, &spare) {
            (Some(now), Some(_)) if shared.config.hedge.is_some() && !unsent_only => {
                shared.hedge_delay().and_then(|d| now.checked_add(d))
            }
            _ => None,
        };
        let until = attempt_until(&shared.config, now, deadline);
        let started = shared.latency.as_ref().map(|_| shared.clock.ticks());
        let fut = self.inner.call(req);
        let svc = spare.as_ref().map(|_| self.inner.clone());
        ResponseFuture::new(
            self.shared.clone(),
            fut,
            until,
            started,
            svc,
            spare,
            unsent_only,
            deadline,
            hedge_at,
        )
    }
}

impl<P> Shared<P> {
    /// The request's deadline: the earlier of its own and `timeout` from
    /// `now`, which it is given when it can carry one.
    fn deadline<Req: Carrier>(&self, req: &mut Req, now: Instant) -> Option<Instant> {
        let own = req.deadline();
        let by_timeout = self.config.timeout.and_then(|t| now.checked_add(t));
        match (own, by_timeout) {
            (Some(own), Some(d)) if d < own => {
                req.set_deadline(d);
                Some(d)
            }
            (None, Some(d)) => {
                req.set_deadline(d);
                Some(d)
            }
            (own, _) => own,
        }
    }

    /// The copy of the request for a further attempt, if it may have one,
    /// and whether that attempt may only follow a failure that shows the
    /// request was never sent.
    #[inline]
    fn spare<Req, Res, E>(&self, req: &mut Req) -> (Option<Req>, bool)
    where
        P: RetryPolicy<Req, Res, E>,
        Req: Carrier,
    {
        if !self.retries {
            return (None, false);
        }
        if self.policy.is_retryable(req) {
            return (self.copy(req, true), false);
        }
        if self.policy.is_retryable_unsent(req) {
            // Not counted when it cannot be copied: it would be sent once anyway.
            return (self.copy(req, false), true);
        }
        (None, false)
    }

    /// Marks the first attempt and copies the request for the next one.
    #[inline]
    fn copy<Req, Res, E>(&self, req: &mut Req, count: bool) -> Option<Req>
    where
        P: RetryPolicy<Req, Res, E>,
        Req: Carrier,
    {
        if req.attempt().is_none() && req.can_carry_attempt() {
            req.set_attempt(AttemptMark::new());
        }
        let spare = self.policy.replay(req);
        if spare.is_none() && count {
            self.stats.not_cloneable.inc();
        }
        spare
    }
}

/// When an attempt started `now` must end: the earlier of the attempt
/// timeout and the deadline, and whether that is the deadline.
#[inline]
pub(crate) fn attempt_until(
    config: &RetryConfig,
    now: Option<Instant>,
    deadline: Option<Instant>,
) -> Option<(Instant, bool)> {
    let by_attempt = config
        .attempt_timeout
        .zip(now)
        .and_then(|(t, now)| now.checked_add(t));
    match (by_attempt, deadline) {
        (Some(a), Some(d)) if d <= a => Some((d, true)),
        (Some(a), _) => Some((a, false)),
        (None, Some(d)) => Some((d, true)),
        (None, None) => None,
    }
}
