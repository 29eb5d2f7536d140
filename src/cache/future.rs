//! The response future of `Cache`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::core::Core;
use super::entry::Entry;
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
    pub(crate) fn hit(core: &Core<S::Response, St>, entry: Entry<S::Response>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                out: Some(core.serve(entry)),
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
            KindProj::Passing { call } => call.poll(cx).map(|r| match r {
                Ok(Ok(res)) => Ok(res),
                Ok(Err(e)) => Err(CacheError::Upstream(SharedError::new(e.into()))),
                Err(Shed) => Err(Shed::error()),
            }),
            KindProj::Miss { fut } => fut.as_mut().poll(cx),
        }
    }
}
