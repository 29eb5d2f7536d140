//! The crate's injectable clock.
//!
//! Every layer that needs the time reads it through a [`Clock`], for two
//! reasons. Tests must control time: the default clock is tokio's, so a test on
//! a paused runtime (`tokio::time::pause()`, `#[tokio::test(start_paused = true)]`)
//! drives every timer and every timestamp of the crate deterministically. And
//! reading the clock is not free (a pair of `Instant::now()` calls costs tens to
//! hundreds of nanoseconds on virtual machines), so hot paths can be given a
//! [`Clock::coarse`] clock, which a background task ticks and which costs one
//! atomic load to read.
//!
//! ```
//! use std::time::Duration;
//! use tower_fleet::clock::Clock;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let clock = Clock::default(); // tokio's time: paused here, so it only moves when told
//! let t0 = clock.now();
//! tokio::time::advance(Duration::from_secs(5)).await;
//! assert_eq!(clock.now() - t0, Duration::from_secs(5));
//! # }
//! ```
//!
//! Layers that keep times in atomics store them as [`Ticks`]: nanoseconds on a
//! process-wide scale that every clock shares, so a time written by one layer
//! (a breaker's "open until") can be read by another (a balancer) even when the
//! two were given different clocks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::NoRuntime;

/// A point in time as a `u64`, for atomics: nanoseconds on a process-wide scale.
///
/// The scale is biased so that instants somewhat before the process first read
/// the clock (a paused tokio clock may report those) still order correctly.
/// `Ticks` from different [`Clock`]s compare correctly, since they share the scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticks(pub u64);

/// 2^62 ns, about 146 years, on either side of the process epoch.
const BIAS: u64 = 1 << 62;

fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl Ticks {
    /// The ticks of an instant.
    pub fn from_instant(at: Instant) -> Ticks {
        let at = at.into_std();
        let e = epoch();
        let nanos = |d: Duration| {
            u64::try_from(d.as_nanos())
                .unwrap_or(u64::MAX)
                .min(BIAS - 1)
        };
        if at >= e {
            Ticks(BIAS + nanos(at - e))
        } else {
            Ticks(BIAS - nanos(e - at))
        }
    }

    /// The instant these ticks stand for.
    pub fn to_instant(self) -> Instant {
        let e = Instant::from_std(epoch());
        if self.0 >= BIAS {
            e + Duration::from_nanos(self.0 - BIAS)
        } else {
            e.checked_sub(Duration::from_nanos(BIAS - self.0))
                .unwrap_or(e)
        }
    }

    /// These ticks moved forward by `d` (saturating).
    #[must_use]
    pub fn plus(self, d: Duration) -> Ticks {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Ticks(self.0.saturating_add(n))
    }

    /// The time from `earlier` to these ticks, or zero if `earlier` is later.
    pub fn since(self, earlier: Ticks) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// The source of time for the crate's layers. Cheap to clone; clones share it.
///
/// - [`Clock::tokio`] (the default) reads `tokio::time::Instant::now()`, so it
///   follows a paused test runtime.
/// - [`Clock::coarse`] reads an atomic that a background task refreshes every
///   `resolution`; it lags real time by at most one resolution plus scheduling
///   delay. Use it where a timestamp per request would cost more than the
///   precision is worth (sliding windows, budgets).
/// - [`Clock::manual`] only moves when told: for tests of logic that reads the
///   time on a multi-threaded runtime, where tokio's clock cannot be paused.
///   Timers (sleeps) still run on tokio's time.
#[derive(Clone, Default)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Default)]
enum Kind {
    #[default]
    Tokio,
    Coarse(Arc<Cell>),
    Manual(Arc<Cell>),
}

#[derive(Debug)]
struct Cell {
    now: AtomicU64,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Tokio => f.write_str("Clock::Tokio"),
            Kind::Coarse(_) => f.write_str("Clock::Coarse"),
            Kind::Manual(_) => f.write_str("Clock::Manual"),
        }
    }
}

impl Clock {
    /// tokio's clock (the default).
    pub fn tokio() -> Clock {
        Clock { kind: Kind::Tokio }
    }

    /// A coarse clock refreshed every `resolution` by a task on the current
    /// tokio runtime. The task stops when the last clone of the clock is dropped.
    ///
    /// Fails with [`NoRuntime`] when called outside a tokio runtime.
    pub fn coarse(resolution: Duration) -> Result<Clock, NoRuntime> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| NoRuntime::new("Clock::coarse"))?;
        let cell = Arc::new(Cell {
            now: AtomicU64::new(Ticks::from_instant(Instant::now()).0),
        });
        let weak: Weak<Cell> = Arc::downgrade(&cell);
        let resolution = resolution.max(Duration::from_micros(100));
        handle.spawn(async move {
            let mut tick = tokio::time::interval(resolution);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(cell) => cell
                        .now
                        .store(Ticks::from_instant(Instant::now()).0, Ordering::Relaxed),
                    None => break,
                }
            }
        });
        Ok(Clock {
            kind: Kind::Coarse(cell),
        })
    }

    /// A clock that stands still until its [`ManualClock`] handle moves it.
    pub fn manual() -> ManualClock {
        let cell = Arc::new(Cell {
            now: AtomicU64::new(Ticks::from_instant(Instant::now()).0),
        });
        ManualClock { cell }
    }

    /// Whether this is tokio's clock, the default: layers that can spare
    /// their hits a clock read on tokio's clock (the cache's ticked bound)
    /// keep doing so when a stack is given no other clock.
    pub(crate) fn is_tokio(&self) -> bool {
        matches!(self.kind, Kind::Tokio)
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.kind {
            Kind::Tokio => Instant::now(),
            Kind::Coarse(c) | Kind::Manual(c) => Ticks(c.now.load(Ordering::Relaxed)).to_instant(),
        }
    }

    /// The current time as [`Ticks`]. For the coarse and manual clocks this is
    /// a single atomic load.
    #[inline]
    pub fn ticks(&self) -> Ticks {
        match &self.kind {
            Kind::Tokio => Ticks::from_instant(Instant::now()),
            Kind::Coarse(c) | Kind::Manual(c) => Ticks(c.now.load(Ordering::Relaxed)),
        }
    }

    /// Whether this is the coarse clock.
    pub fn is_coarse(&self) -> bool {
        matches!(self.kind, Kind::Coarse(_))
    }
}

/// The handle that moves a [`Clock::manual`] clock.
#[derive(Clone, Debug)]
pub struct ManualClock {
    cell: Arc<Cell>,
}

impl ManualClock {
    /// A [`Clock`] that reads this manual time.
    pub fn clock(&self) -> Clock {
        Clock {
            kind: Kind::Manual(self.cell.clone()),
        }
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .cell
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(n))
            });
    }

    /// The manual time now.
    pub fn now(&self) -> Instant {
        Ticks(self.cell.now.load(Ordering::Relaxed)).to_instant()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_trip_and_order() {
        let now = Instant::now();
        let t = Ticks::from_instant(now);
        let back = t.to_instant();
        let diff = if back > now { back - now } else { now - back };
        assert!(diff < Duration::from_micros(1));
        let later = Ticks::from_instant(now + Duration::from_secs(3));
        assert_eq!(later.since(t), Duration::from_secs(3));
        assert_eq!(t.since(later), Duration::ZERO);
        assert_eq!(t.plus(Duration::from_secs(3)), later);
    }

    #[test]
    fn instants_before_the_epoch_still_order() {
        let now = Instant::now();
        let _ = Ticks::from_instant(now); // fixes the epoch no later than `now`
        if let Some(before) = now.checked_sub(Duration::from_millis(10)) {
            assert!(Ticks::from_instant(before) < Ticks::from_instant(now));
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let manual = Clock::manual();
        let clock = manual.clock();
        let t0 = clock.ticks();
        assert_eq!(clock.ticks(), t0);
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.ticks().since(t0), Duration::from_millis(1500));
        assert_eq!(manual.now(), clock.now());
    }

    #[test]
    fn coarse_clock_needs_a_runtime() {
        let err = Clock::coarse(Duration::from_millis(1)).unwrap_err();
        assert!(err.to_string().contains("Clock::coarse"));
    }

    #[tokio::test(start_paused = true)]
    async fn coarse_clock_follows_tokio_time_within_its_resolution() {
        let clock = Clock::coarse(Duration::from_millis(1)).unwrap();
        assert!(clock.is_coarse());
        let t0 = clock.ticks();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let moved = clock.ticks().since(t0);
        assert!(moved >= Duration::from_millis(49), "moved {moved:?}");
        assert!(moved <= Duration::from_millis(51), "moved {moved:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::default();
        let t0 = clock.ticks();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.ticks().since(t0), Duration::from_secs(2));
    }
}
