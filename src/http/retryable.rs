//! Which HTTP requests may be sent more than once, and the retry policy
//! that puts the HTTP pieces together.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{Method, Request, Response};

use super::classify::HttpClassify;
use super::handle::Stats;
use super::replay::{HttpReplay, ReplayableBody};
use super::retry_after::HttpRetryAfter;
use super::transport::{never_sent, unsent_kind};
use crate::classify::{Classify, Outcome};
use crate::retry::{RetryPolicy, Retryable};
use crate::signal::{ErrorSignals, Replay, RetryAfter};

/// Marks a request as safe to send more than once whatever its method (a
/// POST the server deduplicates): put it in the request's extensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Idempotent;

/// The header that marks a POST or PATCH as retryable by default:
/// `Idempotency-Key`, the IETF draft's header for requests the server
/// deduplicates.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Retries requests by method, for the retry layer's [`Retryable`].
///
/// Idempotent methods (RFC 9110: `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`,
/// `DELETE`) may be sent again after a failure. Other methods (`POST`,
/// `PATCH`, extensions) only when the request is marked: by the
/// [`Idempotent`] extension, or by the marker header (`Idempotency-Key` by
/// default; [`marker_header`](Self::marker_header) changes it).
///
/// A request refused here may still be retried when its attempt was never
/// sent (a refused connection): that needs the outcome too, which
/// [`HttpRetryPolicy`] sees and a plain `Retryable` does not.
///
/// ```
/// use tower_fleet::http::{ByMethod, Idempotent};
/// use tower_fleet::retry::Retryable;
///
/// let by_method = ByMethod::default();
/// let get = http::Request::get("/a").body(()).unwrap();
/// let post = http::Request::post("/a").body(()).unwrap();
/// let keyed = http::Request::post("/a").header("idempotency-key", "k1").body(()).unwrap();
/// let mut marked = http::Request::post("/a").body(()).unwrap();
/// marked.extensions_mut().insert(Idempotent);
/// assert!(by_method.is_retryable(&get));
/// assert!(!by_method.is_retryable(&post));
/// assert!(by_method.is_retryable(&keyed) && by_method.is_retryable(&marked));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByMethod {
    header: Option<HeaderName>,
}

impl Default for ByMethod {
    fn default() -> Self {
        ByMethod {
            header: Some(HeaderName::from_static(IDEMPOTENCY_KEY)),
        }
    }
}

impl ByMethod {
    /// Idempotent methods, and requests marked by the extension or the
    /// `Idempotency-Key` header.
    pub fn new() -> ByMethod {
        ByMethod::default()
    }

    /// Marks requests carrying `name` as retryable (instead of
    /// `Idempotency-Key`).
    #[must_use]
    pub fn marker_header(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// No marker header: only the [`Idempotent`] extension marks requests.
    #[must_use]
    pub fn without_marker_header(mut self) -> Self {
        self.header = None;
        self
    }

    /// Whether the method is idempotent (RFC 9110 section 9.2.2).
    #[inline]
    pub fn idempotent_method(method: &Method) -> bool {
        matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        )
    }
}

impl<B> Retryable<Request<B>> for ByMethod {
    #[inline]
    fn is_retryable(&self, req: &Request<B>) -> bool {
        ByMethod::idempotent_method(req.method())
            || req.extensions().get::<Idempotent>().is_some()
            || self
                .header
                .as_ref()
                .is_some_and(|h| req.headers().contains_key(h))
    }
}

/// The retry layer's policy for HTTP clients: give it to
/// [`RetryBuilder::policy`](crate::retry::RetryBuilder::policy).
///
/// - failures are [`HttpClassify`]'s (a gRPC outcome known only at the end
///   of the stream counts as a success: the response has begun);
/// - requests are retried [`ByMethod`], and a request of any method is
///   retried when its attempt failed before it was sent ([`never_sent`]:
///   a refused connection, hyper cancelling a queued request, an open
///   breaker or no replica available below); such a request is never hedged;
/// - copies are made by [`HttpReplay`] (bodies buffered by the
///   [`BufferRequestLayer`](super::BufferRequestLayer), or in memory);
/// - retry-after hints come from [`HttpRetryAfter`] (`Retry-After`,
///   `grpc-retry-pushback-ms`, and the errors' unavailable signal).
///
/// The inner error type must implement [`ErrorSignals`] (the crate's errors,
/// `BoxError` and `std::io::Error` do) for the error-side signals.
#[derive(Clone, Debug, Default)]
pub struct HttpRetryPolicy {
    /// What counts as a failure.
    pub classify: HttpClassify,
    /// Which requests may be sent more than once.
    pub retryable: ByMethod,
    /// How requests are copied.
    pub replay: HttpReplay,
    /// Where retry-after hints come from.
    pub retry_after: HttpRetryAfter,
}

impl HttpRetryPolicy {
    /// The default policy, with counters of its own.
    pub fn new() -> HttpRetryPolicy {
        HttpRetryPolicy::default()
    }

    pub(crate) fn with_stats(
        classify: HttpClassify,
        retryable: ByMethod,
        stats: Arc<Stats>,
    ) -> Self {
        HttpRetryPolicy {
            classify,
            retryable,
            replay: HttpReplay::with_stats(stats.clone()),
            retry_after: HttpRetryAfter::with_stats(stats),
        }
    }
}

impl<B, RB, E> RetryPolicy<Request<B>, Response<RB>, E> for HttpRetryPolicy
where
    B: ReplayableBody,
    E: ErrorSignals,
{
    #[inline]
    fn outcome(&self, result: &Result<Response<RB>, E>) -> Outcome {
        self.classify
            .classify(result)
            .now()
            .unwrap_or(Outcome::Success)
    }

    #[inline]
    fn is_retryable(&self, req: &Request<B>) -> bool {
        self.retryable.is_retryable(req)
    }

    fn replay(&self, req: &Request<B>) -> Option<Request<B>> {
        self.replay.replay(req)
    }

    fn retry_after(&self, result: &Result<Response<RB>, E>) -> Option<Duration> {
        self.retry_after.retry_after(result)
    }

    fn is_retryable_unsent(&self, _req: &Request<B>) -> bool {
        true
    }

    fn never_sent(&self, result: &Result<Response<RB>, E>) -> bool {
        match result {
            Ok(_) => false,
            Err(e) => {
                e.unavailable().is_some_and(unsent_kind) || e.as_error().is_some_and(never_sent)
            }
        }
    }
}
