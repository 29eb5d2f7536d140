//! Replaying requests: copies of `http::Request` for retries, hedges and
//! failovers, with bodies buffered once.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Empty, Full};

use super::handle::{HttpHandle, Stats};
use crate::signal::Replay;
use crate::BoxError;

/// A request body that can be sent more than once when it was small enough
/// to buffer ([`ReplayBody::is_replayable`]), and is sent once, untouched,
/// when it was not.
///
/// Made by the [`BufferRequest`](super::BufferRequest) layer (or
/// [`ReplayBody::buffer`]): the body is read up to the cap; if it ended
/// within it, the bytes are kept and every copy sends them; if not, the
/// bytes read so far are sent first and the rest streams from the original
/// body, once.
pub struct ReplayBody<B = Empty<Bytes>> {
    kind: Kind<B>,
}

enum Kind<B> {
    /// The whole body (and its trailers), sent by every copy.
    Full {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// Too large to buffer: what was read, then the rest of the body.
    Once {
        read: VecDeque<Frame<Bytes>>,
        rest: Pin<Box<B>>,
    },
}

impl<B> ReplayBody<B> {
    /// A replayable body of these bytes.
    pub fn full(data: impl Into<Bytes>) -> ReplayBody<B> {
        let data: Bytes = data.into();
        ReplayBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
                trailers: None,
            },
        }
    }

    /// An empty, replayable body.
    pub fn empty() -> ReplayBody<B> {
        ReplayBody::full(Bytes::new())
    }

    /// Whether the body was buffered whole, so that copies can be made.
    pub fn is_replayable(&self) -> bool {
        matches!(self.kind, Kind::Full { .. })
    }

    /// A copy, if the body was buffered whole.
    pub fn try_clone(&self) -> Option<ReplayBody<B>> {
        match &self.kind {
            Kind::Full { data, trailers } => Some(ReplayBody {
                kind: Kind::Full {
                    data: data.clone(),
                    trailers: trailers.clone(),
                },
            }),
            Kind::Once { .. } => None,
        }
    }
}

impl<B> ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Reads `body` until it ends or more than `limit` bytes were read: a
    /// replayable body in the first case, a body sent once in the second.
    /// Fails only when reading the body fails.
    pub async fn buffer(body: B, limit: u64) -> Result<ReplayBody<B>, BoxError> {
        let mut buffering = Buffering::new(body, limit);
        std::future::poll_fn(|cx| buffering.poll_buffer(cx)).await
    }
}

/// Reads a body into a [`ReplayBody`], up to a limit.
pub(crate) struct Buffering<B> {
    body: Option<Pin<Box<B>>>,
    limit: u64,
    read: VecDeque<Frame<Bytes>>,
    size: u64,
    trailers: Option<HeaderMap>,
}

impl<B> Buffering<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(body: B, limit: u64) -> Self {
        Buffering {
            body: Some(Box::pin(body)),
            limit,
            read: VecDeque::new(),
            size: 0,
            trailers: None,
        }
    }

    pub(crate) fn poll_buffer(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ReplayBody<B>, BoxError>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Err("request body already taken".into()));
        };
        while !body.is_end_stream() {
            let Some(frame) = std::task::ready!(body.as_mut().poll_frame(cx)) else {
                break;
            };
            match frame.map_err(Into::into)?.into_data() {
                Ok(mut data) => {
                    let bytes = data.copy_to_bytes(data.remaining());
                    self.size = self.size.saturating_add(bytes.len() as u64);
                    self.read.push_back(Frame::data(bytes));
                    if self.size > self.limit {
                        let (Some(rest), read) = (self.body.take(), std::mem::take(&mut self.read))
                        else {
                            return Poll::Ready(Err("request body already taken".into()));
                        };
                        return Poll::Ready(Ok(ReplayBody {
                            kind: Kind::Once { read, rest },
                        }));
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        self.trailers = Some(t);
                    }
                }
            }
        }
        self.body = None;
        let data = match self.read.len() {
            0 => None,
            1 => self.read.pop_front().and_then(|f| f.into_data().ok()),
            _ => {
                let mut all = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
                for frame in self.read.drain(..) {
                    if let Ok(d) = frame.into_data() {
                        all.extend_from_slice(&d);
                    }
                }
                Some(Bytes::from(all))
            }
        };
        Poll::Ready(Ok(ReplayBody {
            kind: Kind::Full {
                data,
                trailers: self.trailers.take(),
            },
        }))
    }
}

impl<B> Default for ReplayBody<B> {
    fn default() -> Self {
        ReplayBody::empty()
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full { data, .. } => f
                .debug_struct("ReplayBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Once { .. } => f.write_str("ReplayBody::Once"),
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // `Kind` is `Unpin`: the streaming body is boxed.
        match &mut self.get_mut().kind {
            Kind::Full { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            Kind::Once { read, rest } => {
                if let Some(frame) = read.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                rest.as_mut().poll_frame(cx).map(|f| {
                    f.map(|r| {
                        r.map(|frame| frame.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                            .map_err(Into::into)
                    })
                })
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Once { read, rest } => read.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Once { read, rest } => {
                let buffered: u64 = read
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                let rest = rest.size_hint();
                // Upper first: `SizeHint` asserts lower <= upper at each step.
                let mut hint = SizeHint::new();
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(buffered));
                }
                hint.set_lower(rest.lower().saturating_add(buffered));
                hint
            }
        }
    }
}

/// A request body that can be copied for another attempt (or cannot, this
/// time: a [`ReplayBody`] too large to buffer).
pub trait ReplayableBody: Sized {
    /// A copy of the body, or `None` when it cannot be sent again.
    fn try_replay(&self) -> Option<Self>;
}

impl<B> ReplayableBody for ReplayBody<B> {
    fn try_replay(&self) -> Option<Self> {
        self.try_clone()
    }
}

impl<D: Clone + Buf> ReplayableBody for Full<D> {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D: Buf> ReplayableBody for Empty<D> {
    fn try_replay(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

macro_rules! clone_bodies {
    ($($t:ty),*) => {$(
        impl ReplayableBody for $t {
            fn try_replay(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

clone_bodies!(Bytes, String, Vec<u8>, ());

/// Copies `http::Request`s whose body can be copied ([`ReplayableBody`]):
/// method, URI, version, headers, extensions (the deadline and the
/// [`AttemptMark`](crate::signal::AttemptMark) among them) and body.
///
/// Give it to the retry layer ([`HttpRetryPolicy`](super::HttpRetryPolicy)
/// does), the shard layer ([`ShardBuilder::replay`](crate::shard::ShardBuilder::replay))
/// or anything else that takes a [`Replay`]. A request whose body cannot be
/// copied is sent once: [`HttpSnapshot::not_replayed`](super::HttpSnapshot::not_replayed)
/// counts the copies refused.
///
/// Copying costs the header map and the extensions (allocations), and a
/// reference count for a buffered body.
#[derive(Clone, Debug, Default)]
pub struct HttpReplay {
    stats: Arc<Stats>,
}

impl HttpReplay {
    /// A replay with counters of its own.
    pub fn new() -> HttpReplay {
        HttpReplay::default()
    }

    pub(crate) fn with_stats(stats: Arc<Stats>) -> HttpReplay {
        HttpReplay { stats }
    }

    /// Its counters.
    pub fn handle(&self) -> HttpHandle {
        HttpHandle {
            stats: self.stats.clone(),
        }
    }
}

impl<B: ReplayableBody> Replay<Request<B>> for HttpReplay {
    fn replay(&self, req: &Request<B>) -> Option<Request<B>> {
        let Some(body) = req.body().try_replay() else {
            self.stats.not_replayed.inc();
            return None;
        };
        let mut copy = Request::new(body);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}
