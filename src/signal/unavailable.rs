//! "Unavailable, retry after", the deadline error, and finding them in any error.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::BoxError;

/// Why nothing could take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnavailableKind {
    /// A circuit breaker is open.
    CircuitOpen,
    /// An endpoint did not become ready within the configured wait.
    NotReady,
    /// No endpoint of a set (a shard's replicas, the shards of a fleet) is available.
    NoneAvailable,
    /// Load was shed: too many requests are already waiting.
    Overloaded,
    /// A quorum of replicas could not be reached.
    QuorumFailed,
    /// The server said so (HTTP 503 with `Retry-After`, gRPC pushback).
    Server,
}

impl fmt::Display for UnavailableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnavailableKind::CircuitOpen => "circuit breaker open",
            UnavailableKind::NotReady => "endpoint not ready in time",
            UnavailableKind::NoneAvailable => "no endpoint available",
            UnavailableKind::Overloaded => "overloaded",
            UnavailableKind::QuorumFailed => "quorum not reached",
            UnavailableKind::Server => "server unavailable",
        })
    }
}

/// "Unavailable, retry after": the error every "nothing available" path
/// carries, so that retry and stale-if-error can react at once.
///
/// Layers put it in their own error types as the error's `source()`, so
/// [`ErrorSignals::unavailable`] finds it through any wrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    kind: UnavailableKind,
    retry_after: Option<Duration>,
}

impl Unavailable {
    /// A new signal of this kind, with no retry-after hint.
    pub fn new(kind: UnavailableKind) -> Unavailable {
        Unavailable {
            kind,
            retry_after: None,
        }
    }

    /// The same signal with a retry-after hint.
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Unavailable {
        self.retry_after = after;
        self
    }

    /// Why nothing was available.
    pub fn kind(&self) -> UnavailableKind {
        self.kind
    }

    /// How long after the error was made trying again makes sense, if known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unavailable: {}", self.kind)?;
        if let Some(after) = self.retry_after {
            write!(f, " (retry after {after:?})")?;
        }
        Ok(())
    }
}

impl StdError for Unavailable {}

/// The request's deadline passed before it could be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request deadline exceeded")]
pub struct DeadlineExceeded;

/// Finds the shared signals in an error, however it is wrapped.
///
/// Implemented for [`BoxError`] (it walks the `source()` chain), for the
/// crate's own error types, and for common leaf errors. A request error type
/// of your own can implement it in a line, or with a walk of its chain:
///
/// ```
/// use tower_fleet::signal::{ErrorSignals, Unavailable, UnavailableKind};
///
/// let err: tower_fleet::BoxError = Box::new(Unavailable::new(UnavailableKind::CircuitOpen));
/// assert_eq!(err.unavailable().unwrap().kind(), UnavailableKind::CircuitOpen);
/// ```
pub trait ErrorSignals {
    /// The "unavailable, retry after" signal this error carries, if any.
    fn unavailable(&self) -> Option<&Unavailable>;

    /// Whether this error says the request's deadline passed.
    fn deadline_exceeded(&self) -> bool {
        false
    }

    /// This error as a `std` error, so that readers can walk its `source()`
    /// chain for signals this trait does not name (the `http` feature looks
    /// there for connection errors that prove a request was never sent).
    ///
    /// The default, `None`, hides the chain. `BoxError`, `std::io::Error`
    /// and the crate's own errors return themselves.
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        None
    }
}

/// The [`Unavailable`] signal in `err` or anywhere along its `source()` chain.
pub fn find_unavailable<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Unavailable> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(u) = e.downcast_ref::<Unavailable>() {
            return Some(u);
        }
        cur = e.source();
    }
    None
}

/// Whether `err` or anything along its `source()` chain is [`DeadlineExceeded`].
pub fn find_deadline_exceeded(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<DeadlineExceeded>() {
            return true;
        }
        cur = e.source();
    }
    false
}

impl ErrorSignals for BoxError {
    fn unavailable(&self) -> Option<&Unavailable> {
        find_unavailable(&**self)
    }
    fn deadline_exceeded(&self) -> bool {
        find_deadline_exceeded(&**self)
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&**self)
    }
}

impl ErrorSignals for Unavailable {
    fn unavailable(&self) -> Option<&Unavailable> {
        Some(self)
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

impl ErrorSignals for DeadlineExceeded {
    fn unavailable(&self) -> Option<&Unavailable> {
        None
    }
    fn deadline_exceeded(&self) -> bool {
        true
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

impl ErrorSignals for std::io::Error {
    fn unavailable(&self) -> Option<&Unavailable> {
        find_unavailable(self)
    }
    fn deadline_exceeded(&self) -> bool {
        find_deadline_exceeded(self)
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

impl ErrorSignals for std::convert::Infallible {
    fn unavailable(&self) -> Option<&Unavailable> {
        match *self {}
    }
}

impl ErrorSignals for tower::timeout::error::Elapsed {
    fn unavailable(&self) -> Option<&Unavailable> {
        None
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}
