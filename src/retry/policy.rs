//! What the retry layer asks of each request and outcome: is it a failure,
//! may the request be sent again, how to copy it, and does the outcome ask
//! for a wait.

use std::time::Duration;

use crate::classify::{Classify, ErrorIsFailure, Outcome};
use crate::signal::{CloneReplay, ErrorRetryAfter, Replay, RetryAfter};

/// Decides, per request, whether it may be sent more than once.
///
/// A request that is not retryable is sent once and neither retried nor
/// hedged: use it for requests that are not idempotent. Implemented for
/// closures `Fn(&Req) -> bool`; [`AllRequests`] (the default) retries every
/// request. The `http` feature restricts retries to idempotent methods.
pub trait Retryable<Req> {
    /// Whether `req` may be sent again.
    fn is_retryable(&self, req: &Req) -> bool;
}

/// Every request is retryable (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllRequests;

impl<Req> Retryable<Req> for AllRequests {
    #[inline]
    fn is_retryable(&self, _req: &Req) -> bool {
        true
    }
}

impl<Req, F> Retryable<Req> for F
where
    F: Fn(&Req) -> bool,
{
    #[inline]
    fn is_retryable(&self, req: &Req) -> bool {
        self(req)
    }
}

/// Everything the [`Retry`](super::Retry) service asks about requests and
/// outcomes, in one place.
///
/// [`Policy`] assembles it from four pieces, which the builder sets one by
/// one; implement the trait yourself only when the pieces must share state.
pub trait RetryPolicy<Req, Res, E> {
    /// How an attempt went. Only [`Outcome::Failure`] is retried; a
    /// success or an ignored outcome is returned at once.
    fn outcome(&self, result: &Result<Res, E>) -> Outcome;

    /// Whether the request may be sent more than once.
    fn is_retryable(&self, req: &Req) -> bool;

    /// A copy of the request for another attempt, or `None` when it cannot
    /// be copied (it is then sent once).
    fn replay(&self, req: &Req) -> Option<Req>;

    /// How long the outcome asks the caller to wait before trying again.
    fn retry_after(&self, result: &Result<Res, E>) -> Option<Duration>;

    /// Whether `req`, which [`is_retryable`](Self::is_retryable) refused,
    /// may still be sent again after an attempt that never reached the
    /// server (see [`never_sent`](Self::never_sent)): a POST whose connection
    /// was refused cannot have been applied. Such a request is copied for
    /// that case, never hedged, and retried only when
    /// [`never_sent`](Self::never_sent) says so. The default is `false`.
    fn is_retryable_unsent(&self, req: &Req) -> bool {
        let _ = req;
        false
    }

    /// Whether a failed outcome shows that its request never reached the
    /// server (a refused connection, a circuit breaker that was open), so
    /// that sending it again cannot apply it twice. The default is `false`.
    fn never_sent(&self, result: &Result<Res, E>) -> bool {
        let _ = result;
        false
    }
}

/// The standard [`RetryPolicy`]: a classifier, a retryable predicate, a
/// request replay and a retry-after reader.
///
/// The defaults: errors are failures ([`ErrorIsFailure`]), every request is
/// retryable ([`AllRequests`]), requests are copied with `Clone`
/// ([`CloneReplay`]), and retry-after hints come from the errors'
/// [`Unavailable`](crate::signal::Unavailable) signal ([`ErrorRetryAfter`],
/// which needs the inner error to implement
/// [`ErrorSignals`](crate::signal::ErrorSignals), as `BoxError`,
/// `std::io::Error` and the crate's errors do; for another error type, use
/// [`NoRetryAfter`](crate::signal::NoRetryAfter) or a closure).
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy<C = ErrorIsFailure, F = AllRequests, R = CloneReplay, A = ErrorRetryAfter> {
    /// What counts as a failure.
    pub classify: C,
    /// Which requests may be sent more than once.
    pub retryable: F,
    /// How to copy a request.
    pub replay: R,
    /// Where retry-after hints come from.
    pub retry_after: A,
}

impl<Req, Res, E, C, F, R, A> RetryPolicy<Req, Res, E> for Policy<C, F, R, A>
where
    C: Classify<Res, E>,
    F: Retryable<Req>,
    R: Replay<Req>,
    A: RetryAfter<Res, E>,
{
    /// The classifier's outcome. An outcome known only at the end of a
    /// stream counts as a success here: the response has started, and the
    /// retry layer cannot take it back.
    #[inline]
    fn outcome(&self, result: &Result<Res, E>) -> Outcome {
        self.classify
            .classify(result)
            .now()
            .unwrap_or(Outcome::Success)
    }

    #[inline]
    fn is_retryable(&self, req: &Req) -> bool {
        self.retryable.is_retryable(req)
    }

    #[inline]
    fn replay(&self, req: &Req) -> Option<Req> {
        self.replay.replay(req)
    }

    #[inline]
    fn retry_after(&self, result: &Result<Res, E>) -> Option<Duration> {
        self.retry_after.retry_after(result)
    }
}
