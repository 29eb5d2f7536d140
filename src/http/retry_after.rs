//! Server hints: `Retry-After` and `grpc-retry-pushback-ms`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, Response};

use super::body::Trailers;
use super::handle::{HttpHandle, Stats};
use crate::signal::{ErrorRetryAfter, ErrorSignals, RetryAfter};

/// The gRPC header (or trailer) in which a server asks for a wait, in
/// milliseconds.
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// A server hint that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed retry hint")]
pub struct MalformedHint;

/// Reads a `Retry-After` value: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the two obsolete date formats),
/// relative to `now`.
///
/// A date in the past is a wait of zero. Delta-seconds too large for a
/// `u64` saturate (a wait nobody will take: the retry layer gives up on
/// hints above its `max_retry_after`, and on waits past the request's
/// deadline). Anything else is [`MalformedHint`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_fleet::http::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_400);
/// assert_eq!(parse_retry_after(b"120", now), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT", now), Ok(Duration::from_secs(80)));
/// assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:00:00 GMT", now), Ok(Duration::ZERO));
/// assert!(parse_retry_after(b"soon", now).is_err());
/// ```
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Result<Duration, MalformedHint> {
    let text = std::str::from_utf8(value)
        .map_err(|_| MalformedHint)?
        .trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).map_err(|_| MalformedHint)?;
    Ok(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads a `grpc-retry-pushback-ms` value: a non-negative number of
/// milliseconds. A negative number means "do not retry" (gRPC's retry
/// design), which is returned as the longest wait, so that the retry layer
/// gives up. Anything else is [`MalformedHint`].
///
/// ```
/// use std::time::Duration;
/// use tower_fleet::http::parse_pushback;
///
/// assert_eq!(parse_pushback(b"250"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_pushback(b"-1"), Ok(Duration::MAX));
/// assert!(parse_pushback(b"1.5").is_err());
/// ```
pub fn parse_pushback(value: &[u8]) -> Result<Duration, MalformedHint> {
    let text = std::str::from_utf8(value)
        .map_err(|_| MalformedHint)?
        .trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MalformedHint);
    }
    if negative {
        return Ok(Duration::MAX);
    }
    Ok(Duration::from_millis(
        digits.parse::<u64>().unwrap_or(u64::MAX),
    ))
}

/// The retry layer's [`RetryAfter`] hook for HTTP and gRPC.
///
/// For a response it reads, in order, `grpc-retry-pushback-ms` in the
/// headers, then in the [`Trailers`] kept by
/// [`buffer_response`](super::buffer_response), then `Retry-After`; for an
/// error, the [`Unavailable`](crate::signal::Unavailable) signal's
/// retry-after ([`ErrorRetryAfter`]).
///
/// The value is returned as the server gave it: the retry layer caps it
/// (it does not wait for a hint above its `max_retry_after`, 10s by default,
/// nor past the request's deadline: it returns the response instead). A
/// malformed value is ignored (no hint) and counted in
/// [`HttpSnapshot::retry_after_malformed`](super::HttpSnapshot::retry_after_malformed),
/// never an error. HTTP-dates are read against the system clock.
#[derive(Clone, Debug, Default)]
pub struct HttpRetryAfter {
    stats: Arc<Stats>,
}

impl HttpRetryAfter {
    /// A reader with counters of its own.
    pub fn new() -> HttpRetryAfter {
        HttpRetryAfter::default()
    }

    pub(crate) fn with_stats(stats: Arc<Stats>) -> HttpRetryAfter {
        HttpRetryAfter { stats }
    }

    /// Its counters ([`HttpSnapshot::retry_after_malformed`](super::HttpSnapshot::retry_after_malformed)).
    pub fn handle(&self) -> HttpHandle {
        HttpHandle {
            stats: self.stats.clone(),
        }
    }

    /// The wait a response asks for, if any (see the type's docs).
    pub fn response<B>(&self, res: &Response<B>) -> Option<Duration> {
        let trailers = res.extensions().get::<Trailers>().map(|t| &t.0);
        for headers in std::iter::once(res.headers()).chain(trailers) {
            if let Some(v) = headers.get(GRPC_RETRY_PUSHBACK_MS) {
                return self.counted(parse_pushback(v.as_bytes()));
            }
        }
        self.headers(res.headers())
    }

    /// The wait a `Retry-After` in `headers` asks for, if any.
    pub fn headers(&self, headers: &HeaderMap) -> Option<Duration> {
        let v = headers.get(RETRY_AFTER)?;
        self.counted(parse_retry_after(v.as_bytes(), SystemTime::now()))
    }

    fn counted(&self, hint: Result<Duration, MalformedHint>) -> Option<Duration> {
        match hint {
            Ok(d) => Some(d),
            Err(MalformedHint) => {
                self.stats.retry_after_malformed.inc();
                tracing::debug!("malformed retry-after hint ignored");
                None
            }
        }
    }
}

impl<B, E: ErrorSignals> RetryAfter<Response<B>, E> for HttpRetryAfter {
    fn retry_after(&self, outcome: &Result<Response<B>, E>) -> Option<Duration> {
        match outcome {
            Ok(res) => self.response(res),
            Err(_) => ErrorRetryAfter.retry_after(outcome),
        }
    }
}
