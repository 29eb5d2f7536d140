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

use super::core::{Admit, Core};
use super::error::BreakerError;
use super::state::BreakerState;
use crate::classify::{Classification, Classify, Outcome};
use crate::clock::Ticks;
use crate::signal::{Unavailable, UnavailableKind};
use crate::BoxError;

/// Records one admitted call's outcome. Dropped unfinished, it records the
/// call as ignored, which frees a probe slot it held.
pub(crate) struct Guard {
    core: Arc<Core>,
    admit: Admit,
    /// When the call was handed to the inner service (slow-call detection only).
    start: Option<Ticks>,
    armed: bool,
}

impl Guard {
    pub(crate) fn new(core: Arc<Core>, admit: Admit, start: Option<Ticks>) -> Guard {
        Guard {
            core,
            admit,
            start,
            armed: true,
        }
    }

    fn finish(mut self, outcome: Outcome, slow: bool, now: Option<Ticks>) {
        self.armed = false;
        self.core.finish(self.admit, outcome, slow, now);
    }

    /// Judges `result` with `classify`: records it now, or registers for the
    /// end of its stream (holding any probe slot until then).
    pub(crate) fn judge<Res, E, C: Classify<Res, E>>(self, classify: &C, result: &Result<Res, E>) {
        let (slow, now) = match self.start {
            Some(start) => {
                let now = self.core.clock.ticks();
                let nanos = u64::try_from(now.since(start).as_nanos()).unwrap_or(u64::MAX);
                (self.core.is_slow(nanos), Some(now))
            }
            None => (false, None),
        };
        match classify.classify(result) {
            Classification::Now(outcome) => self.finish(outcome, slow, now),
            Classification::LongLived(outcome) => self.finish(outcome, false, now),
            Classification::AtEnd(eos) => eos.on_end(move |outcome| self.finish(outcome, slow, None)),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            self.core.finish(self.admit, Outcome::Ignore, false, None);
        }
    }
}

/// What a call needs to judge its outcome.
pub(crate) struct Judge<C> {
    pub(crate) guard: Guard,
    pub(crate) classify: C,
}

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker).
    ///
    /// Dropping it before it completes records the call as ignored (and
    /// frees the probe slot it held in half-open).
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F>,
        judge: Option<Judge<C>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] fut: F },
        Refused { state: BreakerState, retry_after: Option<Duration> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, judge: Option<Judge<C>>) -> Self {
        ResponseFuture {
            kind: Kind::Called { fut },
            judge,
        }
    }

    pub(crate) fn refused(state: BreakerState, retry_after: Option<Duration>) -> Self {
        ResponseFuture {
            kind: Kind::Refused { state, retry_after },
            judge: None,
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

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Refused { state, retry_after } => Poll::Ready(Err(open_error(*state, *retry_after))),
            KindProj::Called { fut } => {
                let result = ready!(fut.poll(cx));
                if let Some(Judge { guard, classify }) = this.judge.take() {
                    guard.judge(&classify, &result);
                }
                Poll::Ready(result.map_err(|e| BreakerError::Inner(e.into())))
            }
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("refused", &matches!(self.kind, Kind::Refused { .. }))
            .finish_non_exhaustive()
    }
}
