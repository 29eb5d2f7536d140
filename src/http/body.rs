//! Buffering responses: `Response<Incoming>` into `Response<Bytes>`, so that
//! responses can be cached and cloned.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Layer;
use tower_service::Service;

use super::error::HttpError;
use super::handle::{HttpHandle, Stats};
use crate::BoxError;

/// The trailers of a buffered response (gRPC puts its status there), kept
/// in its extensions by [`buffer_response`]: the classifier and the
/// retry-after reader look for them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trailers(pub HeaderMap);

/// Reads a response's whole body into `Bytes`, up to `limit` bytes, so that
/// the response can be cloned (the cache needs it) and its trailers read
/// ([`Trailers`], in the extensions).
///
/// Fails with [`HttpError::BodyTooLarge`] when the body is larger than
/// `limit` (it is dropped unread past that point) and with
/// [`HttpError::Body`] when reading it fails.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower_fleet::http::buffer_response;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let res = http::Response::new(Full::new(Bytes::from_static(b"hello")));
/// let res = buffer_response(res, 1024).await.unwrap();
/// assert_eq!(res.body(), &Bytes::from_static(b"hello"));
/// let big = http::Response::new(Full::new(Bytes::from(vec![0u8; 2048])));
/// assert!(buffer_response(big, 1024).await.is_err());
/// # }
/// ```
pub async fn buffer_response<B>(res: Response<B>, limit: u64) -> Result<Response<Bytes>, HttpError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = res.into_parts();
    let mut collect = Collect::new(body, limit);
    let (data, trailers) =
        std::future::poll_fn(|cx| Pin::new(&mut collect).poll_collect(cx)).await?;
    if let Some(t) = trailers {
        parts.extensions.insert(Trailers(t));
    }
    Ok(Response::from_parts(parts, data))
}

/// Reads a body whole, up to a limit.
struct Collect<B> {
    body: Pin<Box<B>>,
    limit: u64,
    data: Option<Bytes>,
    more: BytesMut,
    trailers: Option<HeaderMap>,
}

impl<B: Body> Collect<B>
where
    B::Error: Into<BoxError>,
{
    fn new(body: B, limit: u64) -> Self {
        Collect {
            body: Box::pin(body),
            limit,
            data: None,
            more: BytesMut::new(),
            trailers: None,
        }
    }

    fn len(&self) -> u64 {
        (self.data.as_ref().map_or(0, Bytes::len) + self.more.len()) as u64
    }

    fn poll_collect(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Bytes, Option<HeaderMap>), HttpError>> {
        loop {
            if self.body.is_end_stream() {
                break;
            }
            let Some(frame) = ready!(self.body.as_mut().poll_frame(cx)) else {
                break;
            };
            let frame = frame.map_err(|e| HttpError::Body(e.into()))?;
            match frame.into_data() {
                Ok(mut chunk) => {
                    let n = chunk.remaining() as u64;
                    if self.len().saturating_add(n) > self.limit {
                        return Poll::Ready(Err(HttpError::BodyTooLarge { limit: self.limit }));
                    }
                    // One chunk is kept as it is; more are copied together.
                    if self.data.is_none() && self.more.is_empty() {
                        self.data = Some(chunk.copy_to_bytes(chunk.remaining()));
                    } else {
                        if let Some(first) = self.data.take() {
                            self.more.extend_from_slice(&first);
                        }
                        while chunk.has_remaining() {
                            let c = chunk.chunk();
                            let len = c.len();
                            self.more.extend_from_slice(c);
                            chunk.advance(len);
                        }
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        self.trailers = Some(t);
                    }
                }
            }
        }
        let data = match self.data.take() {
            Some(d) => d,
            None => std::mem::take(&mut self.more).freeze(),
        };
        Poll::Ready(Ok((data, self.trailers.take())))
    }
}

/// Buffers every response's body with [`buffer_response`]: put it near the
/// bottom of the stack (inside the timeout, so that slow bodies time out)
/// when the layers above need `Clone` responses (the cache) or the trailers.
///
/// Not for long-lived streams: their body is read to the end before the
/// response is returned. The inner service's error is wrapped in
/// [`HttpError::Inner`].
#[derive(Clone, Debug)]
pub struct BufferResponseLayer {
    limit: u64,
    stats: Arc<Stats>,
}

impl BufferResponseLayer {
    /// Buffers bodies of up to `limit` bytes; larger ones fail with
    /// [`HttpError::BodyTooLarge`].
    pub fn new(limit: u64) -> BufferResponseLayer {
        BufferResponseLayer {
            limit,
            stats: Arc::default(),
        }
    }

    pub(crate) fn with_stats(limit: u64, stats: Arc<Stats>) -> BufferResponseLayer {
        BufferResponseLayer { limit, stats }
    }

    /// The counters (responses too large).
    pub fn handle(&self) -> HttpHandle {
        HttpHandle {
            stats: self.stats.clone(),
        }
    }
}

impl<S> Layer<S> for BufferResponseLayer {
    type Service = BufferResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferResponse {
            inner,
            limit: self.limit,
            stats: self.stats.clone(),
        }
    }
}

/// The service of [`BufferResponseLayer`].
#[derive(Clone, Debug)]
pub struct BufferResponse<S> {
    inner: S,
    limit: u64,
    stats: Arc<Stats>,
}

impl<S> BufferResponse<S> {
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

impl<S, Req, B> Service<Req> for BufferResponse<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<Bytes>;
    type Error = HttpError;
    type Future = BufferResponseFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| HttpError::Inner(e.into()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        BufferResponseFuture {
            state: ResState::Calling {
                fut: self.inner.call(req),
            },
            limit: self.limit,
            stats: self.stats.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`BufferResponse`].
    pub struct BufferResponseFuture<F, B> {
        #[pin]
        state: ResState<F, B>,
        limit: u64,
        stats: Arc<Stats>,
    }
}

pin_project! {
    #[project = ResStateProj]
    enum ResState<F, B> {
        Calling { #[pin] fut: F },
        Reading { parts: Option<http::response::Parts>, collect: Collect<B> },
    }
}

impl<F, B> fmt::Debug for BufferResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferResponseFuture")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for BufferResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Bytes>, HttpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                ResStateProj::Calling { fut } => {
                    let res = ready!(fut.poll(cx)).map_err(|e| HttpError::Inner(e.into()))?;
                    let (parts, body) = res.into_parts();
                    this.state.set(ResState::Reading {
                        parts: Some(parts),
                        collect: Collect::new(body, *this.limit),
                    });
                }
                ResStateProj::Reading { parts, collect } => {
                    let out = ready!(collect.poll_collect(cx));
                    let (data, trailers) = match out {
                        Ok(read) => read,
                        Err(e) => {
                            if matches!(e, HttpError::BodyTooLarge { .. }) {
                                this.stats.responses_too_large.inc();
                                tracing::debug!(
                                    limit = *this.limit,
                                    "response body too large to buffer"
                                );
                            }
                            return Poll::Ready(Err(e));
                        }
                    };
                    let Some(mut parts) = parts.take() else {
                        return Poll::Pending;
                    };
                    if let Some(t) = trailers {
                        parts.extensions.insert(Trailers(t));
                    }
                    return Poll::Ready(Ok(Response::from_parts(parts, data)));
                }
            }
        }
    }
}
