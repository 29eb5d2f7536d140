//! The breaker's shared core: the state word, the window, the trip rules and
//! the transitions. Every clone of a breaker (and its handle) holds one
//! `Arc<Core>`.
//!
//! The closed-state path is atomics only: `decide` loads the state word;
//! `finish` records into the window (usually one `fetch_add`, see
//! `window.rs`) and compares the window's totals with the thresholds.
//! Transitions, and only they, take the `slow` mutex; they move the epoch on,
//! so that a call admitted earlier can be recognised when it finishes.

use std::sync::Arc;

use tokio::sync::{watch, Notify};

use super::config::{BreakerConfig, InitialState, WindowConfig};
use super::handle::{StateChange, TransitionCause};
use super::permit::{Admit, Blocked, Decision, Track};
use super::settings::{Settings, SlowPath};
use super::state::{BreakerState, Word, TAKEN_ONE};
use super::sync::{AtomicU64, Mutex, Ordering::*};
use super::window::{Counts, Tally, Window, CALL, FAIL, SLOW};
use crate::classify::Outcome;
use crate::clock::{Clock, Ticks};
use crate::signal::HealthPublisher;

/// Keeps the state word on a cache line of its own: it is read on every
/// call and written only on transitions and probe accounting.
#[repr(align(64))]
pub(super) struct Padded(pub(super) AtomicU64);

/// A relaxed event counter.
pub(super) struct Counter(AtomicU64);

impl Counter {
    pub(super) fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    #[inline]
    pub(super) fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    pub(super) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The shared state of a breaker. `repr(C)`: the tally comes first, on the
/// cache line of the `Arc`'s reference counts that every call touches anyway.
#[repr(C)]
pub(crate) struct Core {
    pub(super) tally: Tally,
    pub(super) state: Padded,
    pub(super) window: Window,
    pub(super) consecutive: AtomicU64,
    pub(super) open_until: AtomicU64,
    pub(super) half_open_until: AtomicU64,
    pub(super) since: AtomicU64,
    pub(super) failures: Counter,
    pub(super) slow_calls: Counter,
    pub(super) ignored: Counter,
    pub(super) rejected: Counter,
    pub(super) probes: Counter,
    pub(super) trips: Counter,
    pub(super) transitions: Counter,
    pub(crate) settings: Settings,
    pub(crate) clock: Clock,
    pub(super) slow: Mutex<SlowPath>,
    pub(super) health: HealthPublisher,
    pub(crate) notify: Arc<Notify>,
    pub(super) events: watch::Sender<StateChange>,
}

impl Core {
    pub(crate) fn new(config: &BreakerConfig, clock: Clock, seed: Option<u64>) -> Core {
        let window = match config.window {
            WindowConfig::Count { size } => Window::count(size),
            WindowConfig::Time { duration, buckets } => {
                let width = duration.as_nanos() / u128::from(buckets.max(1));
                Window::time(u64::try_from(width).unwrap_or(u64::MAX), buckets)
            }
        };
        let state = match config.initial_state {
            InitialState::Closed => BreakerState::Closed,
            InitialState::ForcedOpen => BreakerState::ForcedOpen,
            InitialState::Disabled => BreakerState::Disabled,
            InitialState::MetricsOnly => BreakerState::MetricsOnly,
        };
        let now = clock.ticks();
        let (health, _) = crate::signal::health();
        if state == BreakerState::ForcedOpen {
            health.set_unavailable();
        }
        let seed = seed.unwrap_or_else(|| {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(now.0)
        });
        let (events, _) = watch::channel(StateChange::created(state, now.to_instant()));
        Core {
            tally: Tally::new(),
            state: Padded(AtomicU64::new(Word::new(state, 0).0)),
            window,
            consecutive: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            half_open_until: AtomicU64::new(0),
            since: AtomicU64::new(now.0),
            failures: Counter::new(),
            slow_calls: Counter::new(),
            ignored: Counter::new(),
            rejected: Counter::new(),
            probes: Counter::new(),
            trips: Counter::new(),
            transitions: Counter::new(),
            settings: Settings::new(config),
            clock,
            slow: Mutex::new(SlowPath {
                consecutive_trips: 0,
                rng: seed,
            }),
            health,
            notify: Arc::new(Notify::new()),
            events,
        }
    }

    #[inline]
    pub(crate) fn word(&self) -> Word {
        Word(self.state.0.load(Acquire))
    }

    /// Admit, reserve a probe slot, or refuse. Never blocks. Leaves open for
    /// half-open when the open duration has passed, and half-open for open
    /// when its probes have not finished within `max_half_open_duration`.
    #[inline]
    pub(crate) fn decide(&self) -> Decision {
        let w = self.word();
        let track = match w.state() {
            BreakerState::Closed => Track::Trip,
            BreakerState::MetricsOnly => Track::Record,
            BreakerState::Disabled => Track::Nothing,
            _ => return self.decide_slow(w),
        };
        Decision::Admit(Admit {
            epoch: w.epoch(),
            track,
        })
    }

    #[cold]
    fn decide_slow(&self, mut w: Word) -> Decision {
        loop {
            match w.state() {
                BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                    return self.decide()
                }
                BreakerState::ForcedOpen => {
                    return Decision::Blocked(Blocked {
                        state: BreakerState::ForcedOpen,
                        retry_at: None,
                        wake_at: None,
                    })
                }
                BreakerState::Open => {
                    let until = Ticks(self.open_until.load(Acquire));
                    if self.clock.ticks() < until {
                        return Decision::Blocked(Blocked {
                            state: BreakerState::Open,
                            retry_at: Some(until),
                            wake_at: Some(until),
                        });
                    }
                    self.transition(
                        Some(w),
                        BreakerState::HalfOpen,
                        TransitionCause::OpenDurationElapsed,
                    );
                }
                BreakerState::HalfOpen => {
                    if w.taken() < self.settings.half_open_calls {
                        match self
                            .state
                            .0
                            .compare_exchange(w.0, w.0 + TAKEN_ONE, AcqRel, Acquire)
                        {
                            Ok(_) => {
                                return Decision::Admit(Admit {
                                    epoch: w.epoch(),
                                    track: Track::Probe,
                                })
                            }
                            Err(actual) => {
                                w = Word(actual);
                                continue;
                            }
                        }
                    }
                    let limit = Ticks(self.half_open_until.load(Acquire));
                    if self.clock.ticks() < limit {
                        return Decision::Blocked(Blocked {
                            state: BreakerState::HalfOpen,
                            retry_at: None,
                            wake_at: Some(limit),
                        });
                    }
                    self.transition(
                        Some(w),
                        BreakerState::Open,
                        TransitionCause::HalfOpenTimedOut,
                    );
                }
            }
            w = self.word();
        }
    }

    /// Counts a call refused by an open breaker.
    pub(crate) fn count_rejected(&self) {
        self.rejected.inc();
    }

    /// Frees the probe slot taken in `epoch`, if that epoch is still current,
    /// and wakes not-ready waiters so one of them can take it.
    pub(crate) fn release_probe(&self, epoch: u32) {
        let mut w = self.word();
        while w.epoch() == epoch && w.state() == BreakerState::HalfOpen && w.taken() > w.done() {
            match self
                .state
                .0
                .compare_exchange(w.0, w.0 - TAKEN_ONE, AcqRel, Acquire)
            {
                Ok(_) => {
                    self.notify.notify_waiters();
                    return;
                }
                Err(actual) => w = Word(actual),
            }
        }
    }

    /// Whether a call that took `nanos` is slow.
    #[inline]
    pub(crate) fn is_slow(&self, nanos: u64) -> bool {
        matches!(self.settings.slow_nanos, Some(limit) if nanos > limit)
    }

    /// Records the outcome of a call admitted as `admit`. `now` is the
    /// time the call finished, when it was read (for the time window).
    #[inline]
    pub(crate) fn finish(&self, admit: Admit, outcome: Outcome, slow: bool, now: Option<Ticks>) {
        match admit.track {
            Track::Nothing => {}
            Track::Probe => self.finish_probe(admit.epoch, outcome, slow),
            Track::Trip | Track::Record => self.record(admit, outcome, slow, now),
        }
    }

    /// Records a closed-state (or metrics-only) outcome and trips the
    /// breaker when the window, changed by it, meets a trip condition. A
    /// count window in which a success replaces a success does not change,
    /// so nothing is evaluated: the common case costs one `fetch_add`.
    #[inline]
    fn record(&self, admit: Admit, outcome: Outcome, slow: bool, now: Option<Ticks>) {
        let failed = match outcome {
            Outcome::Success => false,
            Outcome::Failure => true,
            Outcome::Ignore => {
                self.ignored.inc();
                return;
            }
        };
        if failed || slow {
            self.count_bad(failed, slow);
        }
        let bits = CALL | if failed { FAIL } else { 0 } | if slow { SLOW } else { 0 };
        let read_slow = self.settings.slow_nanos.is_some();
        let counts = match &self.window {
            Window::Count(w) => w.record(&self.tally, bits, read_slow),
            Window::Time(w) => {
                let now = now.unwrap_or_else(|| self.clock.ticks()).0;
                Some(w.record(bits, now, read_slow))
            }
        };
        let mut cause = None;
        if let Some(limit) = self.settings.consecutive {
            cause = self.count_in_a_row(failed, limit);
        }
        if admit.track != Track::Trip {
            return;
        }
        if let Some(c) = counts {
            cause = cause.or_else(|| self.judge(c));
        }
        if let Some(cause) = cause {
            self.trip(admit.epoch, cause);
        }
    }

    #[cold]
    fn count_bad(&self, failed: bool, slow: bool) {
        if failed {
            self.failures.inc();
        }
        if slow {
            self.slow_calls.inc();
        }
    }

    /// Counts failures in a row; `Some` when `limit` is reached.
    #[inline]
    fn count_in_a_row(&self, failed: bool, limit: u64) -> Option<TransitionCause> {
        if failed {
            if self.consecutive.fetch_add(1, Relaxed) + 1 >= limit {
                return Some(TransitionCause::ConsecutiveFailures);
            }
        } else if self.consecutive.load(Relaxed) != 0 {
            self.consecutive.store(0, Relaxed);
        }
        None
    }

    /// The trip condition the window's counts meet, if any.
    #[inline]
    fn judge(&self, c: Counts) -> Option<TransitionCause> {
        let s = &self.settings;
        if c.calls < s.min_calls {
            return None;
        }
        if s.fails(c.failures, c.calls) {
            Some(TransitionCause::FailureRate)
        } else if s.too_slow(c.slow, c.calls) {
            Some(TransitionCause::SlowCallRate)
        } else {
            None
        }
    }

    /// Opens the breaker if it is still closed in `epoch`: an outcome of a
    /// call admitted in an earlier epoch never causes a transition.
    #[cold]
    fn trip(&self, epoch: u32, cause: TransitionCause) {
        let w = self.word();
        if w.epoch() == epoch && w.state() == BreakerState::Closed {
            self.transition(Some(w), BreakerState::Open, cause);
        }
    }

    #[cold]
    fn finish_probe(&self, epoch: u32, outcome: Outcome, slow: bool) {
        let failed = outcome == Outcome::Failure;
        if outcome == Outcome::Ignore {
            self.ignored.inc();
        } else {
            self.probes.inc();
            if failed {
                self.failures.inc();
            }
            if slow {
                self.slow_calls.inc();
            }
        }
        let mut w = self.word();
        let next = loop {
            if w.epoch() != epoch || w.state() != BreakerState::HalfOpen || w.taken() <= w.done() {
                // The slot this probe took belongs to an epoch that has ended.
                return;
            }
            let next = match outcome {
                Outcome::Ignore => Word(w.0 - TAKEN_ONE),
                _ => w.with_probe_done(failed, slow),
            };
            match self.state.0.compare_exchange(w.0, next.0, AcqRel, Acquire) {
                Ok(_) => break next,
                Err(actual) => w = Word(actual),
            }
        };
        if outcome == Outcome::Ignore {
            // The slot is free again: let a waiter take it.
            self.notify.notify_waiters();
            return;
        }
        let done = u64::from(next.done());
        if next.done() < self.settings.half_open_calls {
            return;
        }
        let s = &self.settings;
        let (to, cause) = if s.fails(u64::from(next.failed()), done) {
            (BreakerState::Open, TransitionCause::ProbesFailed)
        } else if s.too_slow(u64::from(next.slow()), done) {
            (BreakerState::Open, TransitionCause::ProbesSlow)
        } else {
            (BreakerState::Closed, TransitionCause::ProbesSucceeded)
        };
        self.transition(Some(next), to, cause);
    }
}
