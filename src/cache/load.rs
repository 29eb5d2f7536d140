//! Loads: driving the inner service's readiness, calling it, and judging the
//! answer (shared result, what to store).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::entry::Freshness;
use super::error::{CacheError, SharedError};
use super::policy::Policy;
use crate::classify::{Classify, Outcome};
use crate::clock::Clock;
use crate::signal::{find_unavailable, Unavailable, UnavailableKind};
use crate::BoxError;

/// What every load of a cache needs to judge its answer.
pub(crate) struct Rules<P, C> {
    pub(crate) policy: P,
    pub(crate) classify: C,
    pub(crate) freshness: Freshness,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) ready_timeout: Duration,
    pub(crate) clock: Clock,
}

impl<P, C> Rules<P, C> {
    /// The answer of a servable entry that had been stored for
    /// `stored_for`, counted as a hit (or a negative hit), and adjusted by
    /// the policy ([`Policy::served`]) when it is a response.
    #[inline]
    pub(crate) fn serve<Req, T: Clone, St: super::store::Store<T>>(
        &self,
        core: &super::core::Core<T, St>,
        answer: Result<T, SharedError>,
        stored_for: Duration,
    ) -> Result<T, CacheError>
    where
        P: Policy<Req, T>,
    {
        core.serve(answer)
            .map(|v| self.policy.served(v, stored_for))
    }
}

/// The inner service did not become ready within `ready_timeout`.
pub(crate) struct Shed;

impl Shed {
    pub(crate) fn error() -> CacheError {
        CacheError::Overloaded(Unavailable::new(UnavailableKind::Overloaded))
    }
}

pin_project! {
    /// Drives a clone of the inner service to readiness (bounded by
    /// `ready_timeout`), then calls it.
    pub(crate) struct Call<S, Req>
    where
        S: Service<Req>,
    {
        svc: S,
        req: Option<Req>,
        ready_timeout: Duration,
        #[pin]
        fut: Option<S::Future>,
        // Boxed: only a call that has to wait for readiness pays for it.
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<S: Service<Req>, Req> Call<S, Req> {
    pub(crate) fn new(svc: S, req: Req, ready_timeout: Duration) -> Self {
        Call {
            svc,
            req: Some(req),
            ready_timeout,
            fut: None,
            sleep: None,
        }
    }
}

impl<S: Service<Req>, Req> Future for Call<S, Req> {
    type Output = Result<Result<S::Response, S::Error>, Shed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(fut) = this.fut.as_mut().as_pin_mut() {
                return fut.poll(cx).map(Ok);
            }
            match this.svc.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let Some(req) = this.req.take() else {
                        return Poll::Ready(Err(Shed));
                    };
                    let fut = this.svc.call(req);
                    this.fut.set(Some(fut));
                    *this.sleep = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Ok(Err(e))),
                Poll::Pending => {
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(*this.ready_timeout)));
                    ready!(sleep.as_mut().poll(cx));
                    tracing::warn!(timeout = ?this.ready_timeout, "cache miss shed: inner service not ready in time");
                    return Poll::Ready(Err(Shed));
                }
            }
        }
    }
}

/// The result every caller of one load gets.
#[derive(Clone, Debug)]
pub(crate) struct Shared<T> {
    pub(crate) result: Result<T, CacheError>,
    /// Whether the load failed, by the classifier or the unavailable signal:
    /// a stale entry in its stale-if-error window is served instead.
    pub(crate) failure: bool,
}

/// What a load asks to be stored.
pub(crate) struct Keep<T> {
    pub(crate) value: Result<T, SharedError>,
    pub(crate) freshness: Freshness,
    pub(crate) took: Duration,
}

pub(crate) struct LoadOutput<T> {
    pub(crate) shared: Shared<T>,
    pub(crate) keep: Option<Keep<T>>,
}

/// A load, boxed so that the call in flight can be handed from a cancelled
/// leader to a waiter (or to a background task).
pub(crate) type BoxLoad<T> = Pin<Box<dyn Future<Output = LoadOutput<T>> + Send>>;

pin_project! {
    /// One upstream load: the call, then the judgement of its answer.
    pub(crate) struct Load<S, Req, P, C>
    where
        S: Service<Req>,
    {
        #[pin]
        call: Call<S, Req>,
        rules: Arc<Rules<P, C>>,
        // The stale response being revalidated, when a conditional request was sent.
        stale: Option<S::Response>,
        started: Instant,
    }
}

impl<S, Req, P, C> Load<S, Req, P, C>
where
    S: Service<Req>,
    S::Response: Clone,
    P: Policy<Req, S::Response>,
{
    /// A load of `req`, or of the policy's revalidation request when a stale
    /// response is given and the policy has one.
    pub(crate) fn new(
        svc: S,
        req: Req,
        rules: Arc<Rules<P, C>>,
        stale: Option<&S::Response>,
    ) -> Self {
        let (req, stale) =
            match stale.and_then(|s| rules.policy.revalidation(&req, s).map(|r| (r, s))) {
                Some((conditional, s)) => (conditional, Some(s.clone())),
                None => (req, None),
            };
        let started = rules.clock.now();
        Load {
            call: Call::new(svc, req, rules.ready_timeout),
            rules,
            stale,
            started,
        }
    }
}

impl<S, Req, P, C> Future for Load<S, Req, P, C>
where
    S: Service<Req>,
    S::Response: Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
    C: Classify<S::Response, S::Error>,
{
    type Output = LoadOutput<S::Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.call.poll(cx));
        let rules = &**this.rules;
        let took = rules.clock.now().saturating_duration_since(*this.started);
        let Ok(result) = answer else {
            let shared = Shared {
                result: Err(Shed::error()),
                failure: true,
            };
            return Poll::Ready(LoadOutput { shared, keep: None });
        };
        let failed = rules.classify.classify(&result).now() == Some(Outcome::Failure);
        Poll::Ready(match result {
            Ok(res) => {
                let res = match this.stale.take() {
                    Some(stale) => rules.policy.revalidated(&stale, res),
                    None => res,
                };
                // A response the classifier calls a failure (a 503, say) is
                // never stored: it would displace the value stale-if-error serves.
                let keep = if failed {
                    None
                } else {
                    rules
                        .policy
                        .freshness(&res, rules.freshness)
                        .map(|freshness| Keep {
                            value: Ok(res.clone()),
                            freshness,
                            took,
                        })
                };
                LoadOutput {
                    shared: Shared {
                        result: Ok(res),
                        failure: failed,
                    },
                    keep,
                }
            }
            Err(e) => {
                let err = SharedError::new(e.into());
                let failure = failed || find_unavailable(err.get_ref()).is_some();
                let keep = rules.negative_ttl.map(|ttl| Keep {
                    value: Err(err.clone()),
                    freshness: Freshness::ttl(ttl),
                    took,
                });
                LoadOutput {
                    shared: Shared {
                        result: Err(CacheError::Upstream(err)),
                        failure,
                    },
                    keep,
                }
            }
        })
    }
}
