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
    /// A hit is ready on its first poll and is a few words in size: no
    /// allocation. A miss (and a lookup in a store that must wait) lives in
    /// one boxed state machine: it either drives the load (the first caller of
    /// a key, or a waiter that took the load over from a cancelled one) or
    /// waits to be woken with the load's result. Dropping the future is always
    /// safe: a load it was driving passes to a waiter, or is cancelled when
    /// nobody waits for it any more.
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
        Ready { out: Option<Result<S::Response, CacheError>> },
        Passing { #[pin] call: Call<S, Req> },
        // Passed through; invalidates its key when dropped.
        Invalidating {
            #[pin]
            call: Call<S, Req>,
            guard: Option<Invalidation<S::Response, St>>,
        },
        Miss { fut: Pin<Box<MissFuture<S, Req, St, P, C>>> },
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
            Kind::Ready { .. } => f.write_str("ResponseFuture::Ready"),
            Kind::Passing { .. } => f.write_str("ResponseFuture::PassingThrough"),
            Kind::Invalidating { .. } => f.write_str("ResponseFuture::Invalidating"),
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
    /// A hit: ready at once.
    #[inline]
    pub(crate) fn hit(out: Result<S::Response, CacheError>) -> Self {
        ResponseFuture {
            kind: Kind::Ready { out: Some(out) },
        }
    }

    /// A request that changes its resource: passed through, its key
    /// invalidated when the answer arrives (or the call is dropped).
    pub(crate) fn invalidating(call: Call<S, Req>, guard: Invalidation<S::Response, St>) -> Self {
        ResponseFuture {
            kind: Kind::Invalidating {
                call,
                guard: Some(guard),
            },
        }
    }

    /// A request without a key, passed through.
    pub(crate) fn passing(call: Call<S, Req>) -> Self {
        ResponseFuture {
            kind: Kind::Passing { call },
        }
    }

    /// A miss (boxed), or its answer when it needs no waiting.
    pub(crate) fn miss(mut miss: MissFuture<S, Req, St, P, C>) -> Self {
        let kind = match miss.take_ready() {
            Some(out) => Kind::Ready { out: Some(out) },
            None => Kind::Miss {
                fut: Box::pin(miss),
            },
        };
        ResponseFuture { kind }
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
            KindProj::Ready { out } => out.take().map_or(Poll::Pending, Poll::Ready),
            KindProj::Passing { call } => call.poll(cx).map(passed),
            KindProj::Invalidating { call, guard } => {
                let out = ready!(call.poll(cx));
                // Invalidated before the caller sees the answer.
                drop(guard.take());
                Poll::Ready(passed(out))
            }
            KindProj::Miss { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// The answer of a call passed through the cache.
fn passed<T, E: Into<BoxError>>(out: Result<Result<T, E>, Shed>) -> Result<T, CacheError> {
    match out {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(e)) => Err(CacheError::Upstream(SharedError::new(e.into()))),
        Err(Shed) => Err(Shed::error()),
    }
}
