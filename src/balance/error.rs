//! Errors of the balancer and of its membership.

use super::replica::ReplicaId;
use crate::config::ConfigError;
use crate::signal::{
    find_deadline_exceeded, find_unavailable, DeadlineExceeded, ErrorSignals, Unavailable,
};
use crate::BoxError;

/// A membership change the balancer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// A replica has weight zero.
    #[error("replica {id} has weight 0: weights must be at least 1")]
    ZeroWeight {
        /// The replica.
        id: ReplicaId,
    },
    /// Two replicas have the same id.
    #[error("replica id {id} appears more than once")]
    DuplicateId {
        /// The repeated id.
        id: ReplicaId,
    },
}

/// Errors of the [`Balance`](super::Balance) service.
///
/// The inner service's errors are wrapped in [`BalanceError::Inner`] with the
/// id of the replica that returned them. The shared signals stay findable
/// through [`ErrorSignals`]: [`NoReplicas`](BalanceError::NoReplicas) and
/// [`Unavailable`](BalanceError::Unavailable) carry an [`Unavailable`] of
/// kind `NoneAvailable` (with a retry-after when a replica said when it will
/// be back) as their `source()`, and `Inner` passes the inner error's
/// signals through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceError {
    /// The replica set is empty: the call failed at once.
    #[error("no replicas: the set is empty")]
    NoReplicas {
        /// The shared signal (kind `NoneAvailable`, no retry-after).
        #[source]
        signal: Unavailable,
    },
    /// No replica became available and ready within `ready_timeout`.
    #[error("no replica available")]
    Unavailable {
        /// The shared signal (kind `NoneAvailable`), with when to try again if known.
        #[source]
        signal: Unavailable,
    },
    /// The request's deadline passed while it waited for a replica.
    #[error("request deadline exceeded while waiting for a replica")]
    DeadlineExceeded {
        /// The shared deadline signal.
        #[source]
        source: DeadlineExceeded,
    },
    /// The balancer was made by a layer from replicas it could not take
    /// (reported on every call; use the builder to get it up front).
    #[error("the replica set is invalid: {0}")]
    Membership(#[source] MembershipError),
    /// The replica's service returned an error (from `call`, or from
    /// `poll_ready` when no other replica could take the request).
    #[error("replica {replica}: {source}")]
    Inner {
        /// The replica whose service failed.
        replica: ReplicaId,
        /// The inner service's error.
        #[source]
        source: BoxError,
    },
}

impl BalanceError {
    /// The replica the error is about, if any.
    pub fn replica(&self) -> Option<&ReplicaId> {
        match self {
            BalanceError::Inner { replica, .. } => Some(replica),
            _ => None,
        }
    }
}

impl ErrorSignals for BalanceError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            BalanceError::NoReplicas { signal } | BalanceError::Unavailable { signal } => {
                Some(signal)
            }
            BalanceError::Inner { source, .. } => find_unavailable(&**source),
            _ => None,
        }
    }

    fn deadline_exceeded(&self) -> bool {
        match self {
            BalanceError::DeadlineExceeded { .. } => true,
            BalanceError::Inner { source, .. } => find_deadline_exceeded(&**source),
            _ => false,
        }
    }

    fn as_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}

/// Why a [`BalanceBuilder`](super::BalanceBuilder) could not build a balancer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BalanceBuildError {
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The replicas given are invalid.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// Discovery or health checks were asked for outside a tokio runtime.
    #[error(transparent)]
    NoRuntime(#[from] crate::NoRuntime),
    /// The per-replica breakers' configuration is invalid.
    #[error("replica breakers: {0}")]
    ReplicaBreaker(#[source] crate::breaker::BreakerBuildError),
}
