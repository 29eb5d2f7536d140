//! The decisions of one request's retry loop: what to do when an attempt
//! ends, when a timer fires, and how to start the next attempt. The response
//! future (`future.rs`) polls; this file decides.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

use super::error::RetryError;
use super::policy::RetryPolicy;
use super::service::{attempt_until, Shared};
use crate::classify::Outcome;
use crate::clock::Ticks;
use crate::signal::{Carrier, DeadlineExceeded};
use crate::BoxError;

/// What an attempt in flight is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttemptInfo {
    pub(crate) number: u32,
    pub(crate) hedge: bool,
    /// When it must end, and whether that is the request's deadline.
    pub(crate) until: Option<(Instant, bool)>,
    /// When it started, for the latency histogram (percentile hedging only).
    pub(crate) started: Option<Ticks>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Launch {
    Retry,
    Hedge,
}

/// What [`Control::start`] did.
pub(crate) enum Started<F, Res> {
    /// Sent the next attempt.
    Attempt(F, AttemptInfo),
    /// Gave up: return this.
    Gave(Output<Res>),
    /// Nothing to send.
    Nothing,
}

/// The next step of the response future.
pub(crate) enum Step<T> {
    /// Return this.
    Done(T),
    /// Keep polling.
    Continue,
}

pub(crate) type Output<Res> = Result<Res, RetryError>;

/// A request's retry state, apart from the attempts in flight.
pub(crate) struct Control<S, P, Req, Res> {
    pub(crate) shared: Arc<Shared<P>>,
    /// A clone of the inner service for further attempts (none when the
    /// request is sent once).
    pub(crate) svc: Option<S>,
    /// A copy of the request for the next attempt.
    pub(crate) spare: Option<Req>,
    /// Attempts started so far.
    pub(crate) launched: u32,
    /// Retries decided so far: the backoff exponent.
    retries: u32,
    /// The previous backoff wait, for decorrelated jitter.
    previous: Duration,
    pub(crate) deadline: Option<Instant>,
    /// When to send the backup copy.
    pub(crate) hedge_at: Option<Instant>,
    /// When the backoff wait ends.
    pub(crate) wake_at: Option<Instant>,
    /// An attempt waiting for the service to become ready.
    pub(crate) launch: Option<Launch>,
    /// When that attempt gives up waiting (its attempt timeout or the deadline).
    pub(crate) launch_until: Option<(Instant, bool)>,
    /// A failed outcome kept while another attempt may still succeed.
    held: Option<Output<Res>>,
    /// The request is retried only after a failure that shows it was never
    /// sent (and never hedged).
    unsent_only: bool,
}

impl<S, P, Req, Res> Control<S, P, Req, Res> {
    #[inline]
    pub(crate) fn new(
        shared: Arc<Shared<P>>,
        svc: Option<S>,
        spare: Option<Req>,
        unsent_only: bool,
        deadline: Option<Instant>,
        hedge_at: Option<Instant>,
    ) -> Self {
        Control {
            shared,
            svc,
            spare,
            launched: 1,
            retries: 0,
            previous: Duration::ZERO,
            deadline,
            hedge_at,
            wake_at: None,
            launch: None,
            launch_until: None,
            held: None,
            unsent_only,
        }
    }

    /// The earliest instant a timer must wake the future for, besides the
    /// attempts' own.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        [
            self.hedge_at,
            self.wake_at,
            self.launch_until.map(|(t, _)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The request fails because its deadline passed.
    pub(crate) fn deadline_exceeded<T>(&mut self) -> Step<Output<T>> {
        self.shared.stats.deadline_exceeded.inc();
        tracing::debug!(attempts = self.launched, "request deadline exceeded");
        Step::Done(Err(RetryError::DeadlineExceeded {
            attempts: self.launched,
            source: DeadlineExceeded,
        }))
    }

    /// An attempt ran out of time (`is_deadline`: the request's deadline).
    pub(crate) fn timed_out(
        &mut self,
        number: u32,
        is_deadline: bool,
        other_running: bool,
    ) -> Step<Output<Res>> {
        if is_deadline {
            return self.deadline_exceeded();
        }
        self.shared.stats.attempt_timeouts.inc();
        let timeout = self.shared.config.attempt_timeout.unwrap_or_default();
        tracing::debug!(attempt = number, ?timeout, "attempt timed out");
        let out = Err(RetryError::AttemptTimedOut {
            attempt: number,
            timeout,
        });
        if self.unsent_only {
            // It may have reached the server: never sent twice.
            return Step::Done(out);
        }
        self.on_failure(out, None, other_running)
    }

    /// The attempt waiting for readiness ran out of time.
    pub(crate) fn launch_timed_out(&mut self, other_running: bool) -> Step<Output<Res>> {
        self.launch = None;
        let Some((_, is_deadline)) = self.launch_until.take() else {
            return Step::Continue;
        };
        if other_running {
            // A hedge that could not start in time: the first attempt goes on.
            return Step::Continue;
        }
        self.launched += 1;
        self.timed_out(self.launched, is_deadline, false)
    }

    /// The inner service's `poll_ready` failed: it cannot take more attempts.
    pub(crate) fn service_failed(&mut self, e: BoxError, other_running: bool) -> Step<Output<Res>> {
        self.launch = None;
        self.launch_until = None;
        self.hedge_at = None;
        self.svc = None;
        self.spare = None;
        if other_running {
            self.held = Some(Err(RetryError::Inner(e)));
            return Step::Continue;
        }
        Step::Done(Err(RetryError::Inner(e)))
    }

    /// The hedge delay passed while the first attempt is still in flight.
    pub(crate) fn hedge_due(&mut self, now: Instant) {
        self.hedge_at = None;
        let max = self.shared.config.max_attempts;
        if self.launch.is_some()
            || self.spare.is_none()
            || self.svc.is_none()
            || self.launched >= max
        {
            return;
        }
        if let Some(budget) = &self.shared.budget {
            if !budget.withdraw() {
                self.shared.stats.budget_exhausted.inc();
                tracing::debug!("hedge not sent: retry budget exhausted");
                return;
            }
        }
        self.begin_launch(Launch::Hedge, now);
    }

    /// The backoff wait is over: start waiting for the service.
    pub(crate) fn wake_due(&mut self) {
        self.wake_at = None;
        let now = self.shared.now();
        self.begin_launch(Launch::Retry, now);
    }

    fn begin_launch(&mut self, kind: Launch, now: Instant) {
        self.launch = Some(kind);
        self.launch_until = attempt_until(&self.shared.config, Some(now), self.deadline);
    }

    /// A failed attempt: keep it while another attempt may still succeed,
    /// else decide whether to retry.
    fn on_failure(
        &mut self,
        outcome: Output<Res>,
        hint: Option<Duration>,
        other_running: bool,
    ) -> Step<Output<Res>> {
        self.hedge_at = None;
        if other_running || self.launch.is_some() {
            self.held = Some(outcome);
            return Step::Continue;
        }
        self.held = None;
        self.decide(outcome, hint)
    }

    /// Retry, or return the last outcome unchanged.
    fn decide(&mut self, outcome: Output<Res>, hint: Option<Duration>) -> Step<Output<Res>> {
        let shared = &*self.shared;
        let config = &shared.config;
        if self.launched >= config.max_attempts || self.spare.is_none() || self.svc.is_none() {
            return Step::Done(outcome);
        }
        let wait = match hint {
            Some(hint) if hint > config.max_retry_after => return Step::Done(outcome),
            Some(hint) => hint,
            None => config.backoff.delay(self.retries + 1, self.previous),
        };
        let now = shared.now();
        let Some(at) = now.checked_add(wait) else {
            return Step::Done(outcome);
        };
        if self.deadline.is_some_and(|d| at >= d) {
            return Step::Done(outcome);
        }
        if let Some(budget) = &shared.budget {
            if !budget.withdraw() {
                shared.stats.budget_exhausted.inc();
                tracing::debug!(
                    attempt = self.launched,
                    "not retried: retry budget exhausted"
                );
                return Step::Done(outcome);
            }
        }
        if hint.is_none() {
            self.previous = wait;
        }
        self.retries += 1;
        tracing::debug!(
            next_attempt = self.launched + 1,
            ?wait,
            from_hint = hint.is_some(),
            "retrying"
        );
        // Kept until the next attempt starts, in case it cannot.
        self.held = Some(outcome);
        if wait.is_zero() {
            self.begin_launch(Launch::Retry, now);
        } else {
            self.wake_at = Some(at);
        }
        Step::Continue
    }
}

impl<S, P, Req, Res> Control<S, P, Req, Res> {
    /// An attempt finished with `result`.
    #[inline]
    pub(crate) fn finished<E>(
        &mut self,
        result: Result<Res, E>,
        info: AttemptInfo,
        other_running: bool,
    ) -> Step<Output<Res>>
    where
        P: RetryPolicy<Req, Res, E>,
        E: Into<BoxError>,
    {
        // The common case, kept small: an attempt that did not fail, with no
        // hedge and no latency to record.
        let shared = &*self.shared;
        if !info.hedge
            && shared.latency.is_none()
            && shared.policy.outcome(&result) != Outcome::Failure
        {
            return Step::Done(result.map_err(|e| RetryError::Inner(e.into())));
        }
        self.finished_slow(result, info, other_running)
    }

    #[inline(never)]
    fn finished_slow<E>(
        &mut self,
        result: Result<Res, E>,
        info: AttemptInfo,
        other_running: bool,
    ) -> Step<Output<Res>>
    where
        P: RetryPolicy<Req, Res, E>,
        E: Into<BoxError>,
    {
        let shared = &*self.shared;
        if let (Some(t0), Some(tracker)) = (info.started, &shared.latency) {
            let now = shared.clock.ticks();
            tracker.record(now.since(t0), now);
        }
        if shared.policy.outcome(&result) != Outcome::Failure
            || (self.unsent_only && !shared.policy.never_sent(&result))
        {
            if info.hedge {
                shared.stats.hedges_won.inc();
            }
            return Step::Done(result.map_err(|e| RetryError::Inner(e.into())));
        }
        let hint = shared.policy.retry_after(&result);
        self.on_failure(
            result.map_err(|e| RetryError::Inner(e.into())),
            hint,
            other_running,
        )
    }

    /// Sends the attempt that waited for readiness, on the now-ready service.
    ///
    /// Timers fire on tokio's millisecond ticks, so a wait that was to end
    /// just before the deadline may end at it: an attempt that would start
    /// at or after the deadline is not sent, and the request returns its last
    /// outcome (or, with an attempt still running, that attempt goes on).
    pub(crate) fn start(&mut self, other_running: bool) -> Started<S::Future, Res>
    where
        S: Service<Req>,
        P: RetryPolicy<Req, Res, S::Error>,
        Req: Carrier,
    {
        let Some(kind) = self.launch.take() else {
            return Started::Nothing;
        };
        let until = self.launch_until.take();
        let shared = &*self.shared;
        if self.deadline.is_some_and(|d| shared.now() >= d) {
            if other_running {
                return Started::Nothing;
            }
            return match self.held.take() {
                Some(last) => Started::Gave(last),
                None => match self.deadline_exceeded() {
                    Step::Done(out) => Started::Gave(out),
                    Step::Continue => Started::Nothing,
                },
            };
        }
        let (Some(mut req), Some(svc)) = (self.spare.take(), self.svc.as_mut()) else {
            return Started::Nothing;
        };
        self.launched += 1;
        if let Some(mark) = req.attempt() {
            let next = mark.next();
            req.set_attempt(next);
        }
        if self.launched < shared.config.max_attempts {
            self.spare = shared.policy.replay(&req);
        }
        match kind {
            Launch::Retry => shared.stats.retries.inc(),
            Launch::Hedge => {
                shared.stats.hedges_sent.inc();
                tracing::debug!(attempt = self.launched, "hedge sent");
            }
        }
        let started = shared.latency.as_ref().map(|_| shared.clock.ticks());
        let fut = svc.call(req);
        let info = AttemptInfo {
            number: self.launched,
            hedge: kind == Launch::Hedge,
            until,
            started,
        };
        Started::Attempt(fut, info)
    }
}
