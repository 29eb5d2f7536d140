//! The response future of `Shard`: drives the chosen shard's readiness, calls
//! it, and with `hops > 0` moves on along the preference list.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::error::ShardError;
use super::placement::Placement;
use super::service::{Core, SlotInfo, Snapshot};
use crate::signal::{
    find_unavailable, wait_until, Carrier, DeadlineExceeded, Replay, Unavailable, UnavailableKind,
};
use crate::BoxError;

pin_project! {
    /// The response future of [`Shard`](super::Shard).
    pub struct ResponseFuture<S, R, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        #[pin]
        sleep: Option<Sleep>,
        // The wait ends by the request's deadline rather than `ready_timeout`.
        waits_for_deadline: bool,
        svc: Option<S>,
        req: Option<Req>,
        info: Option<Arc<SlotInfo>>,
        core: Option<Arc<Core<S>>>,
        failover: Option<Failover<S, R, Req>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Waiting,
        Calling { #[pin] fut: F },
        Failed { err: Option<ShardError> },
    }
}

/// What a request routed in failover mode needs to move on.
pub(crate) struct Failover<S, R, Req> {
    snap: Arc<Snapshot<S>>,
    hash: u64,
    /// The preference list, computed the first time the request moves on.
    prefs: Vec<usize>,
    pos: usize,
    replay: R,
    /// A copy of the request, made before each call, to send on if the shard
    /// answers with the unavailable signal.
    spare: Option<Req>,
}

impl<S, R, Req> fmt::Debug for ResponseFuture<S, R, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("shard", &self.info.as_ref().map(|i| &i.id))
            .finish_non_exhaustive()
    }
}

impl<S, R, Req> ResponseFuture<S, R, Req>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        svc: S,
        info: Arc<SlotInfo>,
        req: Req,
        core: Arc<Core<S>>,
        failover: Option<Failover<S, R, Req>>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting,
            sleep: None,
            waits_for_deadline: false,
            svc: Some(svc),
            req: Some(req),
            info: Some(info),
            core: Some(core),
            failover,
        }
    }

    pub(crate) fn failed(err: ShardError) -> Self {
        ResponseFuture {
            state: State::Failed { err: Some(err) },
            sleep: None,
            waits_for_deadline: false,
            svc: None,
            req: None,
            info: None,
            core: None,
            failover: None,
        }
    }
}

impl<S, R, Req> Failover<S, R, Req> {
    /// The next shard of the preference list that is not known unavailable.
    fn next(&mut self, core: &Core<S>) -> Option<(S, Arc<SlotInfo>)>
    where
        S: Clone,
    {
        let table = self.snap.table.as_ref()?;
        if self.prefs.is_empty() {
            table.preference_hash(self.hash, core.hops as usize + 1, &mut self.prefs);
        }
        while self.pos + 1 < self.prefs.len() {
            self.pos += 1;
            let slot = &self.snap.slots[self.prefs[self.pos]];
            if core.unavailable(&slot.info).is_none() {
                core.stats.failovers.inc();
                slot.info.stats.requests.inc();
                tracing::debug!(shard = %slot.info.id, hop = self.pos, "request sent on along the preference list");
                return Some((slot.service.clone(), slot.info.clone()));
            }
        }
        None
    }
}

/// Starts a request in failover mode (`hops > 0`).
pub(crate) fn failover_call<S, R, Req>(
    core: Arc<Core<S>>,
    snap: Arc<Snapshot<S>>,
    hash: u64,
    replay: R,
    req: Req,
) -> ResponseFuture<S, R, Req>
where
    S: Service<Req> + Clone,
{
    let Some(table) = snap.table.as_ref() else {
        return ResponseFuture::failed(core.no_table_error(&snap));
    };
    let owner = table.route_hash(hash);
    let owner_slot = &snap.slots[owner];
    let first = core.unavailable(&owner_slot.info);
    let owner_info = owner_slot.info.clone();
    let owner_svc = owner_slot.service.clone();
    let mut failover = Failover {
        snap: snap.clone(),
        hash,
        prefs: Vec::new(),
        pos: 0,
        replay,
        spare: None,
    };
    match first {
        None => ResponseFuture::new(owner_svc, owner_info, req, core, Some(failover)),
        Some(err) => match failover.next(&core) {
            Some((svc, info)) => {
                owner_info.stats.failovers_away.inc();
                ResponseFuture::new(svc, info, req, core, Some(failover))
            }
            None => ResponseFuture::failed(err),
        },
    }
}

impl<S, R, Req> Future for ResponseFuture<S, R, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    R: Replay<Req>,
    Req: Carrier,
{
    type Output = Result<S::Response, ShardError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { err } => {
                    return Poll::Ready(Err(err.take().unwrap_or(ShardError::NoShards)));
                }
                StateProj::Waiting => {
                    let (Some(svc), Some(info), Some(core)) =
                        (this.svc.as_mut(), this.info.as_ref(), this.core.as_ref())
                    else {
                        return Poll::Ready(Err(ShardError::NoShards));
                    };
                    match svc.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            let Some(req) = this.req.take() else {
                                return Poll::Ready(Err(ShardError::NoShards));
                            };
                            if let Some(f) = this.failover.as_mut() {
                                if (f.pos as u32) < core.hops {
                                    f.spare = f.replay.replay(&req);
                                }
                            }
                            let fut = svc.call(req);
                            this.sleep.set(None);
                            this.state.set(State::Calling { fut });
                        }
                        Poll::Ready(Err(e)) => {
                            let err = ShardError::Inner {
                                shard: info.id.clone(),
                                source: e.into(),
                            };
                            this.state.set(State::Failed { err: Some(err) });
                        }
                        Poll::Pending => {
                            if this.sleep.is_none() {
                                let now = core.clock.now();
                                let deadline = this.req.as_ref().and_then(Carrier::deadline);
                                let until = wait_until(now, core.ready_timeout, deadline);
                                *this.waits_for_deadline = deadline == Some(until);
                                this.sleep.set(Some(tokio::time::sleep_until(until)));
                            }
                            let Some(sleep) = this.sleep.as_mut().as_pin_mut() else {
                                return Poll::Pending;
                            };
                            ready!(sleep.poll(cx));
                            // The shard did not become ready in time.
                            let err = if *this.waits_for_deadline {
                                info.stats.deadline_exceeded.inc();
                                ShardError::DeadlineExceeded {
                                    shard: info.id.clone(),
                                    source: DeadlineExceeded,
                                }
                            } else {
                                info.stats.not_ready_timeouts.inc();
                                tracing::debug!(shard = %info.id, "shard not ready within ready_timeout");
                                let retry_after = info
                                    .health
                                    .as_ref()
                                    .and_then(|h| h.retry_after(Instant::now()));
                                ShardError::Unavailable {
                                    shard: info.id.clone(),
                                    signal: Unavailable::new(UnavailableKind::NotReady)
                                        .with_retry_after(retry_after),
                                }
                            };
                            this.sleep.set(None);
                            let moved_on = !*this.waits_for_deadline
                                && move_on(this.failover, core, this.svc, this.info, None);
                            if !moved_on {
                                this.state.set(State::Failed { err: Some(err) });
                            }
                        }
                    }
                }
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx));
                    let e = match result {
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(e) => e.into(),
                    };
                    let (Some(info), Some(core)) = (this.info.as_ref(), this.core.as_ref()) else {
                        return Poll::Ready(Err(ShardError::NoShards));
                    };
                    let shard = info.id.clone();
                    // Only an answer that says "unavailable" moves on, and only
                    // when a copy of the request was made before the call.
                    let spare = match this.failover.as_mut() {
                        Some(f) if find_unavailable(&*e).is_some() => f.spare.take(),
                        _ => None,
                    };
                    if let Some(spare) = spare {
                        if move_on(
                            this.failover,
                            core,
                            this.svc,
                            this.info,
                            Some((spare, this.req)),
                        ) {
                            this.state.set(State::Waiting);
                            continue;
                        }
                    }
                    return Poll::Ready(Err(ShardError::Inner { shard, source: e }));
                }
            }
        }
    }
}

/// Points the future at the next available shard of the preference list.
/// Returns `false` when there is none (or no failover).
fn move_on<S: Clone, R, Req>(
    failover: &mut Option<Failover<S, R, Req>>,
    core: &Core<S>,
    svc: &mut Option<S>,
    info: &mut Option<Arc<SlotInfo>>,
    request: Option<(Req, &mut Option<Req>)>,
) -> bool {
    let Some(f) = failover.as_mut() else {
        return false;
    };
    let Some((next_svc, next_info)) = f.next(core) else {
        return false;
    };
    if let Some(old) = info.as_ref() {
        old.stats.failovers_away.inc();
    }
    if let Some((req, slot)) = request {
        *slot = Some(req);
    }
    *svc = Some(next_svc);
    *info = Some(next_info);
    true
}
