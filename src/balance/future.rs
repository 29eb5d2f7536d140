//! The response future of `Balance`: drives the chosen replica's readiness
//! (trying a second replica while the first is not ready), waits a bounded
//! time when none is available, calls the replica and records the outcome.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::core::{Core, RECHECK};
use super::error::BalanceError;
use super::flight::InFlight;
use super::set::{Avoid, Choice, Now};
use crate::classify::Classify;
use crate::clock::Ticks;
use crate::signal::{
    wait_until, Carrier, DeadlineExceeded, EndpointId, Unavailable, UnavailableKind,
};
use crate::BoxError;

/// Readiness errors after which a request gives up looking for a replica.
const MAX_READY_ERRORS: usize = 3;

/// A replica chosen for a request, with its in-flight slot.
pub(crate) struct Cand<S> {
    pub(crate) svc: S,
    pub(crate) flight: InFlight,
}

pin_project! {
    /// The response future of [`Balance`](super::Balance).
    pub struct ResponseFuture<S, C, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future, S>,
        // Boxed: only a request that must wait for a replica needs it, and
        // inline it would make every request's future larger.
        sleep: Option<Pin<Box<Sleep>>>,
        core: Option<Arc<Core<S>>>,
        classify: C,
        req: Option<Req>,
        // The replica the request was sent to.
        calling: Option<InFlight>,
        // When the first pick read the clock: the send time if the replica
        // is ready at once.
        picked_at: Option<Ticks>,
        // Replicas this request must not pick again (readiness failed).
        broken: Vec<EndpointId>,
        last_error: Option<BalanceError>,
        // When the wait for a replica ends, once the request has waited.
        bound: Option<Instant>,
        waits_for_deadline: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S> {
        // Up to two replicas whose readiness is being driven. Kept in the
        // state so that they share their room with the call's future.
        Finding { cands: [Option<Cand<S>>; 2] },
        Calling { #[pin] fut: F },
        Failed { err: Option<BalanceError> },
    }
}

impl<S, C, Req> fmt::Debug for ResponseFuture<S, C, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replica = self.calling.as_ref().map(|c| &c.state.id);
        f.debug_struct("ResponseFuture")
            .field("replica", &replica)
            .finish_non_exhaustive()
    }
}

/// The endpoints earlier attempts of `req` used, when it is a retry.
fn tried<Req: Carrier>(req: &Req) -> Vec<EndpointId> {
    match req.attempt() {
        Some(mark) if mark.attempt() > 1 => mark.tried(),
        _ => Vec::new(),
    }
}

impl<S, C, Req> ResponseFuture<S, C, Req>
where
    S: Service<Req> + Clone,
    Req: Carrier,
{
    /// Picks a replica for `req` (the work `Balance::call` does).
    pub(crate) fn start(core: &Arc<Core<S>>, classify: C, req: Req) -> Self {
        if let Some(e) = core.invalid.get() {
            return Self::failed(classify, BalanceError::Membership(e.clone()));
        }
        let mut now = Now::new(&core.shared.clock);
        let soft = tried(&req);
        let avoid = Avoid {
            hard: &[],
            soft: &soft,
        };
        let first = match pick(core, &avoid, &mut now) {
            Ok(c) => Some(c),
            Err(None) => {
                core.shared.stats.no_replicas.inc();
                let signal = Unavailable::new(UnavailableKind::NoneAvailable);
                return Self::failed(classify, BalanceError::NoReplicas { signal });
            }
            Err(Some(_)) => None,
        };
        ResponseFuture {
            state: State::Finding {
                cands: [first, None],
            },
            sleep: None,
            core: Some(core.clone()),
            classify,
            req: Some(req),
            calling: None,
            picked_at: now.at,
            broken: Vec::new(),
            last_error: None,
            bound: None,
            waits_for_deadline: false,
        }
    }

    fn failed(classify: C, err: BalanceError) -> Self {
        ResponseFuture {
            state: State::Failed { err: Some(err) },
            sleep: None,
            core: None,
            classify,
            req: None,
            calling: None,
            picked_at: None,
            broken: Vec::new(),
            last_error: None,
            bound: None,
            waits_for_deadline: false,
        }
    }
}

/// A candidate for the request, or why there is none: `Err(None)` when the
/// set is empty, `Err(Some(until))` when nothing is available (and when
/// something may be).
fn pick<S: Clone>(
    core: &Core<S>,
    avoid: &Avoid<'_>,
    now: &mut Now<'_>,
) -> Result<Cand<S>, Option<Option<Instant>>> {
    let set = core.set.load();
    match set.choose(&core.shared, &core.cursor, avoid, now) {
        Choice::Slot(i) => {
            let slot = &set.slots[i];
            Ok(Cand {
                svc: slot.service.clone(),
                flight: InFlight::new(slot.state.clone(), &core.shared),
            })
        }
        Choice::None(until) => Err(Some(until)),
        Choice::Empty => Err(None),
    }
}

impl<S, C, Req> Future for ResponseFuture<S, C, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
    Req: Carrier,
{
    type Output = Result<S::Response, BalanceError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { err } => {
                    let signal = Unavailable::new(UnavailableKind::NoneAvailable);
                    return Poll::Ready(Err(err
                        .take()
                        .unwrap_or(BalanceError::Unavailable { signal })));
                }
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx));
                    let class = this.classify.classify(&result);
                    let (Some(flight), Some(core)) = (this.calling.take(), this.core.as_ref())
                    else {
                        return Poll::Ready(Err(BalanceError::Unavailable {
                            signal: Unavailable::new(UnavailableKind::NoneAvailable),
                        }));
                    };
                    let replica = result.is_err().then(|| flight.state.id.clone());
                    flight.complete(&core.shared, class);
                    return Poll::Ready(result.map_err(|e| BalanceError::Inner {
                        replica: replica.unwrap_or_else(|| "?".into()),
                        source: e.into(),
                    }));
                }
                StateProj::Finding { .. } => {}
            }
            let Some(core) = this.core.as_ref() else {
                this.state.set(State::Failed { err: None });
                continue;
            };
            let StateProj::Finding { cands } = this.state.as_mut().project() else {
                continue;
            };
            // 1. Drive the readiness of the replicas held.
            let mut sent = None;
            // Indexed: the loop body clears `cands[k]` while holding `k`.
            #[allow(clippy::needless_range_loop)]
            for k in 0..2 {
                let Some(cand) = cands[k].as_mut() else {
                    continue;
                };
                let polled = cand.svc.poll_ready(cx);
                let removed = cand.flight.state.removed.load(Ordering::Relaxed);
                match polled {
                    Poll::Pending => {}
                    Poll::Ready(Ok(())) if removed => {
                        // It left the set while the request waited for it.
                        cands[k] = None;
                    }
                    Poll::Ready(Ok(())) => {
                        let (Some(mut cand), Some(req)) = (cands[k].take(), this.req.take()) else {
                            continue;
                        };
                        if let Some(mark) = req.attempt() {
                            mark.record(cand.flight.state.endpoint);
                        }
                        if core.shared.settings.timed() {
                            let at = this
                                .picked_at
                                .take()
                                .unwrap_or_else(|| core.shared.clock.ticks());
                            cand.flight.sent_at = Some(at);
                        }
                        let fut = cand.svc.call(req);
                        *this.calling = Some(cand.flight);
                        *this.sleep = None;
                        sent = Some(fut);
                        break;
                    }
                    Poll::Ready(Err(e)) => {
                        if let Some(cand) = cands[k].take() {
                            let id = cand.flight.state.id.clone();
                            tracing::debug!(replica = %id, "replica failed its readiness; trying another");
                            this.broken.push(cand.flight.state.endpoint);
                            cand.flight.fail(&core.shared);
                            *this.last_error = Some(BalanceError::Inner {
                                replica: id,
                                source: e.into(),
                            });
                        }
                    }
                }
            }
            if let Some(fut) = sent {
                this.state.set(State::Calling { fut });
                continue;
            }
            *this.picked_at = None;
            // 2. Hold a second replica while the first is not ready.
            let held = cands.iter().filter(|c| c.is_some()).count();
            let mut hint = None;
            if held < 2 {
                if this.broken.len() >= MAX_READY_ERRORS && held == 0 {
                    let err = this.last_error.take();
                    this.state.set(State::Failed { err });
                    continue;
                }
                let Some(req) = this.req.as_ref() else {
                    this.state.set(State::Failed { err: None });
                    continue;
                };
                let mut hard: Vec<EndpointId> = this.broken.clone();
                hard.extend(cands.iter().flatten().map(|c| c.flight.state.endpoint));
                let soft = tried(req);
                let avoid = Avoid {
                    hard: &hard,
                    soft: &soft,
                };
                match pick(core, &avoid, &mut Now::new(&core.shared.clock)) {
                    Ok(cand) => {
                        let free = if cands[0].is_none() { 0 } else { 1 };
                        cands[free] = Some(cand);
                        continue;
                    }
                    Err(None) if held == 0 => {
                        core.shared.stats.no_replicas.inc();
                        let signal = Unavailable::new(UnavailableKind::NoneAvailable);
                        this.state.set(State::Failed {
                            err: Some(BalanceError::NoReplicas { signal }),
                        });
                        continue;
                    }
                    Err(until) => hint = until.flatten(),
                }
            }
            // 3. Wait, within the bound, for readiness or for a replica.
            let now = core.shared.clock.now();
            let bound = match *this.bound {
                Some(b) => b,
                None => {
                    let deadline = this.req.as_ref().and_then(Carrier::deadline);
                    let b = wait_until(now, core.shared.settings.ready_timeout, deadline);
                    *this.waits_for_deadline = deadline == Some(b);
                    *this.bound = Some(b);
                    b
                }
            };
            if now >= bound {
                let err = if *this.waits_for_deadline {
                    core.shared.stats.deadline_exceeded.inc();
                    BalanceError::DeadlineExceeded {
                        source: DeadlineExceeded,
                    }
                } else {
                    core.shared.stats.unavailable.inc();
                    let retry_after = hint.map(|t| t.saturating_duration_since(now));
                    BalanceError::Unavailable {
                        signal: Unavailable::new(UnavailableKind::NoneAvailable)
                            .with_retry_after(retry_after),
                    }
                };
                *cands = [None, None];
                this.state.set(State::Failed { err: Some(err) });
                continue;
            }
            let wake = if held < 2 {
                core.shared.wait(cx.waker());
                let again = hint.unwrap_or(now + RECHECK);
                bound.min(again.max(now + std::time::Duration::from_millis(1)))
            } else {
                bound
            };
            let sleep = match this.sleep {
                Some(s) => {
                    if s.deadline() != wake {
                        s.as_mut().reset(wake);
                    }
                    s
                }
                None => this.sleep.insert(Box::pin(tokio::time::sleep_until(wake))),
            };
            ready!(sleep.as_mut().poll(cx));
        }
    }
}
