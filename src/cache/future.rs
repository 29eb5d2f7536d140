//! The response future of `Cache`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::core::Invalidation;
use super::error::{CacheError, SharedError};
use super::load::{Call, Shed};
use super::miss::MissFuture;
use super::policy::Policy;
use super::store::Store;
use crate::classify::Classify;
use crate::signal::Carrier;
use crate::BoxError;

pin_project! {
    /// The response future of [`Cache`](super::Cache).
    ///
    /// A hit is ready on its first poll and holds nothing but the response:
    /// no allocation, and the future is a few words in size whatever the
    /// inner service's future is (a request passed through, without a key
    /// or as its policy's [`RequestMode`](super::RequestMode) says, boxes
    /// its call so that hits need not carry its size). A miss (and a lookup
    /// in a store that must wait) lives in one boxed state machine: it
    /// either drives the load (the first caller of a key, or a waiter that
    /// took the load over from a cancelled one) or waits to be woken with
    /// the load's result. Dropping the future is always safe: a load it was
    /// driving passes to a waiter, or is cancelled when nobody waits for it
    /// any more; a request that invalidates its key does so when it is
    /// dropped unanswered too.
    pub struct ResponseFuture<S, Req, St, P, C>
    where
        S: Service<Req>,
        S::Response: Clone,
        St: Store<S::Response>,
    {
        #[pin]
        kind: Kind<S, Req, St, P, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, Req, St, P, C>
    where
        S: Service<Req>,
        S::Response: Clone,
        St: Store<S::Response>,
    {
        Hit { value: Option<S::Response> },
        Negative { error: Option<SharedError> },
        Passing { call: Pin<Box<Passed<S, Req, St>>> },
        Miss { fut: Pin<Box<MissFuture<S, Req, St, P, C>>> },
    }
}

pin_project! {
    /// A call passed through the cache, with the invalidation its answer
    /// makes (a request that changes its resource), if any.
    pub(crate) struct Passed<S, Req, St>
    where
        S: Service<Req>,
        S::Response: Clone,
        St: Store<S::Response>,
    {
        #[pin]
        call: Call<S, Req>,
        guard: Option<Invalidation<S::Response, St>>,
    }
}

impl<S, Req, St, P, C> fmt::Debug for ResponseFuture<S, Req, St, P, C>
where
    S: Service<Req>,
    S::Response: Clone,
    St: Store<S::Response>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Hit { .. } | Kind::Negative { .. } => f.write_str("ResponseFuture::Ready"),
            Kind::Passing { call } if call.guard.is_some() => {
                f.write_str("ResponseFuture::Invalidating")
            }
            Kind::Passing { .. } => f.write_str("ResponseFuture::PassingThrough"),
            Kind::Miss { fut } => fut.fmt(f),
        }
    }
}

impl<S, Req, St, P, C> ResponseFuture<S, Req, St, P, C>
where
    S: Service<Req>,
    S::Response: Clone,
    St: Store<S::Response>,
{
    /// A hit (or a negative hit): ready at once.
    #[inline]
    pub(crate) fn hit(out: Result<S::Response, CacheError>) -> Self {
        let kind = match out {
            Ok(value) => Kind::Hit { value: Some(value) },
            Err(CacheError::Upstream(e)) => Kind::Negative { error: Some(e) },
            Err(other) => Kind::Miss {
                fut: Box::pin(MissFuture::ready(Err(other))),
            },
        };
        ResponseFuture { kind }
    }

    /// A request passed through (boxed); with `invalidation`, its key is
    /// invalidated when the answer arrives or the call is dropped.
    pub(crate) fn passing(
        call: Call<S, Req>,
        invalidation: Option<Invalidation<S::Response, St>>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Passing {
                call: Box::pin(Passed {
                    call,
                    guard: invalidation,
                }),
            },
        }
    }

    /// A miss (boxed), or its answer when it needs no waiting.
    pub(crate) fn miss(mut miss: MissFuture<S, Req, St, P, C>) -> Self {
        match miss.take_ready() {
            Some(out) => Self::hit(out),
            None => ResponseFuture {
                kind: Kind::Miss {
                    fut: Box::pin(miss),
                },
            },
        }
    }
}

impl<S, Req, St, P, C> Future for ResponseFuture<S, Req, St, P, C>
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

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            // Polled again after completion: stay pending rather than panic.
            KindProj::Hit { value } => value.take().map_or(Poll::Pending, |v| Poll::Ready(Ok(v))),
            KindProj::Negative { error } => error
                .take()
                .map_or(Poll::Pending, |e| Poll::Ready(Err(CacheError::Upstream(e)))),
            KindProj::Passing { call } => poll_passing(call.as_mut(), cx),
            KindProj::Miss { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// Polls a request passed through (out of line, so that polling a hit
/// inlines into the caller).
#[inline(never)]
fn poll_passing<S, Req, St>(
    passed: Pin<&mut Passed<S, Req, St>>,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Response, CacheError>>
where
    S: Service<Req>,
    S::Response: Clone,
    S::Error: Into<BoxError>,
    St: Store<S::Response>,
{
    let this = passed.project();
    let out = ready!(this.call.poll(cx));
    // Invalidated before the caller sees the answer.
    drop(this.guard.take());
    Poll::Ready(match out {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(e)) => Err(CacheError::Upstream(SharedError::new(e.into()))),
        Err(Shed) => Err(Shed::error()),
    })
}
