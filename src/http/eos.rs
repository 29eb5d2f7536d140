//! `EndOfStreamLayer`: carries the gRPC status from a response's trailers to
//! the classifiers of every layer above, through `Classification::AtEnd`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::Layer;
use tower_service::Service;

use super::classify::{grpc_outcome, is_grpc, Streaming};
use super::grpc::{GrpcCode, GrpcCodes};
use crate::classify::{EndOfStream, EosReporter, Outcome};

/// Wraps response bodies so that a gRPC status sent in trailers reaches the
/// classifiers above: put it at the bottom of the stack, right above the
/// transport (below the timeout and the breakers).
///
/// For each gRPC response whose head carries no `grpc-status` (the status
/// will come in the trailers), the layer makes an
/// [`EndOfStream`] pair, puts the [`EndOfStream`] in the response's
/// extensions, where [`HttpClassify`](super::HttpClassify) finds it and
/// answers [`Classification::AtEnd`](crate::classify::Classification::AtEnd),
/// and gives the reporter to the body ([`EosBody`]), which reports the
/// outcome when the trailers arrive: a failure for the configured codes,
/// and for a stream that ends without a status or with an error. A body
/// dropped before its end reports [`Outcome::Ignore`].
///
/// Calls marked [`Streaming`] (in the request's extensions, or by a path
/// given to [`streaming_path`](Self::streaming_path)) get the mark on their
/// response instead, and are judged by their head. Other responses pass
/// through with their body wrapped and nothing reported.
///
/// Costs: per gRPC response, one allocation (the shared end-of-stream state)
/// and one extension insert; per body frame, a branch. Errors of the inner
/// service pass through unchanged.
#[derive(Clone, Debug, Default)]
pub struct EndOfStreamLayer {
    failures: GrpcCodes,
    streaming_paths: Arc<[Box<str>]>,
}

impl EndOfStreamLayer {
    /// A layer that reports the default failing codes
    /// ([`GrpcCodes::DEFAULT_FAILURES`]).
    pub fn new() -> EndOfStreamLayer {
        EndOfStreamLayer::default()
    }

    /// The gRPC codes reported as failures: give it the same set as the
    /// classifier ([`HttpClassify::grpc_codes`](super::HttpClassify::grpc_codes)).
    #[must_use]
    pub fn failures(mut self, codes: GrpcCodes) -> Self {
        self.failures = codes;
        self
    }

    /// Marks every call to `path` (a gRPC method, `/package.Service/Watch`)
    /// as [`Streaming`].
    #[must_use]
    pub fn streaming_path(mut self, path: impl Into<String>) -> Self {
        let mut paths: Vec<Box<str>> = self.streaming_paths.iter().cloned().collect();
        paths.push(path.into().into_boxed_str());
        self.streaming_paths = paths.into();
        self
    }
}

impl<S> Layer<S> for EndOfStreamLayer {
    type Service = EndOfStreamService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EndOfStreamService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`EndOfStreamLayer`].
#[derive(Clone, Debug)]
pub struct EndOfStreamService<S> {
    inner: S,
    layer: EndOfStreamLayer,
}

impl<S> EndOfStreamService<S> {
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for EndOfStreamService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<EosBody<ResB>>;
    type Error = S::Error;
    type Future = EosFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let streaming = req.extensions().get::<Streaming>().is_some()
            || self
                .layer
                .streaming_paths
                .iter()
                .any(|p| **p == *req.uri().path());
        EosFuture {
            fut: self.inner.call(req),
            streaming,
            failures: self.layer.failures,
        }
    }
}

pin_project! {
    /// The response future of [`EndOfStreamService`].
    pub struct EosFuture<F> {
        #[pin]
        fut: F,
        streaming: bool,
        failures: GrpcCodes,
    }
}

impl<F> fmt::Debug for EosFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EosFuture")
            .field("streaming", &self.streaming)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for EosFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<EosBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.fut.poll(cx))?;
        let (mut parts, body) = res.into_parts();
        let mut reporter = None;
        if *this.streaming {
            parts.extensions.insert(Streaming);
        } else if is_grpc(&parts.headers) && GrpcCode::from_headers(&parts.headers).is_none() {
            let (eos, rep) = EndOfStream::pair();
            parts.extensions.insert(eos);
            reporter = Some(rep);
        }
        let body = EosBody {
            inner: body,
            reporter,
            failures: *this.failures,
        };
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

pin_project! {
    /// A response body that reports the gRPC status of its trailers when it
    /// ends (see [`EndOfStreamLayer`]). Frames pass through unchanged.
    pub struct EosBody<B> {
        #[pin]
        inner: B,
        reporter: Option<EosReporter>,
        failures: GrpcCodes,
    }
}

impl<B> EosBody<B> {
    /// A body that reports nothing.
    pub fn new(inner: B) -> EosBody<B> {
        EosBody {
            inner,
            reporter: None,
            failures: GrpcCodes::DEFAULT_FAILURES,
        }
    }

    /// A body that reports its trailers' status to `reporter`, as a failure
    /// when the code is in `failures`.
    pub fn reporting(inner: B, reporter: EosReporter, failures: GrpcCodes) -> EosBody<B> {
        EosBody {
            inner,
            reporter: Some(reporter),
            failures,
        }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> fmt::Debug for EosBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EosBody")
            .field("reporting", &self.reporter.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for EosBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if this.reporter.is_some() {
            let failures = *this.failures;
            let outcome = match &frame {
                Some(Ok(f)) => f.trailers_ref().map(|t| {
                    grpc_outcome(
                        failures,
                        GrpcCode::from_headers(t).unwrap_or(GrpcCode::Unknown),
                    )
                }),
                // The stream broke.
                Some(Err(_)) => Some(Outcome::Failure),
                // It ended without a status: gRPC reads that as UNKNOWN.
                None => Some(grpc_outcome(failures, GrpcCode::Unknown)),
            };
            if let Some(outcome) = outcome {
                if let Some(reporter) = this.reporter.take() {
                    reporter.report(outcome);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
