//! The quorum mode's counters, shared by every quorum view of a balancer.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Counter;

#[derive(Default)]
pub(crate) struct QuorumCounters {
    pub(crate) calls: Counter,
    pub(crate) met: Counter,
    pub(crate) failed: Counter,
    pub(crate) deadline_exceeded: Counter,
    pub(crate) not_replayable: Counter,
    pub(crate) failovers: Counter,
    pub(crate) stragglers_cancelled: Counter,
    /// Stragglers running in the background now.
    pub(crate) stragglers: AtomicU64,
}

impl QuorumCounters {
    pub(crate) fn snapshot(&self) -> QuorumStats {
        QuorumStats {
            calls: self.calls.get(),
            met: self.met.get(),
            failed: self.failed.get(),
            deadline_exceeded: self.deadline_exceeded.get(),
            not_replayable: self.not_replayable.get(),
            failovers: self.failovers.get(),
            stragglers: self.stragglers.load(Ordering::Relaxed),
            stragglers_cancelled: self.stragglers_cancelled.get(),
        }
    }
}

/// The quorum mode's counters, in a [`BalanceSnapshot`](crate::balance::BalanceSnapshot)
/// (all zero when no quorum call was made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumStats {
    /// Quorum calls made.
    pub calls: u64,
    /// Calls that reached their quorum.
    pub met: u64,
    /// Calls that did not (too many failures, too few replicas, timeout).
    pub failed: u64,
    /// Calls whose deadline passed first.
    pub deadline_exceeded: u64,
    /// Calls refused because the request could not be copied.
    pub not_replayable: u64,
    /// Copies sent to a spare replica after a contacted one failed.
    pub failovers: u64,
    /// Copies still running in the background after their call's outcome
    /// was decided, now.
    pub stragglers: u64,
    /// Stragglers cancelled: beyond `max_stragglers`, past
    /// `straggler_timeout`, or with no runtime to run them on.
    pub stragglers_cancelled: u64,
}
