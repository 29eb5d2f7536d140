//! `HttpClassify`: which HTTP and gRPC outcomes are failures.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response, StatusCode};

use super::body::Trailers;
use super::grpc::{GrpcCode, GrpcCodes};
use crate::classify::{Classification, Classify, EndOfStream, Outcome};

/// Marks a call as a long-lived stream (a gRPC server-streaming call, a
/// server-sent event stream): classifiers judge it by its response head
/// alone ([`Classification::LongLived`]), so it is never a slow call and
/// holds no in-flight or probe slot once the head arrives.
///
/// Put it in the request's extensions
/// (`req.extensions_mut().insert(Streaming)`), or name the call's path in
/// [`EndOfStreamLayer::streaming_path`](super::EndOfStreamLayer::streaming_path);
/// the [`EndOfStreamLayer`](super::EndOfStreamLayer) copies the mark onto the
/// response, where [`HttpClassify`] reads it. A response may also carry it
/// itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streaming;

/// Classifies HTTP and gRPC outcomes, for every layer's
/// [`Classify`](crate::classify::Classify).
///
/// - A transport error (`Err`) is a failure.
/// - HTTP: a 5xx status is a failure; 408 and 429 are failures by default
///   (both say "try again later"; turn them off with
///   [`fail_on_408`](Self::fail_on_408), [`fail_on_429`](Self::fail_on_429));
///   every other status is a success: a 404 is an answer, not a sick server.
/// - gRPC (a `content-type` of `application/grpc...`): the status is read
///   where it can be seen. In the response headers of a *trailers-only*
///   response (an error before any message: most failures), decided at once.
///   In trailers kept by [`buffer_response`](super::buffer_response)
///   ([`Trailers`]), decided at once. Otherwise the status arrives in the
///   trailers at the end of the body, after the layers have seen the head:
///   with the [`EndOfStreamLayer`](super::EndOfStreamLayer) below them, the
///   classifier answers [`Classification::AtEnd`] with the response's
///   [`EndOfStream`], and the outcome is reported when the body ends (an
///   outcome already known is answered at once). Without that layer the
///   trailers cannot be seen and a `200` head is a success. The codes that
///   fail are [`GrpcCodes::DEFAULT_FAILURES`] unless set with
///   [`grpc_failures`](Self::grpc_failures).
/// - A response marked [`Streaming`] is [`Classification::LongLived`],
///   judged by its head.
///
/// ```
/// use tower_fleet::classify::{Classification, Classify, Outcome};
/// use tower_fleet::http::HttpClassify;
///
/// let classify = HttpClassify::default();
/// let res = |status: u16| -> Result<http::Response<()>, std::io::Error> {
///     Ok(http::Response::builder().status(status).body(()).unwrap())
/// };
/// assert_eq!(classify.classify(&res(503)), Classification::Now(Outcome::Failure));
/// assert_eq!(classify.classify(&res(404)), Classification::Now(Outcome::Success));
///
/// // A trailers-only gRPC answer: UNAVAILABLE.
/// let grpc: Result<_, std::io::Error> = Ok(http::Response::builder()
///     .header("content-type", "application/grpc")
///     .header("grpc-status", "14")
///     .body(())
///     .unwrap());
/// assert_eq!(classify.classify(&grpc), Classification::Now(Outcome::Failure));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpClassify {
    fail_408: bool,
    fail_429: bool,
    grpc: GrpcCodes,
}

impl Default for HttpClassify {
    fn default() -> Self {
        HttpClassify {
            fail_408: true,
            fail_429: true,
            grpc: GrpcCodes::DEFAULT_FAILURES,
        }
    }
}

impl HttpClassify {
    /// The default classifier: 5xx, 408, 429 and the default gRPC codes fail.
    pub fn new() -> HttpClassify {
        HttpClassify::default()
    }

    /// Whether `408 Request Timeout` is a failure (default `true`).
    #[must_use]
    pub fn fail_on_408(mut self, fail: bool) -> Self {
        self.fail_408 = fail;
        self
    }

    /// Whether `429 Too Many Requests` is a failure (default `true`).
    #[must_use]
    pub fn fail_on_429(mut self, fail: bool) -> Self {
        self.fail_429 = fail;
        self
    }

    /// The gRPC codes that are failures (default
    /// [`GrpcCodes::DEFAULT_FAILURES`]).
    #[must_use]
    pub fn grpc_failures(mut self, codes: GrpcCodes) -> Self {
        self.grpc = codes;
        self
    }

    /// The gRPC codes that are failures.
    pub fn grpc_codes(&self) -> GrpcCodes {
        self.grpc
    }

    /// The outcome of an HTTP status.
    #[inline]
    pub fn status(&self, status: StatusCode) -> Outcome {
        match status.as_u16() {
            500..=599 => Outcome::Failure,
            408 if self.fail_408 => Outcome::Failure,
            429 if self.fail_429 => Outcome::Failure,
            _ => Outcome::Success,
        }
    }

    /// The outcome of a gRPC status.
    #[inline]
    pub fn grpc(&self, code: GrpcCode) -> Outcome {
        grpc_outcome(self.grpc, code)
    }

    /// The classification of a response (see the type's docs).
    pub fn response<B>(&self, res: &Response<B>) -> Classification {
        let streaming = res.extensions().get::<Streaming>().is_some();
        let judged = |outcome| {
            if streaming {
                Classification::LongLived(outcome)
            } else {
                Classification::Now(outcome)
            }
        };
        if !is_grpc(res.headers()) || res.status() != StatusCode::OK {
            return judged(self.status(res.status()));
        }
        if let Some(code) = GrpcCode::from_headers(res.headers()) {
            return judged(self.grpc(code));
        }
        if let Some(code) = res
            .extensions()
            .get::<Trailers>()
            .and_then(|t| GrpcCode::from_headers(&t.0))
        {
            return judged(self.grpc(code));
        }
        if streaming {
            return Classification::LongLived(Outcome::Success);
        }
        match res.extensions().get::<EndOfStream>() {
            Some(eos) => match eos.outcome() {
                Some(outcome) => Classification::Now(outcome),
                None => Classification::AtEnd(eos.clone()),
            },
            None => Classification::Now(Outcome::Success),
        }
    }
}

/// The outcome of a gRPC status, given the codes that fail.
#[inline]
pub(crate) fn grpc_outcome(failures: GrpcCodes, code: GrpcCode) -> Outcome {
    if failures.contains(code) {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// Whether a response is gRPC: `content-type: application/grpc`, possibly
/// with a suffix (`+proto`, `+json`).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl<B, E> Classify<Response<B>, E> for HttpClassify {
    #[inline]
    fn classify(&self, result: &Result<Response<B>, E>) -> Classification {
        match result {
            Ok(res) => self.response(res),
            Err(_) => Classification::Now(Outcome::Failure),
        }
    }
}
