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
use super::core::{Admit, Blocked, Core, Decision, Reservation, Track};
use super::error::BreakerError;
use super::future::{Guard, Judge, ResponseFuture};
use super::handle::BreakerHandle;
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
    permit: Option<Permit>,
    wait: Option<Box<Wait>>,
}

/// The decision of `poll_ready`, held until `call`.
enum Permit {
    Admit(Admit),
    Probe(Reservation),
    Refuse(Blocked),
}

/// A not-ready breaker's wait: woken by any transition, or by its timer when
/// the open state (or the half-open limit) is due.
struct Wait {
    notified: Pin<Box<OwnedNotified>>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            core: self.core.clone(),
            classify: self.classify.clone(),
            permit: None,
            wait: None,
        }
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
            permit: None,
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

    /// Decides afresh, unless a held admission is still of the current epoch.
    #[inline]
    fn decide(&mut self) -> Option<Blocked> {
        if let Some(held) = &self.permit {
            let epoch = match held {
                Permit::Admit(a) => Some(a.epoch),
                Permit::Probe(r) => Some(r.epoch),
                Permit::Refuse(_) => None,
            };
            if epoch.is_some() && epoch == Some(self.core.word().epoch()) {
                return None;
            }
            // A reservation of an ended epoch is invalid: its slot is gone.
            self.permit = None;
        }
        match self.core.decide() {
            Decision::Admit(a) if a.track == Track::Probe => {
                self.permit = Some(Permit::Probe(Reservation::new(self.core.clone(), a.epoch)));
                None
            }
            Decision::Admit(a) => {
                self.permit = Some(Permit::Admit(a));
                None
            }
            Decision::Blocked(b) => Some(b),
        }
    }

    /// Not-ready mode: `Ready` when something may have changed (decide
    /// again), `Pending` with the task registered for the next transition and
    /// the timer set for `wake_at`.
    #[cold]
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
                let left = at.since(self.core.clock.ticks()).max(Duration::from_millis(1));
                let deadline = tokio::time::Instant::now() + left;
                let sleep = wait.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
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

    /// The permit for this call: `poll_ready`'s, or (when `call` comes
    /// without it) a decision now.
    fn take_permit(&mut self) -> Permit {
        match self.permit.take() {
            Some(p) => p,
            None => match self.decide() {
                Some(b) => Permit::Refuse(b),
                None => self.permit.take().unwrap_or(Permit::Refuse(Blocked {
                    state: self.core.word().state(),
                    retry_at: None,
                    wake_at: None,
                })),
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
        loop {
            if let Some(blocked) = self.decide() {
                match self.core.settings.mode {
                    OpenMode::FailFast => {
                        self.permit = Some(Permit::Refuse(blocked));
                        return Poll::Ready(Ok(()));
                    }
                    OpenMode::NotReady => match self.wait(cx, blocked) {
                        Poll::Ready(()) => continue,
                        Poll::Pending => return Poll::Pending,
                    },
                }
            }
            if self.wait.is_some() {
                self.wait = None;
            }
            return match self.inner.poll_ready(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => {
                    // A failed readiness is a failed call: judge it so.
                    let result: Result<S::Response, S::Error> = Err(e);
                    let permit = self.take_permit();
                    if let Some(judge) = self.judge(permit) {
                        judge.guard.judge(&judge.classify, &result);
                    }
                    let err = result.err().map(Into::into).unwrap_or_else(|| "readiness failed".into());
                    Poll::Ready(Err(BreakerError::Inner(err)))
                }
            };
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let permit = self.take_permit();
        if let Permit::Refuse(b) = permit {
            self.core.count_rejected();
            return ResponseFuture::refused(b.state, self.core.retry_after(b.retry_at));
        }
        let judge = self.judge(permit);
        ResponseFuture::called(self.inner.call(req), judge)
    }
}

impl<S, C: Clone> CircuitBreaker<S, C> {
    /// What an admitted call needs to record its outcome (nothing when the
    /// breaker is disabled). Reads the clock only for slow-call detection.
    #[inline]
    fn judge(&self, permit: Permit) -> Option<Judge<C>> {
        let admit = match permit {
            Permit::Admit(a) => a,
            Permit::Probe(r) => r.into_admit(),
            Permit::Refuse(_) => return None,
        };
        if admit.track == Track::Nothing {
            return None;
        }
        let start = self.core.settings.slow_nanos.map(|_| self.core.clock.ticks());
        Some(Judge {
            guard: Guard::new(self.core.clone(), admit, start),
            classify: self.classify.clone(),
        })
    }
}

impl<S, C> HealthSource for CircuitBreaker<S, C> {
    /// Unavailable while open (until the open duration ends) and while forced
    /// open; available otherwise.
    fn health_signal(&self) -> HealthSignal {
        self.core.health_signal()
    }
}
