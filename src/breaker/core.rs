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
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::config::{BreakerConfig, InitialState, OpenMode, WindowConfig};
use super::handle::{BreakerSnapshot, StateChange, TransitionCause};
use super::state::{BreakerState, Word, TAKEN_ONE};
use super::sync::{lock, AtomicU64, Mutex, Ordering::*};
use super::window::{Counts, Tally, Window, CALL, FAIL, SLOW};
use crate::classify::Outcome;
use crate::clock::{Clock, Ticks};
use crate::signal::{HealthPublisher, HealthSignal};

/// Keeps the state word on a cache line of its own: it is read on every
/// call and written only on transitions and probe accounting.
#[repr(align(64))]
struct Padded(AtomicU64);

/// A relaxed event counter.
struct Counter(AtomicU64);

impl Counter {
    fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    #[inline]
    fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The configuration, turned into what the hot path compares with.
pub(crate) struct Settings {
    /// Thresholds in hundredths of a percent.
    failure_bp: u64,
    slow_bp: u64,
    min_calls: u64,
    pub(crate) slow_nanos: Option<u64>,
    consecutive: Option<u64>,
    open_duration: Duration,
    multiplier: f64,
    max_open: Duration,
    jitter: f64,
    pub(crate) half_open_calls: u32,
    max_half_open: Duration,
    pub(crate) mode: OpenMode,
}

fn basis_points(percent: f64) -> u64 {
    ((percent * 100.0).round() as u64).clamp(1, 10_000)
}

impl Settings {
    fn new(c: &BreakerConfig) -> Settings {
        let min_calls = match c.window {
            WindowConfig::Count { size } => c.minimum_calls.min(size),
            WindowConfig::Time { .. } => c.minimum_calls,
        };
        Settings {
            failure_bp: basis_points(c.failure_rate_threshold),
            slow_bp: basis_points(c.slow_call_rate_threshold),
            min_calls: u64::from(min_calls.max(1)),
            slow_nanos: c
                .slow_call_duration
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            consecutive: c.consecutive_failures.map(u64::from),
            open_duration: c.open_duration,
            multiplier: c.open_duration_multiplier,
            max_open: c.max_open_duration.max(c.open_duration),
            jitter: c.open_jitter.clamp(0.0, 1.0),
            half_open_calls: c
                .half_open_calls
                .clamp(1, super::state::MAX_HALF_OPEN_CALLS),
            max_half_open: c.max_half_open_duration,
            mode: c.open_mode,
        }
    }

    /// Whether `failed` of `calls` reaches the failure-rate threshold.
    #[inline]
    fn fails(&self, failed: u64, calls: u64) -> bool {
        failed * 10_000 >= self.failure_bp * calls
    }

    #[inline]
    fn too_slow(&self, slow: u64, calls: u64) -> bool {
        self.slow_nanos.is_some() && slow * 10_000 >= self.slow_bp * calls
    }
}

/// What only transitions touch, under the mutex.
struct SlowPath {
    /// Trips since the breaker last closed: the exponent of the open growth.
    consecutive_trips: u32,
    rng: u64,
}

impl SlowPath {
    /// splitmix64: a jitter source needs no more.
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The open duration of the next trip: grown by the multiplier for each
    /// trip since the breaker last closed, capped, then shortened by jitter.
    fn open_duration(&mut self, s: &Settings) -> Duration {
        let base = s.open_duration.as_secs_f64();
        let factor = s.multiplier.powi(self.consecutive_trips.min(1_000) as i32);
        let grown = base * factor;
        let capped = if grown.is_finite() && grown < s.max_open.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            s.max_open
        };
        self.consecutive_trips = self.consecutive_trips.saturating_add(1);
        if s.jitter > 0.0 {
            let cut = s.jitter * self.next_unit();
            Duration::from_secs_f64(capped.as_secs_f64() * (1.0 - cut))
        } else {
            capped
        }
    }
}

/// How a call admitted by [`Core::decide`] is accounted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Track {
    /// Closed: recorded, and may trip the breaker.
    Trip,
    /// Metrics-only: recorded, never trips.
    Record,
    /// Disabled: not recorded.
    Nothing,
    /// A half-open probe holding a slot.
    Probe,
}

/// An admitted call: the epoch it was admitted in and how it counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Admit {
    pub(crate) epoch: u32,
    pub(crate) track: Track,
}

/// A refusal: the state and when trying again makes sense.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocked {
    pub(crate) state: BreakerState,
    /// When the breaker expects to admit calls again (open: its end).
    pub(crate) retry_at: Option<Ticks>,
    /// When a waiter should look again (open: its end; half-open: its limit).
    pub(crate) wake_at: Option<Ticks>,
}

pub(crate) enum Decision {
    Admit(Admit),
    Blocked(Blocked),
}

/// The shared state of a breaker. `repr(C)`: the tally comes first, on the
/// cache line of the `Arc`'s reference counts that every call touches anyway.
#[repr(C)]
pub(crate) struct Core {
    tally: Tally,
    state: Padded,
    window: Window,
    consecutive: AtomicU64,
    open_until: AtomicU64,
    half_open_until: AtomicU64,
    since: AtomicU64,
    failures: Counter,
    slow_calls: Counter,
    ignored: Counter,
    rejected: Counter,
    probes: Counter,
    trips: Counter,
    transitions: Counter,
    pub(crate) settings: Settings,
    pub(crate) clock: Clock,
    slow: Mutex<SlowPath>,
    health: HealthPublisher,
    pub(crate) notify: Arc<Notify>,
    events: watch::Sender<StateChange>,
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
            tracing::warn!(from = %w.state(), to = %to, %cause, epoch = next.epoch(), "circuit breaker opened");
        } else {
            tracing::info!(from = %w.state(), to = %to, %cause, epoch = next.epoch(), "circuit breaker changed state");
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

/// A probe slot reserved by `poll_ready` in half-open. Dropping it unused
/// frees the slot, if its epoch is still current.
pub(crate) struct Reservation {
    core: Option<Arc<Core>>,
    pub(crate) epoch: u32,
}

impl Reservation {
    pub(crate) fn new(core: Arc<Core>, epoch: u32) -> Reservation {
        Reservation {
            core: Some(core),
            epoch,
        }
    }

    /// Hands the slot to a call, which fills or frees it when it finishes.
    pub(crate) fn into_admit(mut self) -> Admit {
        self.core = None;
        Admit {
            epoch: self.epoch,
            track: Track::Probe,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.release_probe(self.epoch);
        }
    }
}
