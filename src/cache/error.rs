//! Errors of the cache layer.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::signal::{
    find_deadline_exceeded, find_unavailable, DeadlineExceeded, ErrorSignals, Unavailable,
};
use crate::BoxError;

/// The inner service's error, shared by every caller of one coalesced
/// upstream call and by the hits of a negatively cached error.
///
/// Errors are not always `Clone`, so the cache keeps the one error an upstream
/// call returned behind an `Arc` and hands each caller a clone of the `Arc`.
/// Its `source()` is the inner error, so the shared signals stay findable:
///
/// ```
/// use tower_fleet::cache::SharedError;
/// use tower_fleet::signal::{find_unavailable, Unavailable, UnavailableKind};
///
/// let err = SharedError::new(Box::new(Unavailable::new(UnavailableKind::CircuitOpen)));
/// assert_eq!(find_unavailable(&err).unwrap().kind(), UnavailableKind::CircuitOpen);
/// assert!(SharedError::ptr_eq(&err, &err.clone()));
/// ```
#[derive(Clone)]
pub struct SharedError {
    inner: Arc<dyn StdError + Send + Sync + 'static>,
}

impl SharedError {
    /// Shares `err`.
    pub fn new(err: BoxError) -> SharedError {
        SharedError {
            inner: Arc::from(err),
        }
    }

    /// The inner service's error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// Whether two shared errors are the same error (the same upstream call).
    pub fn ptr_eq(a: &SharedError, b: &SharedError) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

impl fmt::Debug for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedError").field(&self.inner).finish()
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the upstream call failed: {}", self.inner)
    }
}

impl StdError for SharedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.inner)
    }
}

/// Errors of the [`Cache`](super::Cache) service.
///
/// The inner service's error is never returned bare: every caller of a
/// coalesced load gets the same error, so it is wrapped, shared, in
/// [`CacheError::Upstream`]. The shared signals stay findable through
/// [`ErrorSignals`] (or [`find_unavailable`] on the error): `Upstream` passes
/// the inner error's signals through, [`CacheError::Overloaded`] carries
/// [`Unavailable`] of kind [`Overloaded`](crate::signal::UnavailableKind::Overloaded).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The inner service failed (or a negatively cached failure was hit).
    /// Every caller of one coalesced load gets a clone of the same error.
    #[error(transparent)]
    Upstream(SharedError),
    /// A miss waited `ready_timeout` for the inner service to become ready,
    /// in vain: the load was shed. Carries the shared unavailable signal, so
    /// retry and stale-if-error react to it at once.
    #[error("cache miss shed: the inner service did not become ready in time")]
    Overloaded(#[source] Unavailable),
    /// The request's deadline passed while it waited for a miss to load.
    #[error("request deadline exceeded while waiting for a cache load")]
    DeadlineExceeded(#[source] DeadlineExceeded),
    /// The load this request waited for panicked; nothing was cached.
    #[error("the cache load this request waited for panicked")]
    LoadPanicked,
}

impl CacheError {
    /// The inner service's error, when this is one.
    pub fn upstream(&self) -> Option<&SharedError> {
        match self {
            CacheError::Upstream(e) => Some(e),
            _ => None,
        }
    }
}

impl ErrorSignals for CacheError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            CacheError::Upstream(e) => find_unavailable(e.get_ref()),
            CacheError::Overloaded(signal) => Some(signal),
            _ => None,
        }
    }

    fn deadline_exceeded(&self) -> bool {
        match self {
            CacheError::DeadlineExceeded(_) => true,
            CacheError::Upstream(e) => find_deadline_exceeded(e.get_ref()),
            _ => false,
        }
    }

    fn as_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}
