//! `BreakerHandle`: read a breaker's state and counters, change its state,
//! subscribe to its transitions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::core::Core;
use super::state::BreakerState;
use crate::signal::HealthSignal;

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionCause {
    /// The breaker was built (the first value of a subscription).
    Created,
    /// The window's failure rate reached the threshold.
    FailureRate,
    /// The window's slow-call rate reached the threshold.
    SlowCallRate,
    /// `consecutive_failures` calls failed in a row.
    ConsecutiveFailures,
    /// The open duration passed.
    OpenDurationElapsed,
    /// The half-open probes all finished under the thresholds.
    ProbesSucceeded,
    /// The half-open probes failed at or above the failure-rate threshold.
    ProbesFailed,
    /// The half-open probes were slow at or above the slow-call threshold.
    ProbesSlow,
    /// The probes did not finish within `max_half_open_duration`.
    HalfOpenTimedOut,
    /// A [`BreakerHandle`] asked for it.
    Handle,
    /// [`BreakerHandle::reset`].
    Reset,
}

impl fmt::Display for TransitionCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransitionCause::Created => "created",
            TransitionCause::FailureRate => "failure rate",
            TransitionCause::SlowCallRate => "slow-call rate",
            TransitionCause::ConsecutiveFailures => "consecutive failures",
            TransitionCause::OpenDurationElapsed => "open duration elapsed",
            TransitionCause::ProbesSucceeded => "probes succeeded",
            TransitionCause::ProbesFailed => "probes failed",
            TransitionCause::ProbesSlow => "probes slow",
            TransitionCause::HalfOpenTimedOut => "half-open timed out",
            TransitionCause::Handle => "handle",
            TransitionCause::Reset => "reset",
        })
    }
}

/// One transition, as subscribers ([`BreakerHandle::subscribe`]) see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// The epoch the transition started (every transition starts one).
    pub epoch: u32,
    /// Why.
    pub cause: TransitionCause,
    /// When, by the breaker's clock.
    pub at: Instant,
    /// For a transition to open: when it will admit probes again.
    pub open_until: Option<Instant>,
}

impl StateChange {
    pub(crate) fn created(state: BreakerState, at: Instant) -> StateChange {
        StateChange {
            from: state,
            to: state,
            epoch: 0,
            cause: TransitionCause::Created,
            at,
            open_until: None,
        }
    }
}

/// A breaker's counters and state, read through [`BreakerHandle::snapshot`].
///
/// The `window_*` fields describe the current window (emptied whenever the
/// breaker closes); the others count since the breaker was built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The state now.
    pub state: BreakerState,
    /// The epoch now.
    pub epoch: u32,
    /// How long the breaker has been in this state.
    pub time_in_state: Duration,
    /// When an open breaker will admit probes again.
    pub open_until: Option<Instant>,
    /// Calls (successes and failures) in the window.
    pub window_calls: u64,
    /// Failures in the window.
    pub window_failures: u64,
    /// Slow calls in the window.
    pub window_slow_calls: u64,
    /// Failures as a percentage of the window's calls (`None` when empty).
    pub failure_rate: Option<f64>,
    /// Slow calls as a percentage of the window's calls (`None` when empty).
    pub slow_call_rate: Option<f64>,
    /// Failures in a row (counted only when `consecutive_failures` is set).
    pub consecutive_failures: u64,
    /// Probe slots taken, in half-open.
    pub probes_taken: u32,
    /// Calls whose outcome was a success or a failure (probes included).
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Calls that were slow.
    pub slow_calls: u64,
    /// Calls whose outcome was ignored (cancelled, or classified so).
    pub ignored: u64,
    /// Calls refused because the breaker was open, forced open, or half-open
    /// without a free probe slot (fail-fast mode).
    pub rejected: u64,
    /// Times the breaker opened.
    pub trips: u64,
    /// State transitions.
    pub transitions: u64,
}

/// Reads and steers a breaker: its state, its counters, its transitions.
/// Every clone of the breaker shares what the handle sees and changes.
///
/// ```
/// use tower::service_fn;
/// use tower_fleet::breaker::{BreakerState, CircuitBreaker};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
/// let svc = service_fn(|req: u32| async move { Ok::<_, std::io::Error>(req) });
/// let breaker = CircuitBreaker::builder().build(svc)?;
/// let handle = breaker.handle();
/// let mut changes = handle.subscribe();
/// handle.force_open();
/// assert_eq!(handle.state(), BreakerState::ForcedOpen);
/// assert_eq!(changes.borrow_and_update().to, BreakerState::ForcedOpen);
/// handle.reset();
/// assert_eq!(handle.snapshot().state, BreakerState::Closed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BreakerHandle {
    pub(crate) core: Arc<Core>,
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("state", &self.core.word().state())
            .finish()
    }
}

impl BreakerHandle {
    /// The state now. An open breaker whose open duration has passed moves
    /// to half-open here, as it would on the next call.
    pub fn state(&self) -> BreakerState {
        self.core.current().state()
    }

    /// The counters and state: a few atomic loads, no lock.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.core.snapshot()
    }

    /// The latest transition now, and each later one as it happens.
    /// A slow subscriber sees the latest transition, not every one; the
    /// `tracing` events (target `tower_fleet::breaker`) log each.
    pub fn subscribe(&self) -> watch::Receiver<StateChange> {
        self.core.subscribe()
    }

    /// The health signal the breaker publishes: unavailable while open
    /// (until the open duration ends) and while forced open.
    pub fn health_signal(&self) -> HealthSignal {
        self.core.health_signal()
    }

    /// Refuses every call until another state is set.
    pub fn force_open(&self) {
        self.core
            .transition(None, BreakerState::ForcedOpen, TransitionCause::Handle);
    }

    /// Opens the breaker as a trip would, for the (possibly grown) open duration.
    pub fn open(&self) {
        self.core
            .transition(None, BreakerState::Open, TransitionCause::Handle);
    }

    /// Moves to half-open now: the next calls are probes.
    pub fn half_open(&self) {
        self.core
            .transition(None, BreakerState::HalfOpen, TransitionCause::Handle);
    }

    /// Closes the breaker with an empty window.
    pub fn close(&self) {
        self.core
            .transition(None, BreakerState::Closed, TransitionCause::Handle);
    }

    /// Passes every call and records nothing, until another state is set.
    pub fn disable(&self) {
        self.core
            .transition(None, BreakerState::Disabled, TransitionCause::Handle);
    }

    /// Records every call and emits events but never trips, until another
    /// state is set.
    pub fn metrics_only(&self) {
        self.core
            .transition(None, BreakerState::MetricsOnly, TransitionCause::Handle);
    }

    /// Back to closed as if new: an empty window, no failures in a row, and
    /// the open-duration growth starts again from `open_duration`. The
    /// since-built counters of the snapshot keep counting.
    pub fn reset(&self) {
        self.core
            .transition(None, BreakerState::Closed, TransitionCause::Reset);
    }
}
