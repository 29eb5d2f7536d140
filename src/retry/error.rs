//! Errors of the retry service.

use std::time::Duration;

use crate::signal::{
    find_deadline_exceeded, find_unavailable, DeadlineExceeded, ErrorSignals, Unavailable,
};
use crate::BoxError;

/// Errors of the [`Retry`](super::Retry) service.
///
/// The inner service's error of the last attempt is returned in
/// [`RetryError::Inner`], boxed but otherwise unchanged (downcast it to get
/// it back). Its shared signals stay findable through [`ErrorSignals`] and
/// along the `source()` chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError {
    /// The inner service's error (from its last attempt, or from `poll_ready`).
    #[error("{0}")]
    Inner(#[source] BoxError),
    /// The last attempt took longer than `attempt_timeout`.
    #[error("attempt {attempt} timed out after {timeout:?}")]
    AttemptTimedOut {
        /// Which attempt (from 1).
        attempt: u32,
        /// The configured `attempt_timeout`.
        timeout: Duration,
    },
    /// The request's deadline (its own, or `timeout` from its start) passed.
    #[error("request deadline exceeded after {attempts} attempt(s)")]
    DeadlineExceeded {
        /// How many attempts were started.
        attempts: u32,
        /// The shared deadline signal.
        #[source]
        source: DeadlineExceeded,
    },
}

impl RetryError {
    /// The inner service's error, if this is one.
    pub fn inner(&self) -> Option<&BoxError> {
        match self {
            RetryError::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// The inner service's error, if this is one, by value.
    pub fn into_inner(self) -> Option<BoxError> {
        match self {
            RetryError::Inner(e) => Some(e),
            _ => None,
        }
    }
}

impl ErrorSignals for RetryError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            RetryError::Inner(e) => find_unavailable(&**e),
            _ => None,
        }
    }

    fn deadline_exceeded(&self) -> bool {
        match self {
            RetryError::DeadlineExceeded { .. } => true,
            RetryError::Inner(e) => find_deadline_exceeded(&**e),
            RetryError::AttemptTimedOut { .. } => false,
        }
    }

    fn as_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}
