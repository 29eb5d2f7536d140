//! What a decision of the core hands to the service: an admission (with the
//! epoch it belongs to), a refusal, or a reserved probe slot.

use std::sync::Arc;

use super::core::Core;
use super::state::BreakerState;
use crate::clock::Ticks;

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
