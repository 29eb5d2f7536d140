//! Why a Redis tier could not be built.

use std::error::Error as StdError;

use crate::breaker::BreakerBuildError;
use crate::config::ConfigError;
use crate::signal::{ErrorSignals, Unavailable};
use crate::NoRuntime;

/// Why [`RedisStore::connect`](super::RedisStore::connect) failed.
///
/// Only building can fail: once built, the tier never fails a request (a
/// Redis error is a miss, or a write not made, and counts against the
/// breaker around Redis).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisTierError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Redis client could not be made (the URL does not parse, or
    /// names an unsupported scheme).
    #[error("cannot make the redis client: {0}")]
    Client(#[source] redis::RedisError),
    /// The tier's background tasks (the ordered writer and the
    /// invalidation subscriber) need a tokio runtime.
    #[error(transparent)]
    NoRuntime(#[from] NoRuntime),
    /// The breaker around Redis could not be built.
    #[error(transparent)]
    Breaker(#[from] BreakerBuildError),
}

impl ErrorSignals for RedisTierError {
    fn unavailable(&self) -> Option<&Unavailable> {
        None
    }

    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}
