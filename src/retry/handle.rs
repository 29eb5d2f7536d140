//! `RetryHandle`: the counters of a retry layer and its budget.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::budget::{BudgetSnapshot, RetryBudget};
use super::config::RetryConfig;
use crate::metrics::Counter;

/// The counters every clone of a retry layer shares.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) requests: Counter,
    pub(crate) retries: Counter,
    pub(crate) budget_exhausted: Counter,
    pub(crate) not_cloneable: Counter,
    pub(crate) hedges_sent: Counter,
    pub(crate) hedges_won: Counter,
    pub(crate) attempt_timeouts: Counter,
    pub(crate) deadline_exceeded: Counter,
}

/// What a handle reads, whatever the layer's policy type.
pub(crate) trait Observe: Send + Sync {
    fn stats(&self) -> &Stats;
    fn requests(&self) -> u64;
    fn budget(&self) -> Option<&RetryBudget>;
    fn config(&self) -> &RetryConfig;
    fn hedge_delay(&self) -> Option<Duration>;
}

/// Reads the counters of a [`Retry`](super::Retry) layer (shared by every
/// clone of the layer and of its services) and its budget.
#[derive(Clone)]
pub struct RetryHandle {
    pub(crate) shared: Arc<dyn Observe>,
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandle")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl RetryHandle {
    /// A snapshot of the counters: a few relaxed atomic loads.
    pub fn snapshot(&self) -> RetrySnapshot {
        let s = self.shared.stats();
        RetrySnapshot {
            requests: self.shared.requests(),
            retries: s.retries.get(),
            budget_exhausted: s.budget_exhausted.get(),
            not_cloneable: s.not_cloneable.get(),
            hedges_sent: s.hedges_sent.get(),
            hedges_won: s.hedges_won.get(),
            attempt_timeouts: s.attempt_timeouts.get(),
            deadline_exceeded: s.deadline_exceeded.get(),
            budget: self.shared.budget().map(RetryBudget::snapshot),
        }
    }

    /// The layer's retry budget, if it has one.
    pub fn budget(&self) -> Option<RetryBudget> {
        self.shared.budget().cloned()
    }

    /// The layer's configuration.
    pub fn config(&self) -> &RetryConfig {
        self.shared.config()
    }

    /// The delay after which a request is hedged now: the fixed delay, or
    /// the percentile of the last window (`None` while it had too few
    /// samples, or when hedging is off).
    pub fn hedge_delay(&self) -> Option<Duration> {
        self.shared.hedge_delay()
    }
}

/// The counters of a retry layer, read through [`RetryHandle::snapshot`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetrySnapshot {
    /// Requests received.
    pub requests: u64,
    /// Retries sent (hedges not included).
    pub retries: u64,
    /// Retries and hedges that the budget refused: those requests returned
    /// their last outcome unchanged (or were not hedged).
    pub budget_exhausted: u64,
    /// Retryable requests that could not be copied: sent once, their
    /// outcome returned.
    pub not_cloneable: u64,
    /// Backup copies sent.
    pub hedges_sent: u64,
    /// Requests answered by their backup copy.
    pub hedges_won: u64,
    /// Attempts that exceeded `attempt_timeout`.
    pub attempt_timeouts: u64,
    /// Requests that failed because their deadline passed.
    pub deadline_exceeded: u64,
    /// The budget's balance and counters, when the layer has a budget.
    pub budget: Option<BudgetSnapshot>,
}
