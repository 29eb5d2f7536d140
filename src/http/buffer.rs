//! `BufferRequestLayer`: buffers request bodies once, so that retries,
//! hedges and failovers can send copies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::Request;
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Layer;
use tower_service::Service;

use super::error::HttpError;
use super::handle::{HttpHandle, Stats};
use super::replay::{Buffering, ReplayBody};
use crate::BoxError;

/// Turns `Request<B>` into `Request<ReplayBody<B>>`: reads each request's
/// body up to `limit` bytes before sending it on, so that the layers below
/// can copy it ([`HttpReplay`](super::HttpReplay)).
///
/// A body larger than `limit` is not held back: what was read is sent
/// first, the rest streams through, and the request is sent once (never
/// retried, hedged or failed over), counted in
/// [`HttpSnapshot::bodies_too_large`](super::HttpSnapshot::bodies_too_large),
/// never lost. Put it above the retry layer (and above the cache, so that
/// both see the same request type).
///
/// The inner service is driven to readiness by the caller as usual; the
/// ready service is moved into the response future (tower's pattern for
/// middleware that waits before calling), so the inner service must be
/// `Clone`. Its errors are wrapped in [`HttpError::Inner`]; a failure to
/// read the body is [`HttpError::Body`].
#[derive(Clone, Debug)]
pub struct BufferRequestLayer {
    limit: u64,
    stats: Arc<Stats>,
}

impl BufferRequestLayer {
    /// Buffers request bodies of up to `limit` bytes.
    pub fn new(limit: u64) -> BufferRequestLayer {
        BufferRequestLayer {
            limit,
            stats: Arc::default(),
        }
    }

    pub(crate) fn with_stats(limit: u64, stats: Arc<Stats>) -> BufferRequestLayer {
        BufferRequestLayer { limit, stats }
    }

    /// The counters (bodies buffered, bodies too large).
    pub fn handle(&self) -> HttpHandle {
        HttpHandle {
            stats: self.stats.clone(),
        }
    }
}

impl<S> Layer<S> for BufferRequestLayer {
    type Service = BufferRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferRequest {
            inner,
            limit: self.limit,
            stats: self.stats.clone(),
        }
    }
}

/// The service of [`BufferRequestLayer`].
#[derive(Clone, Debug)]
pub struct BufferRequest<S> {
    inner: S,
    limit: u64,
    stats: Arc<Stats>,
}

impl<S> BufferRequest<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the layer.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for BufferRequest<S>
where
    S: Service<Request<ReplayBody<B>>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = HttpError;
    type Future = BufferRequestFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| HttpError::Inner(e.into()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service goes with the request; a fresh clone stays.
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        BufferRequestFuture {
            state: ReqState::Reading {
                svc: Some(svc),
                parts: Some(parts),
                buffering: Buffering::new(body, self.limit),
            },
            stats: self.stats.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`BufferRequest`].
    pub struct BufferRequestFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: ReqState<S, B>,
        stats: Arc<Stats>,
    }
}

pin_project! {
    #[project = ReqStateProj]
    enum ReqState<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        Reading {
            svc: Option<S>,
            parts: Option<http::request::Parts>,
            buffering: Buffering<B>,
        },
        Calling { #[pin] fut: S::Future },
    }
}

impl<S, B> fmt::Debug for BufferRequestFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferRequestFuture")
            .finish_non_exhaustive()
    }
}

impl<S, B> Future for BufferRequestFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<S::Response, HttpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                ReqStateProj::Reading {
                    svc,
                    parts,
                    buffering,
                } => {
                    let body = ready!(buffering.poll_buffer(cx)).map_err(HttpError::Body)?;
                    if body.is_replayable() {
                        this.stats.bodies_buffered.inc();
                    } else {
                        this.stats.bodies_too_large.inc();
                        tracing::debug!("request body too large to buffer: sent once");
                    }
                    let (Some(mut svc), Some(parts)) = (svc.take(), parts.take()) else {
                        return Poll::Pending;
                    };
                    let fut = svc.call(Request::from_parts(parts, body));
                    this.state.set(ReqState::Calling { fut });
                }
                ReqStateProj::Calling { fut } => {
                    return fut.poll(cx).map_err(|e| HttpError::Inner(e.into()));
                }
            }
        }
    }
}
