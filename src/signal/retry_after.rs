//! Retry-after hints read from outcomes.

use std::time::Duration;

use super::{ErrorSignals, Unavailable};

/// Reads a "retry after" hint from a call's outcome: how long to wait before
/// sending the request again.
///
/// The retry layer asks it after each failed attempt, and a hint wins over the
/// backoff. [`ErrorRetryAfter`] (the default) finds the [`Unavailable`] signal
/// in an error (an open breaker's, a shard's, a balancer's); the `http`
/// feature adds one that also reads an HTTP `Retry-After` header from a
/// response. Implemented for closures `Fn(&Result<Res, E>) -> Option<Duration>`.
///
/// ```
/// use std::time::Duration;
/// use tower_fleet::signal::{ErrorRetryAfter, RetryAfter, Unavailable, UnavailableKind};
///
/// let open: Result<(), tower_fleet::BoxError> = Err(Box::new(
///     Unavailable::new(UnavailableKind::CircuitOpen).with_retry_after(Some(Duration::from_secs(2))),
/// ));
/// assert_eq!(ErrorRetryAfter.retry_after(&open), Some(Duration::from_secs(2)));
///
/// // A protocol that answers "busy, try in 1s" in its responses:
/// let busy = |r: &Result<&str, std::io::Error>| match r {
///     Ok("busy") => Some(Duration::from_secs(1)),
///     _ => None,
/// };
/// assert_eq!(busy.retry_after(&Ok("busy")), Some(Duration::from_secs(1)));
/// ```
pub trait RetryAfter<Res, E> {
    /// The wait the outcome asks for, if it asks for one.
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<Duration>;
}

/// Reads the retry-after of the [`Unavailable`] signal an error carries,
/// through [`ErrorSignals`]. Responses carry no hint.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorRetryAfter;

impl<Res, E: ErrorSignals> RetryAfter<Res, E> for ErrorRetryAfter {
    #[inline]
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<Duration> {
        match outcome {
            Ok(_) => None,
            Err(e) => e.unavailable().and_then(Unavailable::retry_after),
        }
    }
}

/// Never reads a hint: for error types that do not implement [`ErrorSignals`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRetryAfter;

impl<Res, E> RetryAfter<Res, E> for NoRetryAfter {
    #[inline]
    fn retry_after(&self, _outcome: &Result<Res, E>) -> Option<Duration> {
        None
    }
}

impl<Res, E, F> RetryAfter<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Option<Duration>,
{
    #[inline]
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<Duration> {
        self(outcome)
    }
}
