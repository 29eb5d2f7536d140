//! The response future of `CircuitBreaker`, and the guard that records a
//! call's outcome exactly once: when it finishes, when its stream ends, or
//! (as ignored) when it is dropped unfinished.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::core::Core;
use super::error::BreakerError;
use super::permit::{Admit, Track};
use super::state::BreakerState;
use crate::classify::{Classification, Classify, Outcome};
use crate::clock::Ticks;
use crate::signal::{Unavailable, UnavailableKind};
use crate::BoxError;

/// Records one admitted call's outcome. Dropped unfinished, it records the
/// call as ignored, which frees a probe slot it held.
pub(crate) struct Guard {
    /// `None` once the outcome is recorded (or when there is nothing to record).
    core: Option<Arc<Core>>,
    admit: Admit,
    /// When the call was handed to the inner service, in ticks (slow-call
    /// detection only; 0 when not timed).
    start: u64,
}

impl Guard {
    #[inline]
    pub(crate) fn new(core: Arc<Core>, admit: Admit, start: Option<Ticks>) -> Guard {
        Guard {
            core: Some(core),
            admit,
            start: start.map_or(0, |t| t.0),
        }
    }

    /// A guard that records nothing.
    #[inline]
    pub(crate) fn none() -> Guard {
        Guard {
            core: None,
            admit: Admit {
                epoch: 0,
                track: Track::Nothing,
            },
            start: 0,
        }
    }

    /// Judges `result` with `classify`: records it now, or registers for the
    /// end of its stream (moving the guard there, so a probe holds its slot
    /// until then).
    #[inline]
    pub(crate) fn judge<Res, E, C: Classify<Res, E>>(
        &mut self,
        classify: &C,
        result: &Result<Res, E>,
    ) {
        let Some(core) = &self.core else { return };
        let (slow, now) = if self.start != 0 {
            let now = core.clock.ticks();
            let nanos = u64::try_from(now.since(Ticks(self.start)).as_nanos()).unwrap_or(u64::MAX);
            (core.is_slow(nanos), Some(now))
        } else {
            (false, None)
        };
        let (outcome, slow) = match classify.classify(result) {
            Classification::Now(outcome) => (outcome, slow),
            Classification::LongLived(outcome) => (outcome, false),
            Classification::AtEnd(eos) => {
                let mut owned = Guard {
                    core: self.core.take(),
                    admit: self.admit,
                    start: 0,
                };
                eos.on_end(move |outcome| owned.record(outcome, slow, None));
                return;
            }
        };
        self.record(outcome, slow, now);
    }

    #[inline]
    fn record(&mut self, outcome: Outcome, slow: bool, now: Option<Ticks>) {
        if let Some(core) = self.core.take() {
            core.finish(self.admit, outcome, slow, now);
        }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.finish(self.admit, Outcome::Ignore, false, None);
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker).
    ///
    /// Dropping it before it completes records the call as ignored (and
    /// frees the probe slot it held in half-open).
    pub struct ResponseFuture<F, C> {
        // `None`: the breaker refused the call.
        #[pin]
        fut: Option<F>,
        guard: Guard,
        classify: C,
        refused: Option<(BreakerState, Option<Duration>)>,
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn called(fut: F, guard: Guard, classify: C) -> Self {
        ResponseFuture {
            fut: Some(fut),
            guard,
            classify,
            refused: None,
        }
    }

    #[cold]
    pub(crate) fn refused(state: BreakerState, retry_after: Option<Duration>, classify: C) -> Self {
        ResponseFuture {
            fut: None,
            guard: Guard::none(),
            classify,
            refused: Some((state, retry_after)),
        }
    }
}

pub(crate) fn open_error(state: BreakerState, retry_after: Option<Duration>) -> BreakerError {
    BreakerError::Open {
        state,
        signal: Unavailable::new(UnavailableKind::CircuitOpen).with_retry_after(retry_after),
    }
}

impl<F, C, Res, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: Classify<Res, E>,
{
    type Output = Result<Res, BreakerError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(fut) = this.fut.as_pin_mut() else {
            let (state, retry_after) = this.refused.unwrap_or((BreakerState::Open, None));
            return Poll::Ready(Err(open_error(state, retry_after)));
        };
        let result = ready!(fut.poll(cx));
        this.guard.judge(this.classify, &result);
        Poll::Ready(result.map_err(|e| BreakerError::Inner(e.into())))
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}
