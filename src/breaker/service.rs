//! The `CircuitBreaker` service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;
use tower_service::Service;

use super::config::OpenMode;
use super::core::Core;
use super::error::BreakerError;
use super::future::{Guard, ResponseFuture};
use super::handle::BreakerHandle;
use super::permit::{Admit, Blocked, Decision, Reservation, Track};
use super::state::BreakerState;
use crate::classify::{Classify, ErrorIsFailure};
use crate::signal::{HealthSignal, HealthSource};
use crate::BoxError;

/// A circuit breaker around one inner service (one backend, or one replica).
///
/// Built with [`CircuitBreaker::builder`] or [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
/// See the [module docs](super) for the semantics; in short:
///
/// - `Clone`: all clones share one state, one window and one handle.
/// - Closed: `poll_ready` reads one atomic and polls the inner service; the
///   outcome is judged by the classifier `C` and recorded without a lock.
/// - Open, in fail-fast mode: `poll_ready` is ready at once and `call`
///   returns [`BreakerError::Open`] without touching the inner service.
/// - Open, in not-ready mode: `poll_ready` is `Pending` until the breaker
///   may admit calls again, and wakes the task then.
/// - `poll_ready`'s decision (admit, probe, refuse) holds until the next
///   `call`, so a request never reaches an inner service that was not
///   polled ready.
pub struct CircuitBreaker<S, C = ErrorIsFailure> {
    pub(crate) inner: S,
    pub(crate) core: Arc<Core>,
    pub(crate) classify: C,
    /// The decision of `poll_ready`, held until `call`.
    held: Held,
    /// Why the call is refused, when `held` is `Refuse`.
    refusal: Blocked,
    /// The probe slot `poll_ready` reserved in half-open, held until `call`.
    probe: Option<Reservation>,
    wait: Option<Box<Wait>>,
}

/// What `poll_ready` decided (`Copy`: nothing to drop on the hot path).
#[derive(Clone, Copy)]
enum Held {
    Nothing,
    Admit(Admit),
    /// Refused, for the reason in `refusal`.
    Refuse,
}

/// What the slow path of `poll_ready` found.
enum Gate {
    /// Admitted: poll the inner service.
    Inner,
    /// Refused (fail-fast): ready now, the call fails without the inner service.
    Refused,
    Pending,
}

/// A not-ready breaker's wait: woken by any transition, or by its timer when
/// the open state (or the half-open limit) is due.
struct Wait {
    notified: Pin<Box<OwnedNotified>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        CircuitBreaker::from_parts(self.inner.clone(), self.core.clone(), self.classify.clone())
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("state", &self.core.word().state())
            .finish_non_exhaustive()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn from_parts(inner: S, core: Arc<Core>, classify: C) -> Self {
        CircuitBreaker {
            inner,
            core,
            classify,
            held: Held::Nothing,
            refusal: Blocked {
                state: BreakerState::Open,
                retry_at: None,
                wake_at: None,
            },
            probe: None,
            wait: None,
        }
    }

    /// A handle on the breaker's state and counters (shared by all clones).
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            core: self.core.clone(),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the breaker.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Decides afresh (keeping a probe reservation still of the current
    /// epoch); `Some` when refused.
    fn decide(&mut self) -> Option<Blocked> {
        if let Some(r) = &self.probe {
            if r.epoch == self.core.word().epoch() {
                self.held = Held::Nothing;
                return None;
            }
            // A reservation of an ended epoch is void: its slot is gone.
            self.probe = None;
        }
        match self.core.decide() {
            Decision::Admit(a) if a.track == Track::Probe => {
                self.probe = Some(Reservation::new(self.core.clone(), a.epoch));
                self.held = Held::Nothing;
                None
            }
            Decision::Admit(a) => {
                self.held = Held::Admit(a);
                None
            }
            Decision::Blocked(b) => {
                self.held = Held::Refuse;
                self.refusal = b;
                Some(b)
            }
        }
    }

    /// `poll_ready` off the closed-state path: probes, refusals, waits.
    #[cold]
    fn gate(&mut self, cx: &mut Context<'_>) -> Gate {
        loop {
            let Some(blocked) = self.decide() else {
                self.wait = None;
                return Gate::Inner;
            };
            match self.core.settings.mode {
                OpenMode::FailFast => return Gate::Refused,
                OpenMode::NotReady => {
                    self.held = Held::Nothing;
                    if self.wait(cx, blocked).is_pending() {
                        return Gate::Pending;
                    }
                }
            }
        }
    }

    /// Not-ready mode: `Ready` when something may have changed (decide
    /// again), `Pending` with the task registered for the next transition and
    /// the timer set for `wake_at`.
    fn wait(&mut self, cx: &mut Context<'_>, blocked: Blocked) -> Poll<()> {
        let Some(wait) = self.wait.as_mut() else {
            // Register for transitions before deciding again, so that none
            // between the decision and the registration is missed.
            self.wait = Some(Box::new(Wait {
                notified: Box::pin(self.core.notify.clone().notified_owned()),
                sleep: None,
            }));
            return Poll::Ready(());
        };
        if wait.notified.as_mut().poll(cx).is_ready() {
            wait.notified = Box::pin(self.core.notify.clone().notified_owned());
            return Poll::Ready(());
        }
        if let Some(at) = blocked.wake_at {
            if tokio::runtime::Handle::try_current().is_ok() {
                // The timer runs on tokio's time; the breaker's clock may lag
                // it (a coarse clock) or stand still (a manual one), so wait
                // out what the breaker's clock says is left, at least 1ms.
                let left = at
                    .since(self.core.clock.ticks())
                    .max(Duration::from_millis(1));
                let deadline = tokio::time::Instant::now() + left;
                let sleep = wait
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
        }
        Poll::Pending
    }
}

impl<S, C: Clone> CircuitBreaker<S, C> {
    /// What an admitted call needs to record its outcome (nothing when the
    /// breaker is disabled). Reads the clock only for slow-call detection.
    #[inline]
    fn judge(&self, admit: Admit) -> (Guard, C) {
        if admit.track == Track::Nothing {
            return (Guard::none(), self.classify.clone());
        }
        let start = self
            .core
            .settings
            .slow_nanos
            .map(|_| self.core.clock.ticks());
        (
            Guard::new(self.core.clone(), admit, start),
            self.classify.clone(),
        )
    }

    /// The admission of a call off the closed-state path: a probe, a
    /// refusal, or a call that came without `poll_ready` (decided now).
    #[cold]
    fn admit_slow(&mut self, held: Held) -> Result<(Guard, C), Blocked> {
        let held = match held {
            Held::Nothing if self.probe.is_none() => {
                self.decide();
                std::mem::replace(&mut self.held, Held::Nothing)
            }
            other => other,
        };
        match held {
            Held::Refuse => Err(self.refusal),
            Held::Admit(a) => Ok(self.judge(a)),
            Held::Nothing => match self.probe.take() {
                Some(r) => Ok(self.judge(r.into_admit())),
                None => Err(Blocked {
                    state: self.core.word().state(),
                    retry_at: None,
                    wake_at: None,
                }),
            },
        }
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let w = self.core.word();
        if w.is_closed() && self.probe.is_none() {
            self.held = Held::Admit(Admit {
                epoch: w.epoch(),
                track: Track::Trip,
            });
        } else {
            match self.gate(cx) {
                Gate::Inner => {}
                Gate::Refused => return Poll::Ready(Ok(())),
                Gate::Pending => return Poll::Pending,
            }
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.failed_readiness(e))),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let (guard, classify) = match std::mem::replace(&mut self.held, Held::Nothing) {
            Held::Admit(a) if a.track == Track::Trip => self.judge(a),
            other => match self.admit_slow(other) {
                Ok(judge) => judge,
                Err(b) => {
                    self.core.count_rejected();
                    let retry_after = self.core.retry_after(b.retry_at);
                    return ResponseFuture::refused(b.state, retry_after, self.classify.clone());
                }
            },
        };
        ResponseFuture::called(self.inner.call(req), guard, classify)
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// A failed readiness is a failed call: judges it so, and wraps the error.
    #[cold]
    fn failed_readiness<Res, E>(&mut self, e: E) -> BreakerError
    where
        E: Into<BoxError>,
        C: Classify<Res, E> + Clone,
    {
        let result: Result<Res, E> = Err(e);
        let held = std::mem::replace(&mut self.held, Held::Nothing);
        if let Ok((mut guard, classify)) = self.admit_slow(held) {
            guard.judge(&classify, &result);
        }
        let err = result
            .err()
            .map(Into::into)
            .unwrap_or_else(|| "readiness failed".into());
        BreakerError::Inner(err)
    }
}

impl<S, C> HealthSource for CircuitBreaker<S, C> {
    /// Unavailable while open (until the open duration ends) and while forced
    /// open; available otherwise.
    fn health_signal(&self) -> HealthSignal {
        self.core.health_signal()
    }
}
