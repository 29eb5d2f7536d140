//! Errors of placement and of the shard service.

use crate::config::ConfigError;
use crate::signal::{
    find_deadline_exceeded, find_unavailable, DeadlineExceeded, ErrorSignals, Unavailable,
};
use crate::BoxError;

use super::placement::{ShardId, MAX_SHARDS};

/// A membership from which no placement table can be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// The membership has no shard.
    #[error("the membership is empty: a placement needs at least one shard")]
    Empty,
    /// A shard has weight zero.
    #[error("shard {id} has weight 0: weights must be at least 1")]
    ZeroWeight {
        /// The shard.
        id: ShardId,
    },
    /// Two shards have the same id.
    #[error("shard id {id} appears more than once")]
    DuplicateId {
        /// The repeated id.
        id: ShardId,
    },
    /// More shards than a placement holds.
    #[error("{count} shards: a placement holds at most {max}", max = MAX_SHARDS)]
    TooManyShards {
        /// How many were given.
        count: usize,
    },
    /// A Maglev table smaller than the membership.
    #[error("a Maglev table of size {table_size} cannot hold {shards} shards: the table size must be at least the shard count")]
    TableTooSmall {
        /// The configured table size.
        table_size: u32,
        /// The number of shards.
        shards: usize,
    },
    /// A ring with more points than it holds.
    #[error("the ring would need {points} points, more than the {max} it holds: lower points_per_weight or the weights", max = super::ring::MAX_POINTS)]
    TooManyPoints {
        /// The number of points asked for.
        points: u64,
    },
    /// Jump hashing needs shard ids ending in the numbers `0..N` (`kv-0`,
    /// `kv-1`, ...); this one is missing its number, repeats one, or leaves a
    /// gap (an arbitrary removal, which jump hashing cannot do).
    #[error("shard {id}: jump hashing needs ids ending in the numbers 0..N with no gap or repeat (and can only grow or shrink at the end)")]
    JumpNotContiguous {
        /// The offending shard.
        id: ShardId,
    },
    /// The algorithm does not support weights, and a shard's weight is not 1.
    #[error("shard {id}: {algorithm} does not support weights (weight must be 1)")]
    Unweighted {
        /// The algorithm.
        algorithm: &'static str,
        /// The weighted shard.
        id: ShardId,
    },
    /// An entry of a membership log adds a shard that is already a member or
    /// removes one that is not.
    #[error("membership log entry {index} ({id}) adds a shard that is a member or removes one that is not")]
    BadLog {
        /// The position of the entry in the log.
        index: usize,
        /// The shard it names.
        id: ShardId,
    },
    /// The shards given do not match the final membership of the log.
    #[error("shard {id} is in the membership or in the log's final membership, but not in both")]
    LogMismatch {
        /// A shard in one and not the other.
        id: ShardId,
    },
    /// The placement depends on the order of membership changes (Memento), and
    /// set-based discovery cannot give every router the same order.
    #[error(
        "this placement needs an ordered membership log, which set-based discovery cannot provide"
    )]
    NeedsOrderedLog,
    /// A configuration value is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Errors of the [`Shard`](super::Shard) service.
///
/// The inner service's errors are wrapped in [`ShardError::Inner`] with the
/// id of the shard that returned them. The shared signals stay findable
/// through [`ErrorSignals`]: [`ShardError::Unavailable`] carries its
/// [`Unavailable`] (with a retry-after when the owner's health gave one), and
/// `Inner` passes the inner error's signals through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The request had no key (the key function returned `None`).
    #[error("the request has no shard key")]
    NoKey,
    /// The membership is empty.
    #[error("no shards: the membership is empty")]
    NoShards,
    /// The membership could not be built (a layer applied to an invalid set of
    /// shards reports it on every call).
    #[error("the shard membership is invalid: {0}")]
    Membership(#[source] PlacementError),
    /// The shard that owns the key (and, with failover, each shard tried after
    /// it) is known to be unavailable, or did not become ready in time.
    #[error("shard {shard} is unavailable")]
    Unavailable {
        /// The owner of the key.
        shard: ShardId,
        /// The shared signal, with its retry-after when known.
        #[source]
        signal: Unavailable,
    },
    /// The request's deadline passed while it waited for its shard.
    #[error("shard {shard}: request deadline exceeded while waiting for the shard")]
    DeadlineExceeded {
        /// The shard it waited for.
        shard: ShardId,
        /// The shared deadline signal.
        #[source]
        source: DeadlineExceeded,
    },
    /// The shard's service returned an error.
    #[error("shard {shard}: {source}")]
    Inner {
        /// The shard whose service failed.
        shard: ShardId,
        /// The inner service's error.
        #[source]
        source: BoxError,
    },
}

impl ShardError {
    /// The shard the error is about, if any.
    pub fn shard(&self) -> Option<&ShardId> {
        match self {
            ShardError::Unavailable { shard, .. }
            | ShardError::DeadlineExceeded { shard, .. }
            | ShardError::Inner { shard, .. } => Some(shard),
            _ => None,
        }
    }
}

impl ErrorSignals for ShardError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            ShardError::Unavailable { signal, .. } => Some(signal),
            ShardError::Inner { source, .. } => find_unavailable(&**source),
            _ => None,
        }
    }

    fn deadline_exceeded(&self) -> bool {
        match self {
            ShardError::DeadlineExceeded { .. } => true,
            ShardError::Inner { source, .. } => find_deadline_exceeded(&**source),
            _ => false,
        }
    }

    fn as_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}

/// Why a [`ShardBuilder`](super::ShardBuilder) could not build a shard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardBuildError {
    /// The configuration or the membership is invalid.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// Discovery was asked for outside a tokio runtime.
    #[error(transparent)]
    NoRuntime(#[from] crate::NoRuntime),
}

impl From<ConfigError> for ShardBuildError {
    fn from(e: ConfigError) -> Self {
        ShardBuildError::Placement(PlacementError::Config(e))
    }
}
