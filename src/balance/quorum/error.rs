//! Errors of the quorum mode.

use std::fmt;

use super::response::ReplicaFailure;
use crate::balance::{MembershipError, ReplicaId};
use crate::signal::{DeadlineExceeded, ErrorSignals, Unavailable};

/// Why a copy of a quorum call failed when its replica's service returned
/// no error of its own; found in [`ReplicaFailure::error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// The replica answered, and the classifier called the answer a failure.
    #[error("the response was classified as a failure")]
    ClassifiedFailure,
    /// The replica did not become ready within the balancer's `ready_timeout`.
    #[error("the replica was not ready in time")]
    NotReady {
        /// The shared signal (kind `NotReady`).
        #[source]
        signal: Unavailable,
    },
    /// The replica left the set before the copy was sent.
    #[error("the replica left the set before the copy was sent")]
    Removed,
}

/// The state of a quorum call that did not reach its quorum: who succeeded,
/// who failed and who had not answered.
#[derive(Debug)]
#[non_exhaustive]
pub struct QuorumFailure {
    /// The quorum the request needed.
    pub needed: u32,
    /// The replicas that succeeded (for a write: the ones that now hold it).
    pub succeeded: Vec<ReplicaId>,
    /// The replicas whose copy failed, with their errors.
    pub failed: Vec<ReplicaFailure>,
    /// The replicas whose copy had not answered when the call gave up.
    pub unanswered: Vec<ReplicaId>,
    /// Whether the call gave up because its timeout (or deadline) passed,
    /// rather than because too few replicas were left.
    pub timed_out: bool,
}

impl QuorumFailure {
    pub(crate) fn new(needed: u32) -> QuorumFailure {
        QuorumFailure {
            needed,
            succeeded: Vec::new(),
            failed: Vec::new(),
            unanswered: Vec::new(),
            timed_out: false,
        }
    }

    /// How many replicas succeeded.
    pub fn succeeded_count(&self) -> u32 {
        u32::try_from(self.succeeded.len()).unwrap_or(u32::MAX)
    }
}

impl fmt::Display for QuorumFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} needed succeeded, {} failed, {} unanswered",
            self.succeeded.len(),
            self.needed,
            self.failed.len(),
            self.unanswered.len()
        )?;
        if self.timed_out {
            f.write_str(" when time ran out")?;
        }
        Ok(())
    }
}

/// Errors of the quorum mode ([`Quorum`](super::Quorum)).
///
/// The replicas' own errors never pass through alone: a quorum call has
/// several outcomes, so they are collected, per replica, in the
/// [`QuorumFailure`] report (and in [`QuorumResponse::failed`](super::QuorumResponse::failed)
/// when the quorum was reached anyway). A failed quorum carries the shared
/// [`Unavailable`] signal of kind `QuorumFailed` as its `source()`, with a
/// retry-after when the failed replicas said when they are back, so retry
/// and stale-if-error react to it like any "nothing available" error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// The quorum can no longer be reached: too many copies failed, too few
    /// replicas are available, or the quorum timeout passed first.
    #[error("quorum not reached: {failure}")]
    Failed {
        /// Who succeeded, failed and did not answer.
        failure: QuorumFailure,
        /// The shared signal (kind `QuorumFailed`).
        #[source]
        signal: Unavailable,
    },
    /// The request's deadline passed before the quorum was reached (or had
    /// passed when it was called: then nothing was sent).
    #[error("request deadline exceeded before the quorum: {failure}")]
    DeadlineExceeded {
        /// Who succeeded, failed and did not answer.
        failure: QuorumFailure,
        /// The shared deadline signal.
        #[source]
        source: DeadlineExceeded,
    },
    /// The request could not be copied (its [`Replay`](crate::signal::Replay)
    /// returned `None`): nothing was sent, since a quorum call needs a copy
    /// per replica.
    #[error("the request cannot be copied, so it cannot be sent to a quorum")]
    NotReplayable,
    /// The quorum the request asked for is out of range.
    #[error("a quorum of {needed} is out of range: it must be from 1 to n = {n}")]
    InvalidQuorum {
        /// The quorum asked for.
        needed: u32,
        /// The replicas a call asks.
        n: u32,
    },
    /// The balancer was made by a layer from replicas it could not take.
    #[error("the replica set is invalid: {0}")]
    Membership(#[source] MembershipError),
}

impl QuorumError {
    /// The report of a call that did not reach its quorum.
    pub fn failure(&self) -> Option<&QuorumFailure> {
        match self {
            QuorumError::Failed { failure, .. } | QuorumError::DeadlineExceeded { failure, .. } => {
                Some(failure)
            }
            _ => None,
        }
    }

    /// How many replicas succeeded before the call failed (0 when it failed
    /// before sending).
    pub fn succeeded(&self) -> u32 {
        self.failure().map_or(0, QuorumFailure::succeeded_count)
    }
}

impl ErrorSignals for QuorumError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            QuorumError::Failed { signal, .. } => Some(signal),
            _ => None,
        }
    }

    fn deadline_exceeded(&self) -> bool {
        matches!(self, QuorumError::DeadlineExceeded { .. })
    }
}
