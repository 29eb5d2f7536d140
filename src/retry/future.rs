//! The response future of `Retry`: polls up to two attempts (the current one
//! and a hedge), drives the inner service's readiness for the next attempt,
//! and keeps one timer for every wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::control::{AttemptInfo, Control, Output, Started, Step};
use super::error::RetryError;
use super::policy::RetryPolicy;
use super::service::Shared;
use crate::classify::Outcome;
use crate::clock::Ticks;
use crate::signal::Carrier;
use crate::BoxError;

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    ///
    /// Dropping it cancels every attempt in flight (their inner futures are
    /// dropped) and any wait.
    pub struct ResponseFuture<S, P, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, P, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, P, Req>
    where
        S: Service<Req>,
    {
        // The first attempt with nothing else pending (no timer, no hedge):
        // the common case, kept small.
        First {
            #[pin]
            fut: S::Future,
            shared: Arc<Shared<P>>,
            svc: Option<S>,
            spare: Option<Req>,
            // The spare may only be sent after a failure that shows the
            // request never reached the server.
            unsent_only: bool,
        },
        // Retries, hedges and timeouts. Boxed: it holds two attempts and a
        // timer, and keeping it inline would make every request's future
        // (and every future that wraps it) that large, to be copied on each
        // move, for machinery that only retries, hedges and timeouts use.
        Full {
            full: Pin<Box<Full<S, P, Req>>>,
        },
    }
}

pin_project! {
    // Up to two attempts in flight and one timer.
    struct Full<S, P, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        first: Attempt<S::Future>,
        #[pin]
        second: Attempt<S::Future>,
        // Set to the earliest of every pending instant.
        #[pin]
        timer: Option<Sleep>,
        control: Control<S, P, Req, S::Response>,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum Attempt<F> {
        Idle,
        Running { #[pin] fut: F, info: AttemptInfo },
    }
}

impl<F> Attempt<F> {
    fn info(&self) -> Option<AttemptInfo> {
        match self {
            Attempt::Running { info, .. } => Some(*info),
            Attempt::Idle => None,
        }
    }

    fn is_running(&self) -> bool {
        matches!(self, Attempt::Running { .. })
    }
}

impl<S, P, Req> fmt::Debug for ResponseFuture<S, P, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ResponseFuture");
        match &self.state {
            State::First { .. } => d.field("attempts", &1),
            State::Full { full } => d
                .field("attempts", &full.control.launched)
                .field("first", &full.first.info())
                .field("second", &full.second.info()),
        };
        d.finish_non_exhaustive()
    }
}

impl<S, P, Req> ResponseFuture<S, P, Req>
where
    S: Service<Req>,
{
    /// A first attempt with no timer and no hedge.
    #[inline]
    pub(crate) fn first(
        shared: Arc<Shared<P>>,
        fut: S::Future,
        svc: Option<S>,
        spare: Option<Req>,
        unsent_only: bool,
    ) -> Self {
        ResponseFuture {
            state: State::First {
                fut,
                shared,
                svc,
                spare,
                unsent_only,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared<P>>,
        fut: S::Future,
        until: Option<(Instant, bool)>,
        started: Option<Ticks>,
        svc: Option<S>,
        spare: Option<Req>,
        unsent_only: bool,
        deadline: Option<Instant>,
        hedge_at: Option<Instant>,
    ) -> Self {
        if until.is_none() && started.is_none() && hedge_at.is_none() {
            return ResponseFuture {
                state: State::First {
                    fut,
                    shared,
                    svc,
                    spare,
                    unsent_only,
                },
            };
        }
        let info = AttemptInfo {
            number: 1,
            hedge: false,
            until,
            started,
        };
        ResponseFuture {
            state: State::Full {
                full: Box::pin(Full {
                    first: Attempt::Running { fut, info },
                    second: Attempt::Idle,
                    timer: None,
                    control: Control::new(shared, svc, spare, unsent_only, deadline, hedge_at),
                }),
            },
        }
    }
}

impl<S, P, Req> Future for ResponseFuture<S, P, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: RetryPolicy<Req, S::Response, S::Error>,
    Req: Carrier,
{
    type Output = Output<S::Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let StateProj::First {
            fut,
            shared,
            svc,
            spare,
            unsent_only,
        } = state.as_mut().project()
        {
            let result = ready!(fut.poll(cx));
            if shared.policy.outcome(&result) != Outcome::Failure {
                return Poll::Ready(result.map_err(|e| RetryError::Inner(e.into())));
            }
            // The first attempt failed: from here on, the full machinery.
            let control = Control::new(
                shared.clone(),
                svc.take(),
                spare.take(),
                *unsent_only,
                None,
                None,
            );
            if let Some(out) = to_full(state.as_mut(), control, result) {
                return Poll::Ready(out);
            }
        }
        match state.project() {
            StateProj::Full { full } => {
                let full = full.as_mut().project();
                poll_full(full.first, full.second, full.timer, full.control, cx)
            }
            StateProj::First { .. } => Poll::Pending,
        }
    }
}

/// Decides on the first attempt's failure and, unless that ends the
/// request, moves the future to the full machinery. Out of line: the first
/// attempt's path stays small.
#[cold]
#[inline(never)]
fn to_full<S, P, Req>(
    mut state: Pin<&mut State<S, P, Req>>,
    mut control: Control<S, P, Req, S::Response>,
    result: Result<S::Response, S::Error>,
) -> Option<Output<S::Response>>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: RetryPolicy<Req, S::Response, S::Error>,
    Req: Carrier,
{
    let info = AttemptInfo {
        number: 1,
        hedge: false,
        until: None,
        started: None,
    };
    if let Step::Done(out) = control.finished(result, info, false) {
        return Some(out);
    }
    state.set(State::Full {
        full: Box::pin(Full {
            first: Attempt::Idle,
            second: Attempt::Idle,
            timer: None,
            control,
        }),
    });
    None
}

/// Polls the attempts in flight, drives the next attempt's readiness, and
/// handles the timer. Kept out of line so that the first attempt's path
/// stays small.
#[inline(never)]
fn poll_full<S, P, Req>(
    mut first: Pin<&mut Attempt<S::Future>>,
    mut second: Pin<&mut Attempt<S::Future>>,
    mut timer: Pin<&mut Option<Sleep>>,
    control: &mut Control<S, P, Req, S::Response>,
    cx: &mut Context<'_>,
) -> Poll<Output<S::Response>>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: RetryPolicy<Req, S::Response, S::Error>,
    Req: Carrier,
{
    'poll: loop {
        // 1. The attempts in flight.
        for index in 0..2 {
            let (mut mine, mut other) = pair(index, &mut first, &mut second);
            let AttemptProj::Running { fut, info } = mine.as_mut().project() else {
                continue;
            };
            let Poll::Ready(result) = fut.poll(cx) else {
                continue;
            };
            let info = *info;
            mine.set(Attempt::Idle);
            match control.finished(result, info, other.is_running()) {
                Step::Done(out) => {
                    // The loser, if any, is dropped: cancelled, never counted.
                    other.set(Attempt::Idle);
                    return Poll::Ready(out);
                }
                Step::Continue => continue 'poll,
            }
        }

        // 2. An attempt waiting for the service to become ready.
        if control.launch.is_some() {
            let ready = match control.svc.as_mut() {
                Some(svc) => svc.poll_ready(cx),
                None => Poll::Ready(Ok(())),
            };
            match ready {
                Poll::Ready(Ok(())) => {
                    let running = first.is_running() || second.is_running();
                    match control.start(running) {
                        Started::Attempt(fut, info) => {
                            let mut slot = if first.is_running() {
                                second.as_mut()
                            } else {
                                first.as_mut()
                            };
                            slot.set(Attempt::Running { fut, info });
                        }
                        Started::Gave(out) => return Poll::Ready(out),
                        Started::Nothing => {}
                    }
                    continue 'poll;
                }
                Poll::Ready(Err(e)) => {
                    let running = first.is_running() || second.is_running();
                    match control.service_failed(e.into(), running) {
                        Step::Done(out) => return Poll::Ready(out),
                        Step::Continue => continue 'poll,
                    }
                }
                Poll::Pending => {}
            }
        }

        // 3. One timer for the earliest pending instant.
        let until = |a: &Attempt<S::Future>| a.info().and_then(|i| i.until).map(|(t, _)| t);
        let next = [until(&first), until(&second), control.next_wake()]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            return Poll::Pending;
        };
        match timer.as_mut().as_pin_mut() {
            Some(sleep) if sleep.deadline() == at => {}
            Some(sleep) => sleep.reset(at),
            None => timer.set(Some(tokio::time::sleep_until(at))),
        }
        let Some(sleep) = timer.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        if sleep.poll(cx).is_pending() {
            return Poll::Pending;
        }

        // 4. The timer fired: everything due at `at` is due now.
        for index in 0..2 {
            let (mut mine, other) = pair(index, &mut first, &mut second);
            let Some(info) = mine.info() else { continue };
            let Some((t, is_deadline)) = info.until else {
                continue;
            };
            if t > at {
                continue;
            }
            mine.set(Attempt::Idle);
            let step = control.timed_out(info.number, is_deadline, other.is_running());
            if let Step::Done(out) = step {
                return finish(out, first, second);
            }
        }
        let running = first.is_running() || second.is_running();
        if control.launch_until.is_some_and(|(t, _)| t <= at) {
            if let Step::Done(out) = control.launch_timed_out(running) {
                return finish(out, first, second);
            }
        }
        if control.hedge_at.is_some_and(|t| t <= at) {
            if running {
                control.hedge_due(at);
            } else {
                control.hedge_at = None;
            }
        }
        if control.wake_at.is_some_and(|t| t <= at) {
            control.wake_due();
        }
    }
}

/// The attempt slot `index` and the other one.
fn pair<'a, F>(
    index: usize,
    first: &'a mut Pin<&mut Attempt<F>>,
    second: &'a mut Pin<&mut Attempt<F>>,
) -> (Pin<&'a mut Attempt<F>>, Pin<&'a mut Attempt<F>>) {
    if index == 0 {
        (first.as_mut(), second.as_mut())
    } else {
        (second.as_mut(), first.as_mut())
    }
}

/// Drops whatever is still in flight and returns `out`.
fn finish<F, T>(
    out: T,
    mut first: Pin<&mut Attempt<F>>,
    mut second: Pin<&mut Attempt<F>>,
) -> Poll<T> {
    first.set(Attempt::Idle);
    second.set(Attempt::Idle);
    Poll::Ready(out)
}
