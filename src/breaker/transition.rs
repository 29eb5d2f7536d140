//! Transitions of the breaker (the only path that takes a lock), and the
//! reads that look at the time: the current state and the snapshot.

use std::time::Duration;

use tokio::sync::watch;

use super::core::Core;
use super::handle::{BreakerSnapshot, StateChange, TransitionCause};
use super::state::{BreakerState, Word};
use super::sync::{lock, Ordering::*};
use crate::clock::Ticks;
use crate::signal::HealthSignal;

impl Core {
    /// Moves to `to` and starts a new epoch, if the state is still `expect`'s
    /// (same state, same epoch); `None` moves unconditionally (the handle).
    /// Returns whether it moved.
    pub(crate) fn transition(
        &self,
        expect: Option<Word>,
        to: BreakerState,
        cause: TransitionCause,
    ) -> bool {
        let mut slow = lock(&self.slow);
        let w = self.word();
        if let Some(e) = expect {
            if w.epoch() != e.epoch() || w.state() != e.state() {
                return false;
            }
        }
        let now = self.clock.ticks();
        let mut open_until = None;
        match to {
            BreakerState::Open => {
                let until = now.plus(slow.open_duration(&self.settings));
                self.open_until.store(until.0, Release);
                self.health.set_unavailable_until(until.to_instant());
                self.trips.inc();
                open_until = Some(until.to_instant());
            }
            BreakerState::HalfOpen => {
                self.half_open_until
                    .store(now.plus(self.settings.max_half_open).0, Release);
                self.health.set_available();
            }
            BreakerState::Closed | BreakerState::MetricsOnly => {
                self.window.reset(&self.tally);
                self.consecutive.store(0, Relaxed);
                if to == BreakerState::Closed {
                    slow.consecutive_trips = 0;
                }
                self.health.set_available();
            }
            BreakerState::Disabled => self.health.set_available(),
            BreakerState::ForcedOpen => self.health.set_unavailable(),
        }
        if cause == TransitionCause::Reset {
            slow.consecutive_trips = 0;
        }
        self.since.store(now.0, Relaxed);
        let next = Word::new(to, w.next_epoch());
        // A swap, not a store: probes may be moving the old word's counters;
        // their compare-exchanges now fail and find the epoch gone.
        self.state.0.swap(next.0, AcqRel);
        self.transitions.inc();
        let change = StateChange {
            from: w.state(),
            to,
            epoch: next.epoch(),
            cause,
            at: now.to_instant(),
            open_until,
        };
        // Sent under the lock, so subscribers see transitions in order.
        self.events.send_replace(change);
        drop(slow);
        self.notify.notify_waiters();
        if to.is_open() {
            tracing::warn!(target: "tower_fleet::breaker", from = %w.state(), to = %to, %cause, epoch = next.epoch(), "circuit breaker opened");
        } else {
            tracing::info!(target: "tower_fleet::breaker", from = %w.state(), to = %to, %cause, epoch = next.epoch(), "circuit breaker changed state");
        }
        true
    }

    /// Looks at the time: leaves open for half-open when due (so that the
    /// state a reader sees is not stale), then returns the state word.
    pub(crate) fn current(&self) -> Word {
        let w = self.word();
        if w.state() == BreakerState::Open && self.clock.ticks().0 >= self.open_until.load(Acquire)
        {
            self.transition(
                Some(w),
                BreakerState::HalfOpen,
                TransitionCause::OpenDurationElapsed,
            );
            return self.word();
        }
        w
    }

    /// How long until an open breaker may admit calls again.
    pub(crate) fn retry_after(&self, at: Option<Ticks>) -> Option<Duration> {
        at.map(|t| t.since(self.clock.ticks()))
    }

    pub(crate) fn health_signal(&self) -> HealthSignal {
        self.health.signal()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<StateChange> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> BreakerSnapshot {
        let w = self.current();
        let now = self.clock.ticks();
        let c = self.window.counts(&self.tally, now.0);
        let rate = |n: u64| (c.calls > 0).then(|| n as f64 * 100.0 / c.calls as f64);
        let calls = self
            .window
            .lifetime_calls(&self.tally)
            .wrapping_add(self.probes.get());
        BreakerSnapshot {
            state: w.state(),
            epoch: w.epoch(),
            time_in_state: now.since(Ticks(self.since.load(Relaxed))),
            open_until: (w.state() == BreakerState::Open)
                .then(|| Ticks(self.open_until.load(Acquire)).to_instant()),
            window_calls: c.calls,
            window_failures: c.failures,
            window_slow_calls: c.slow,
            failure_rate: rate(c.failures),
            slow_call_rate: rate(c.slow),
            consecutive_failures: self.consecutive.load(Relaxed),
            probes_taken: if w.state() == BreakerState::HalfOpen {
                w.taken()
            } else {
                0
            },
            calls,
            failures: self.failures.get(),
            slow_calls: self.slow_calls.get(),
            ignored: self.ignored.get(),
            rejected: self.rejected.get(),
            trips: self.trips.get(),
            transitions: self.transitions.get(),
        }
    }
}
