//! The miss state machine of `Cache`'s response future: an asynchronous
//! lookup, a load led or awaited, an uncoalesced load after the wait bound.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::core::{Core, Joined};
use super::entry::{Age, Entry};
use super::error::CacheError;
use super::flight::{Driver, Waiter, Woken};
use super::judge::Judged;
use super::load::{BoxLoad, Load, Rules, Shared};
use super::policy::Policy;
use super::solo::{poll_bound, Solo};
use super::store::{CacheKey, Store};
use crate::classify::Classify;
use crate::clock::Ticks;
use crate::signal::{Carrier, DeadlineExceeded};
use crate::BoxError;

pub(crate) type CtxOf<S, Req, St, P, C> = Ctx<S, Req, <S as Service<Req>>::Response, St, P, C>;

/// What a response future needs beyond a hit: to start a load, or to go
/// upstream alone after the coalescing wait bound.
pub(crate) struct Ctx<S, Req, T, St, P, C> {
    pub(crate) svc: Option<S>,
    pub(crate) req: Option<Req>,
    pub(crate) key: CacheKey,
    pub(crate) bucket: Option<usize>,
    pub(crate) core: Arc<Core<T, St>>,
    pub(crate) rules: Arc<Rules<P, C>>,
}

impl<S, Req, T, St, P, C> Ctx<S, Req, T, St, P, C> {
    pub(crate) fn new(
        svc: S,
        req: Req,
        key: CacheKey,
        bucket: Option<usize>,
        core: Arc<Core<T, St>>,
        rules: Arc<Rules<P, C>>,
    ) -> Self {
        Ctx {
            svc: Some(svc),
            req: Some(req),
            key,
            bucket,
            core,
            rules,
        }
    }
}

pin_project! {
    /// A miss: it either drives the load (the first caller of a key, or a
    /// waiter that took the load over from a cancelled one) or waits to be
    /// woken with its result. Boxed inside the response future, so that hits
    /// stay small and allocation-free.
    pub(crate) struct MissFuture<S, Req, St, P, C>
    where
        S: Service<Req>,
        S::Response: Clone,
        St: Store<S::Response>,
    {
        #[pin]
        state: State<S, Req, St, P, C>,
        #[pin]
        deadline: Option<Sleep>,
        #[pin]
        bound: Option<Sleep>,
        deadline_at: Option<Instant>,
        // A stale entry to answer with if the load fails (stale-if-error).
        stale: Option<Entry<S::Response>>,
        ctx: Option<Ctx<S, Req, S::Response, St, P, C>>,
    }
}

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<S, Req, St, P, C>
    where
        S: Service<Req>,
        S::Response: Clone,
        St: Store<S::Response>,
    {
        Ready { out: Option<Result<S::Response, CacheError>> },
        Looking { get: St::Get },
        Leading { driver: Driver<S::Response, St> },
        Waiting { waiter: Waiter<S::Response, St> },
        Solo { #[pin] load: Load<S, Req, P, C>, solo: Solo<S::Response, St> },
        Finished,
    }
}

impl<S, Req, St, P, C> fmt::Debug for MissFuture<S, Req, St, P, C>
where
    S: Service<Req>,
    S::Response: Clone,
    St: Store<S::Response>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "ready",
            State::Looking { .. } => "looking up",
            State::Leading { .. } => "loading",
            State::Waiting { .. } => "waiting for a load",
            State::Solo { .. } => "loading alone",
            State::Finished => "finished",
        };
        f.debug_struct("MissFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, Req, St, P, C> MissFuture<S, Req, St, P, C>
where
    S: Service<Req>,
    S::Response: Clone,
    St: Store<S::Response>,
{
    fn with(state: State<S, Req, St, P, C>) -> Self {
        MissFuture {
            state,
            deadline: None,
            bound: None,
            deadline_at: None,
            stale: None,
            ctx: None,
        }
    }

    /// A future that answers `out` when polled: an answer known at once
    /// (a hit, an error).
    #[inline]
    pub(crate) fn ready(out: Result<S::Response, CacheError>) -> Self {
        Self::with(State::Ready { out: Some(out) })
    }

    /// The answer, if this miss turned out to need no waiting (a stale hit,
    /// a hit that started an early refresh).
    pub(crate) fn take_ready(&mut self) -> Option<Result<S::Response, CacheError>> {
        match &mut self.state {
            State::Ready { out } => out.take(),
            _ => None,
        }
    }

    pub(crate) fn looking(get: St::Get, ctx: Ctx<S, Req, S::Response, St, P, C>) -> Self
    where
        Req: Carrier,
    {
        let mut fut = Self::with(State::Looking { get });
        fut.deadline_at = ctx.req.as_ref().and_then(Carrier::deadline);
        fut.ctx = Some(ctx);
        fut
    }
}

impl<S, Req, St, P, C> MissFuture<S, Req, St, P, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Response: Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Req: Carrier + Send + 'static,
    St: Store<S::Response>,
    P: Policy<Req, S::Response>,
    C: Classify<S::Response, S::Error> + Send + Sync + 'static,
{
    /// Decides what a request does once its lookup is known (and was not a
    /// plain fresh hit): a hit with an early refresh, a stale hit with a
    /// background refresh, or a miss (with a stale fallback for
    /// stale-if-error when the entry is in that window).
    pub(crate) fn dispatch(
        mut ctx: Ctx<S, Req, S::Response, St, P, C>,
        found: Option<Entry<S::Response>>,
        age: Age,
        early: bool,
        now: Ticks,
    ) -> Self {
        let core = ctx.core.clone();
        if let Some(entry) = &found {
            // Judged at `now`, so its age costs no clock read.
            let serve = |rules: &Rules<P, C>| rules.serve(&core, entry.answer(), entry.age_at(now));
            match age {
                Age::Fresh if !early => return Self::ready(serve(&ctx.rules)),
                Age::Fresh | Age::Revalidate => {
                    if age == Age::Revalidate {
                        core.stats.stale_hits.inc();
                        tracing::debug!("stale cache entry served while it is refreshed");
                    }
                    if let (Some(svc), Some(req)) = (ctx.svc.take(), ctx.req.take()) {
                        let variant = ctx.bucket.map(|b| (b, core.variant_fence_bucket(b)));
                        let rules = ctx.rules.clone();
                        let stale = entry.value().ok().cloned();
                        core.spawn_refresh(&ctx.key, variant, move || {
                            Box::pin(Load::new(svc, req, rules, stale.as_ref()))
                                as BoxLoad<S::Response>
                        });
                    }
                    if age == Age::Fresh {
                        return Self::ready(serve(&ctx.rules));
                    }
                    // Counted as a stale hit above, not as a fresh one.
                    let out = entry
                        .answer()
                        .map(|v| ctx.rules.policy.served(v, entry.age_at(now)))
                        .map_err(CacheError::Upstream);
                    return Self::ready(out);
                }
                Age::IfError | Age::Dead => {}
            }
        }
        core.stats.misses.inc();
        let deadline_at = ctx.req.as_ref().and_then(Carrier::deadline);
        let stale = found.clone().filter(|_| age == Age::IfError);
        let variant = ctx.bucket.map(|b| (b, core.variant_fence_bucket(b)));
        match core.join_or_lead(&ctx.key, variant) {
            Joined::Wait(waiter) => {
                if core.settings.coalesce_timeout.is_none() {
                    // Nothing to go upstream with later: let them go now.
                    ctx.svc = None;
                    ctx.req = None;
                }
                let mut fut = Self::with(State::Waiting { waiter });
                fut.deadline_at = deadline_at;
                fut.stale = stale;
                fut.ctx = Some(ctx);
                fut
            }
            Joined::Lead(flight) => {
                core.stats.loads.inc();
                let (Some(svc), Some(req)) = (ctx.svc.take(), ctx.req.take()) else {
                    return Self::with(State::Ready {
                        out: Some(Err(CacheError::LoadPanicked)),
                    });
                };
                let revalidate = found.as_ref().and_then(|e| e.value().ok());
                let load: BoxLoad<S::Response> =
                    Box::pin(Load::new(svc, req, ctx.rules.clone(), revalidate));
                let mut fut = Self::with(State::Leading {
                    driver: Driver::new(core, flight, load),
                });
                fut.deadline_at = deadline_at;
                fut.stale = stale;
                fut.ctx = Some(ctx);
                fut
            }
        }
    }
}

/// What a finished load means for this caller: its result, or the stale
/// entry when the load failed within the entry's stale-if-error window.
fn answer<Req, T: Clone, St: Store<T>, P: Policy<Req, T>, C>(
    shared: Shared<T>,
    stale: &mut Option<Entry<T>>,
    ctx: Option<&Ctx<impl Sized, Req, T, St, P, C>>,
) -> Result<T, CacheError> {
    if shared.failure {
        if let (Some(entry), Some(ctx)) = (stale.take(), ctx) {
            let now = ctx.core.clock.ticks();
            if entry.serves_if_error(now) {
                if let Ok(v) = entry.value() {
                    ctx.core.stats.stale_if_error.inc();
                    tracing::debug!("cache load failed: stale entry served instead");
                    return Ok(ctx.rules.policy.served(v.clone(), entry.age_at(now)));
                }
            }
        }
    }
    shared.result
}

impl<S, Req, St, P, C> Future for MissFuture<S, Req, St, P, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Response: Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Req: Carrier + Send + 'static,
    St: Store<S::Response>,
    P: Policy<Req, S::Response>,
    C: Classify<S::Response, S::Error> + Send + Sync + 'static,
{
    type Output = Result<S::Response, CacheError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // An asynchronous lookup resolves into a whole new future (while it
        // is pending, the request's deadline bounds it like any wait).
        if let StateProj::Looking { get } = self.as_mut().project().state.project() {
            if let Poll::Ready(found) = Pin::new(get).poll(cx) {
                let Some(ctx) = self.as_mut().project().ctx.take() else {
                    return Poll::Pending;
                };
                let next = match ctx.core.judge(found.as_ref(), ctx.bucket) {
                    Judged::Hit { answer, stored_for } => {
                        Self::ready(ctx.rules.serve(&ctx.core, answer, stored_for))
                    }
                    Judged::Other {
                        found,
                        age,
                        early,
                        now,
                    } => Self::dispatch(ctx, found, age, early, now),
                };
                self.set(next);
            }
        }
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Ready { out } => {
                    return match out.take() {
                        Some(out) => Poll::Ready(out),
                        None => Poll::Pending,
                    };
                }
                StateProj::Finished => return Poll::Pending,
                StateProj::Looking { .. } => {}
                StateProj::Leading { driver } => {
                    if let Poll::Ready(shared) = driver.poll(cx) {
                        this.state.set(State::Finished);
                        return Poll::Ready(answer(shared, this.stale, this.ctx.as_ref()));
                    }
                }
                StateProj::Waiting { waiter } => match waiter.poll(cx) {
                    Poll::Ready(Woken::Done(shared)) => {
                        this.state.set(State::Finished);
                        return Poll::Ready(answer(shared, this.stale, this.ctx.as_ref()));
                    }
                    Poll::Ready(Woken::TakeOver(load)) => {
                        let flight = waiter.flight.clone();
                        let core = waiter.core.clone();
                        this.state.set(State::Leading {
                            driver: Driver::new(core, flight, load),
                        });
                        continue;
                    }
                    Poll::Pending => {
                        if let Some(next) = poll_bound(this.bound.as_mut(), this.ctx, cx) {
                            this.state.set(next);
                            continue;
                        }
                    }
                },
                StateProj::Solo { load, solo } => {
                    if let Poll::Ready(out) = load.poll(cx) {
                        let shared = solo.finish(out);
                        this.state.set(State::Finished);
                        return Poll::Ready(answer(shared, this.stale, this.ctx.as_ref()));
                    }
                }
            }
            // Pending on a load: the request's deadline ends the wait.
            let Some(at) = *this.deadline_at else {
                return Poll::Pending;
            };
            if this.deadline.is_none() {
                this.deadline.set(Some(tokio::time::sleep_until(at)));
            }
            if let Some(sleep) = this.deadline.as_mut().as_pin_mut() {
                ready!(sleep.poll(cx));
            }
            // Dropping the state hands a driven load over to a waiter.
            this.state.set(State::Finished);
            if let Some(ctx) = this.ctx.as_ref() {
                ctx.core.stats.deadline_exceeded.inc();
            }
            let shared = Shared {
                result: Err(CacheError::DeadlineExceeded(DeadlineExceeded)),
                failure: true,
            };
            return Poll::Ready(answer(shared, this.stale, this.ctx.as_ref()));
        }
    }
}
