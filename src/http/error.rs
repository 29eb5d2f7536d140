//! Errors of the HTTP integration's layers.

use crate::signal::{find_deadline_exceeded, find_unavailable, ErrorSignals, Unavailable};
use crate::BoxError;

/// Errors of the body-buffering layers ([`BufferRequest`](super::BufferRequest),
/// [`BufferResponse`](super::BufferResponse)) and of
/// [`buffer_response`](super::buffer_response).
///
/// The inner service's error is boxed, unchanged, in [`HttpError::Inner`];
/// its shared signals stay findable through [`ErrorSignals`] and along the
/// `source()` chain (which is how [`never_sent`](super::never_sent) finds a
/// hyper connection error under it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The inner service failed.
    #[error("{0}")]
    Inner(#[source] BoxError),
    /// A response body was larger than the buffering cap.
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// Reading a body failed.
    #[error("reading the body failed: {0}")]
    Body(#[source] BoxError),
}

impl ErrorSignals for HttpError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            HttpError::Inner(e) | HttpError::Body(e) => find_unavailable(&**e),
            HttpError::BodyTooLarge { .. } => None,
        }
    }

    fn deadline_exceeded(&self) -> bool {
        match self {
            HttpError::Inner(e) | HttpError::Body(e) => find_deadline_exceeded(&**e),
            HttpError::BodyTooLarge { .. } => false,
        }
    }

    fn as_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}
