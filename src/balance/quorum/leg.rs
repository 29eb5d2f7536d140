//! One copy of a quorum call on one replica: drives that replica's
//! readiness (bounded by `ready_timeout`), sends the copy, and records the
//! outcome into the replica's load and health exactly as a single call does.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::error::CopyError;
use crate::balance::core::Shared;
use crate::balance::flight::InFlight;
use crate::balance::ReplicaId;
use crate::classify::{Classify, Outcome};
use crate::clock::Ticks;
use crate::signal::{Carrier, Unavailable, UnavailableKind};
use crate::BoxError;

/// How a copy ended.
pub(crate) enum Answer<Res> {
    /// The replica answered, and the answer is not a failure.
    Ok(Res),
    /// The copy failed (the error is the replica's, or a [`CopyError`]).
    Failed(BoxError),
    /// The outcome was decided before the copy was sent: it never will be.
    Abandoned,
}

pin_project! {
    /// One copy of a quorum call on one replica.
    pub(crate) struct Leg<S, C, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        // Bounds the wait for readiness; made when the replica is first not
        // ready (boxed: a rare path, and it keeps every copy small).
        wait: Option<Pin<Box<Sleep>>>,
        pub(crate) replica: ReplicaId,
        svc: Option<S>,
        req: Option<Req>,
        flight: Option<InFlight>,
        shared: Arc<Shared>,
        classify: C,
        ready_by: Instant,
        // When the call read the clock: the send time if the replica is ready at once.
        picked_at: Option<Ticks>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Readying,
        Calling { #[pin] fut: F },
        Done,
    }
}

impl<S, C, Req> Leg<S, C, Req>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        svc: S,
        flight: InFlight,
        req: Req,
        shared: Arc<Shared>,
        classify: C,
        ready_by: Instant,
        picked_at: Option<Ticks>,
    ) -> Self {
        Leg {
            state: State::Readying,
            wait: None,
            replica: flight.state.id.clone(),
            svc: Some(svc),
            req: Some(req),
            flight: Some(flight),
            shared,
            classify,
            ready_by,
            picked_at,
        }
    }

    /// Whether the copy has been handed to its replica.
    pub(crate) fn sent(&self) -> bool {
        matches!(self.state, State::Calling { .. })
    }

    /// Gives up a copy not sent yet (releasing its replica and in-flight
    /// slot); it then ends as [`Answer::Abandoned`]. Returns whether it did.
    pub(crate) fn abandon(self: Pin<&mut Self>) -> bool {
        let mut this = self.project();
        if !matches!(this.state.as_mut().project(), StateProj::Readying) {
            return false;
        }
        this.state.set(State::Done);
        *this.wait = None;
        *this.svc = None;
        *this.req = None;
        *this.flight = None;
        true
    }
}

impl<S, C, Req> Future for Leg<S, C, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
    Req: Carrier,
{
    type Output = (ReplicaId, Answer<S::Response>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let replica = self.replica.clone();
        self.drive(cx).map(|answer| (replica, answer))
    }
}

impl<S, C, Req> Leg<S, C, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
    Req: Carrier,
{
    fn drive(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<S::Response>> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Done => return Poll::Ready(Answer::Abandoned),
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx));
                    let class = this.classify.classify(&result);
                    let failed = class.now() == Some(Outcome::Failure);
                    if let Some(flight) = this.flight.take() {
                        flight.complete(this.shared, class);
                    }
                    this.state.set(State::Done);
                    return Poll::Ready(match result {
                        Ok(_) if failed => Answer::Failed(Box::new(CopyError::ClassifiedFailure)),
                        Ok(res) => Answer::Ok(res),
                        Err(e) => Answer::Failed(e.into()),
                    });
                }
                StateProj::Readying => {}
            }
            let (Some(svc), Some(flight)) = (this.svc.as_mut(), this.flight.as_mut()) else {
                this.state.set(State::Done);
                continue;
            };
            if flight.state.removed.load(Ordering::Relaxed) {
                *this.flight = None;
                this.state.set(State::Done);
                return Poll::Ready(Answer::Failed(Box::new(CopyError::Removed)));
            }
            match svc.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let Some(req) = this.req.take() else {
                        this.state.set(State::Done);
                        continue;
                    };
                    if let Some(mark) = req.attempt() {
                        mark.record(flight.state.endpoint);
                    }
                    if this.shared.settings.timed() {
                        let at = this
                            .picked_at
                            .take()
                            .unwrap_or_else(|| this.shared.clock.ticks());
                        flight.sent_at = Some(at);
                    }
                    let fut = svc.call(req);
                    *this.svc = None;
                    *this.wait = None;
                    this.state.set(State::Calling { fut });
                }
                Poll::Ready(Err(e)) => {
                    if let Some(flight) = this.flight.take() {
                        flight.fail(this.shared);
                    }
                    tracing::debug!(replica = %this.replica, "replica failed its readiness in a quorum call");
                    this.state.set(State::Done);
                    return Poll::Ready(Answer::Failed(e.into()));
                }
                Poll::Pending => {
                    *this.picked_at = None;
                    let wait = this
                        .wait
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*this.ready_by)));
                    ready!(wait.as_mut().poll(cx));
                    // Not ready in time: no verdict on the replica's health,
                    // as for a single call that waited in vain.
                    *this.flight = None;
                    this.state.set(State::Done);
                    let signal = Unavailable::new(UnavailableKind::NotReady);
                    return Poll::Ready(Answer::Failed(Box::new(CopyError::NotReady { signal })));
                }
            }
        }
    }
}
