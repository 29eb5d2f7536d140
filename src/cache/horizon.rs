//! The horizon: a bound on the time, ticked in the background, that lets a
//! hit prove an entry fresh without reading the clock.
//!
//! Reading the clock costs about as much as a whole store lookup on some
//! virtual machines, and a hit needs the time only to tell that its entry has
//! not expired. A task ticks every `resolution` and writes the time it runs
//! at; between ticks, the time now is at least that tick and, while the task
//! is on time, less than that tick plus [`MARGIN_TICKS`] resolutions. A hit
//! whose entry is fresh until after that upper bound is fresh for sure; only
//! a hit within the margin of its entry's expiry (or past it) reads the
//! clock and is judged exactly. So, while the tick task runs at most two
//! resolutions late, no entry is served a nanosecond past its expiry; a
//! task that runs later than that (a starved runtime) lets an entry be
//! served fresh for at most as long as it is late beyond those two
//! resolutions. When the task stops (its runtime shut down), the horizon
//! says "unknown" and every hit reads the clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::clock::Ticks;

/// The upper bound is the last tick plus this many resolutions.
pub(crate) const MARGIN_TICKS: u32 = 3;

/// Written when the tick task stops: no bound is known.
const STOPPED: u64 = u64::MAX;

/// The ticked time, shared by a cache's clones. The tick task stops when the
/// last clone is dropped.
pub(crate) struct Horizon {
    /// The time of the last tick, or [`STOPPED`].
    last: Arc<AtomicU64>,
    /// [`MARGIN_TICKS`] resolutions, in nanoseconds.
    margin: u64,
}

/// Bounds on the time now: the last tick (a lower bound) and the last tick
/// plus the margin (an upper bound while the tick task is on time).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) lower: Ticks,
    pub(crate) upper: Ticks,
}

/// Marks the horizon stopped when the tick task ends, however it ends.
struct StopGuard(Weak<AtomicU64>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if let Some(last) = self.0.upgrade() {
            last.store(STOPPED, Ordering::Relaxed);
        }
    }
}

impl Horizon {
    /// A horizon ticked every `resolution` by a task on the current tokio
    /// runtime. `None` outside a runtime, and when tokio's time is paused
    /// (tests that move time with `advance` must see every hit judged by
    /// the clock, not by a tick that has not run yet).
    pub(crate) fn start(resolution: Duration) -> Option<Horizon> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        if time_is_paused() {
            return None;
        }
        let resolution = resolution.max(Duration::from_millis(1));
        let last = Arc::new(AtomicU64::new(Ticks::from_instant(Instant::now()).0));
        // Made out here, so that it marks the horizon stopped even when the
        // task is dropped before its first poll (its runtime shut down).
        let stop = StopGuard(Arc::downgrade(&last));
        rt.spawn(async move {
            let stop = stop;
            let mut tick = tokio::time::interval(resolution);
            tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                match stop.0.upgrade() {
                    Some(last) => {
                        last.store(Ticks::from_instant(Instant::now()).0, Ordering::Relaxed)
                    }
                    None => break,
                }
            }
        });
        let margin = resolution.saturating_mul(MARGIN_TICKS);
        Some(Horizon {
            last,
            margin: u64::try_from(margin.as_nanos()).unwrap_or(u64::MAX),
        })
    }

    /// A horizon that stands at `last` until [`set`](Self::set) moves it, as
    /// a tick task of this `resolution` would leave it (for tests).
    #[cfg(test)]
    pub(crate) fn fixed(last: Ticks, resolution: Duration) -> Horizon {
        let margin = resolution.saturating_mul(MARGIN_TICKS);
        Horizon {
            last: Arc::new(AtomicU64::new(last.0)),
            margin: u64::try_from(margin.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Moves a [`fixed`](Self::fixed) horizon, as a tick would.
    #[cfg(test)]
    pub(crate) fn set(&self, last: Ticks) {
        self.last.store(last.0, Ordering::Relaxed);
    }

    /// Bounds on the time now (one atomic load). When the tick task has
    /// stopped, the upper bound is the end of time: nothing is proven fresh.
    #[inline]
    pub(crate) fn bounds(&self) -> Bounds {
        let last = self.last.load(Ordering::Relaxed);
        Bounds {
            lower: Ticks(last),
            upper: Ticks(last.saturating_add(self.margin)),
        }
    }
}

/// Whether tokio's time stands still (paused, in a test): it does not move
/// across a few dozen reads, which real time always does.
fn time_is_paused() -> bool {
    let first = Instant::now();
    (0..64).all(|_| Instant::now() == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_horizon_outside_a_runtime() {
        assert!(Horizon::start(Duration::from_millis(10)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn no_horizon_while_time_is_paused() {
        assert!(Horizon::start(Duration::from_millis(10)).is_none());
    }

    #[test]
    fn the_bounds_hold_while_ticking_and_open_up_when_the_task_stops() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let horizon = rt.block_on(async {
            let horizon = Horizon::start(Duration::from_millis(1)).expect("time runs");
            tokio::task::yield_now().await; // the task ticks once
            let now = Ticks::from_instant(Instant::now());
            let b = horizon.bounds();
            assert!(b.lower <= now);
            assert_eq!(b.upper.0 - b.lower.0, 3_000_000);
            horizon
        });
        drop(rt);
        // The runtime is gone, and its tick task with it.
        let b = horizon.bounds();
        assert_eq!(b.upper, Ticks(u64::MAX));
    }
}
