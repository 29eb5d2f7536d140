//! The errors of the circuit breaker.

use std::time::Duration;

use super::state::BreakerState;
use crate::signal::{find_deadline_exceeded, find_unavailable, ErrorSignals, Unavailable};
use crate::BoxError;

/// Errors of the [`CircuitBreaker`](super::CircuitBreaker) service.
///
/// The inner service's error is wrapped, unchanged, in
/// [`BreakerError::Inner`] (boxed, as tower's own middleware do); its shared
/// signals stay findable through [`ErrorSignals`]. A call the breaker refuses
/// is [`BreakerError::Open`], whose `source()` is the shared
/// [`Unavailable`] signal of kind
/// [`CircuitOpen`](crate::signal::UnavailableKind::CircuitOpen) with the
/// time until the breaker admits calls again, so retry and stale-if-error
/// layers find it without knowing this module.
///
/// ```
/// use tower_fleet::breaker::BreakerError;
/// use tower_fleet::signal::{ErrorSignals, UnavailableKind};
///
/// fn wait_hint(err: &BreakerError) -> Option<std::time::Duration> {
///     err.unavailable().filter(|u| u.kind() == UnavailableKind::CircuitOpen)?.retry_after()
/// }
/// # let _ = wait_hint;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerError {
    /// The breaker refused the call without touching the inner service: it
    /// is open, forced open, or half-open with every probe slot taken.
    #[error("circuit breaker {state}: call refused")]
    Open {
        /// The state that refused the call.
        state: BreakerState,
        /// The shared signal: kind `CircuitOpen`, and the time until the
        /// breaker admits calls again (`None` when forced open or half-open).
        #[source]
        signal: Unavailable,
    },
    /// The inner service failed (in `poll_ready` or in its response).
    #[error("inner service error: {0}")]
    Inner(#[source] BoxError),
}

impl BreakerError {
    /// Whether the breaker refused the call.
    pub fn is_open(&self) -> bool {
        matches!(self, BreakerError::Open { .. })
    }

    /// For a refused call: how long until the breaker admits calls again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BreakerError::Open { signal, .. } => signal.retry_after(),
            BreakerError::Inner(_) => None,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<BoxError> {
        match self {
            BreakerError::Inner(e) => Some(e),
            BreakerError::Open { .. } => None,
        }
    }
}

impl ErrorSignals for BreakerError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            BreakerError::Open { signal, .. } => Some(signal),
            BreakerError::Inner(e) => find_unavailable(&**e),
        }
    }

    fn deadline_exceeded(&self) -> bool {
        match self {
            BreakerError::Open { .. } => false,
            BreakerError::Inner(e) => find_deadline_exceeded(&**e),
        }
    }

    fn as_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}
