//! Slow start: a replica that joins, or returns from ejection or a failed
//! health check, takes a growing share of traffic over a window.
//!
//! The ramp thins the replica out of the draw: while ramping, a replica
//! drawn as a candidate is kept with probability `factor`, so its share grows
//! with the factor under every strategy. The clock is read only for replicas
//! that are ramping.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::config::SlowStartConfig;
use super::replica::ReplicaState;
use crate::clock::Ticks;

/// The ramp's settings, from [`SlowStartConfig`].
#[derive(Clone, Debug)]
pub(crate) struct SlowStart {
    window: Duration,
    exponent: f64,
    floor: f64,
}

impl SlowStart {
    pub(crate) fn from_config(c: &SlowStartConfig) -> Option<SlowStart> {
        c.window.map(|window| SlowStart {
            window,
            exponent: 1.0 / c.aggression,
            floor: f64::from(c.min_weight_percent) / 100.0,
        })
    }

    /// The share factor `since` into the ramp: from the floor up to 1.
    pub(crate) fn factor(&self, since: Duration) -> f64 {
        if since >= self.window {
            return 1.0;
        }
        let t = since.as_secs_f64() / self.window.as_secs_f64();
        t.powf(self.exponent).max(self.floor)
    }

    /// The factor of `state` at `now`; ends its ramp when complete.
    pub(crate) fn factor_of(&self, state: &ReplicaState, now: Ticks) -> f64 {
        let from = state.ramp_from.load(Ordering::Relaxed);
        if from == 0 {
            return 1.0;
        }
        let f = self.factor(now.since(Ticks(from)));
        if f >= 1.0 {
            let _ = state
                .ramp_from
                .compare_exchange(from, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        f
    }
}

/// Starts `state`'s ramp at `from` (when slow start is on).
pub(crate) fn start(slow: Option<&SlowStart>, state: &ReplicaState, from: Ticks) {
    if slow.is_some() {
        state.ramp_from.store(from.0.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_ramps_from_the_floor_to_one() {
        let cfg = SlowStartConfig {
            window: Some(Duration::from_secs(10)),
            aggression: 1.0,
            min_weight_percent: 10,
        };
        let s = SlowStart::from_config(&cfg).unwrap();
        assert_eq!(s.factor(Duration::ZERO), 0.1);
        assert!((s.factor(Duration::from_secs(5)) - 0.5).abs() < 1e-9);
        assert_eq!(s.factor(Duration::from_secs(10)), 1.0);
        let steep = SlowStart::from_config(&SlowStartConfig {
            aggression: 2.0,
            ..cfg
        })
        .unwrap();
        assert!(steep.factor(Duration::from_secs(5)) > 0.7);
    }
}
