//! Outlier ejection (Envoy's outlier detection), judged by the crate's
//! [`Classify`](crate::classify::Classify).
//!
//! A replica is ejected after `consecutive_failures` failures in a row, or
//! when more than `failure_rate_threshold` of its calls in one `interval`
//! failed (with at least `failure_rate_min_requests` calls). The n-th
//! ejection lasts `n x base_ejection_time` (capped at `max_ejection_time`),
//! and n steps down by one for each whole `interval` the replica spends
//! healthy after its last ejection ended. At most `max_ejection_percent` of
//! the set is ejected at once, but at least one replica always may be.
//!
//! Ejection publishes the replica's ejection health signal "unavailable
//! until" its end: picks skip it without a lock, and it comes back by itself
//! when the instant passes (through slow start, when that is on). Counting
//! is atomic; only the ejection decision takes a lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::core::Shared;
use super::replica::ReplicaState;
use super::slow_start;
use crate::classify::Outcome;
use crate::clock::Ticks;

/// Field widths of the packed failure-rate window: epoch, calls, failures.
const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const EPOCH_MASK: u64 = (1 << (64 - 2 * COUNT_BITS)) - 1;

fn pack(epoch: u64, total: u64, failed: u64) -> u64 {
    ((epoch & EPOCH_MASK) << (2 * COUNT_BITS)) | (total << COUNT_BITS) | failed
}

fn unpack(w: u64) -> (u64, u64, u64) {
    (
        w >> (2 * COUNT_BITS),
        (w >> COUNT_BITS) & COUNT_MAX,
        w & COUNT_MAX,
    )
}

/// One replica's outlier-detection state.
#[derive(Default)]
pub(crate) struct OutlierState {
    consecutive: AtomicU32,
    /// The current failure-rate window, packed (see [`pack`]).
    window: AtomicU64,
    /// Ticks until which it is ejected (0: never ejected).
    pub(crate) ejected_until: AtomicU64,
    /// The ejection multiplier (how many ejections in a row, less decay).
    times: AtomicU32,
    pub(crate) ejections: AtomicU64,
}

/// Why a replica was ejected.
#[derive(Clone, Copy)]
enum Reason {
    ConsecutiveFailures(u32),
    FailureRate { failed: u64, total: u64 },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::ConsecutiveFailures(n) => write!(f, "{n} failures in a row"),
            Reason::FailureRate { failed, total } => {
                write!(f, "{failed} of {total} calls failed in one interval")
            }
        }
    }
}

/// Records one call's outcome for `state` and ejects it if it is an outlier.
pub(crate) fn record(shared: &Shared, state: &ReplicaState, outcome: Outcome) {
    let failed = match outcome {
        Outcome::Success => {
            state.successes.fetch_add(1, Ordering::Relaxed);
            false
        }
        Outcome::Failure => {
            state.failures.fetch_add(1, Ordering::Relaxed);
            true
        }
        Outcome::Ignore => return,
    };
    let Some(cfg) = &shared.settings.outlier else {
        return;
    };
    let o = &state.outlier;
    let mut reason = None;
    if cfg.consecutive_failures > 0 {
        if failed {
            let run = o
                .consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if run >= cfg.consecutive_failures {
                reason = Some(Reason::ConsecutiveFailures(run));
            }
        } else if o.consecutive.load(Ordering::Relaxed) != 0 {
            o.consecutive.store(0, Ordering::Relaxed);
        }
    }
    if cfg.failure_rate_threshold < 1.0 {
        if !failed {
            // Successes only count: no clock read on the common path. They
            // land in whichever window is open, so a window is judged a
            // little late, never early. An overflowing count carries into
            // the epoch, which only makes the window start afresh.
            if (o.window.load(Ordering::Relaxed) >> COUNT_BITS) & COUNT_MAX < COUNT_MAX {
                o.window.fetch_add(1 << COUNT_BITS, Ordering::Relaxed);
            }
        } else if let Some(r) = failure_in_window(shared, o, cfg) {
            reason = reason.or(Some(r));
        }
    }
    if let Some(reason) = reason {
        eject(shared, state, reason);
    }
}

/// Counts a failure in the current failure-rate window, first closing the
/// window if its interval has ended; the reason to eject if the window that
/// closed was over the threshold.
fn failure_in_window(
    shared: &Shared,
    o: &OutlierState,
    cfg: &super::config::OutlierConfig,
) -> Option<Reason> {
    let interval = cfg.interval.as_nanos().max(1);
    let epoch =
        (shared.clock.ticks().since(shared.start).as_nanos() / interval) as u64 & EPOCH_MASK;
    let mut closed = None;
    let _ = o
        .window
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            let (e, total, fails) = unpack(w);
            if e == epoch {
                closed = None;
                let (total, fails) = if total == COUNT_MAX {
                    (total / 2, fails / 2)
                } else {
                    (total, fails)
                };
                Some(pack(e, total + 1, fails + 1))
            } else {
                closed = Some((e, total, fails));
                Some(pack(epoch, 1, 1))
            }
        });
    // The window that just closed counts only if it was the one before this
    // (a replica idle for a while starts afresh).
    let (e, total, fails) = closed?;
    let previous = (e + 1) & EPOCH_MASK == epoch;
    let min = u64::from(cfg.failure_rate_min_requests).max(1);
    (previous && total >= min && fails as f64 > cfg.failure_rate_threshold * total as f64)
        .then_some(Reason::FailureRate {
            failed: fails,
            total,
        })
}

/// Ejects `state` unless it is already ejected or the set's ejection budget
/// is spent.
fn eject(shared: &Shared, state: &ReplicaState, reason: Reason) {
    let Some(cfg) = &shared.settings.outlier else {
        return;
    };
    let _judge = shared.judge();
    let now = shared.clock.ticks();
    let o = &state.outlier;
    if o.ejected_until.load(Ordering::Relaxed) > now.0 || state.removed.load(Ordering::Relaxed) {
        return;
    }
    o.consecutive.store(0, Ordering::Relaxed);
    let roster = shared.roster.load();
    let ejected = roster
        .iter()
        .filter(|s| s.outlier.ejected_until.load(Ordering::Relaxed) > now.0)
        .count();
    let allowed = (roster.len() * cfg.max_ejection_percent as usize / 100).max(1);
    if ejected >= allowed {
        shared.stats.ejections_refused.inc();
        tracing::debug!(replica = %state.id, ejected, allowed, "outlier not ejected: max_ejection_percent reached");
        return;
    }
    // The multiplier steps down once per healthy interval since the last
    // ejection ended, then up once for this ejection.
    let last_end = o.ejected_until.load(Ordering::Relaxed);
    let mut times = o.times.load(Ordering::Relaxed);
    if last_end != 0 {
        let healthy = now.since(Ticks(last_end)).as_nanos() / cfg.interval.as_nanos().max(1);
        times = times.saturating_sub(u32::try_from(healthy).unwrap_or(u32::MAX));
    }
    times = times.saturating_add(1);
    let duration = cfg
        .base_ejection_time
        .saturating_mul(times)
        .min(cfg.max_ejection_time);
    let until = now.plus(duration);
    o.times.store(times, Ordering::Relaxed);
    o.ejected_until.store(until.0, Ordering::Relaxed);
    o.ejections.fetch_add(1, Ordering::Relaxed);
    state.ejection.set_unavailable_until(until.to_instant());
    slow_start::start(shared.settings.slow_start.as_ref(), state, until);
    tracing::warn!(replica = %state.id, ?duration, multiplier = times, %reason, "replica ejected");
    shared.census();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_pack_and_unpack() {
        let w = pack(5, 1000, 7);
        assert_eq!(unpack(w), (5, 1000, 7));
        assert_eq!(
            unpack(pack(EPOCH_MASK + 3, COUNT_MAX, 0)),
            (2, COUNT_MAX, 0)
        );
    }
}
