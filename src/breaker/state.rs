//! The state word: the breaker's state, its epoch and its half-open probe
//! accounting in one `AtomicU64`, so that taking a probe slot and changing
//! state can never disagree.
//!
//! ```text
//! bits  0..3   state (Closed, Open, HalfOpen, ForcedOpen, Disabled, MetricsOnly)
//! bits  3..11  probe slots taken in this half-open epoch
//! bits 11..19  probes finished (success or failure)
//! bits 19..27  probes that failed
//! bits 27..35  probes that were slow
//! bits 35..64  epoch: +1 on every transition (wraps after 2^29)
//! ```

use std::fmt;

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass and their outcomes are recorded; the breaker trips when a
    /// trip condition holds.
    Closed,
    /// Calls are refused until the open duration has passed.
    Open,
    /// A few probe calls pass; their outcomes decide between closed and open.
    HalfOpen,
    /// Calls are refused until the state is changed through the handle.
    ForcedOpen,
    /// Calls pass and nothing is recorded.
    Disabled,
    /// Calls pass, outcomes are recorded and events emitted, and the breaker
    /// never trips: for rolling a breaker out safely.
    MetricsOnly,
}

impl BreakerState {
    /// Whether calls are refused in this state (open or forced open).
    pub fn is_open(self) -> bool {
        matches!(self, BreakerState::Open | BreakerState::ForcedOpen)
    }

    pub(crate) fn code(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
            BreakerState::ForcedOpen => 3,
            BreakerState::Disabled => 4,
            BreakerState::MetricsOnly => 5,
        }
    }

    pub(crate) fn from_code(code: u64) -> BreakerState {
        match code {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            3 => BreakerState::ForcedOpen,
            4 => BreakerState::Disabled,
            _ => BreakerState::MetricsOnly,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::ForcedOpen => "forced open",
            BreakerState::Disabled => "disabled",
            BreakerState::MetricsOnly => "metrics only",
        })
    }
}

/// The most probes a half-open state admits (the width of a probe field).
pub const MAX_HALF_OPEN_CALLS: u32 = 255;

const KIND_MASK: u64 = 0b111;
const FIELD_MASK: u64 = 0xFF;
const TAKEN_SHIFT: u32 = 3;
const DONE_SHIFT: u32 = 11;
const FAILED_SHIFT: u32 = 19;
const SLOW_SHIFT: u32 = 27;
const EPOCH_SHIFT: u32 = 35;
const EPOCH_MASK: u64 = (1 << 29) - 1;

/// One probe slot taken.
pub(crate) const TAKEN_ONE: u64 = 1 << TAKEN_SHIFT;

/// A decoded state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    /// A fresh word for `state` in `epoch`, with no probe taken.
    pub(crate) fn new(state: BreakerState, epoch: u32) -> Word {
        Word(state.code() | ((u64::from(epoch) & EPOCH_MASK) << EPOCH_SHIFT))
    }

    #[inline]
    pub(crate) fn state(self) -> BreakerState {
        BreakerState::from_code(self.0 & KIND_MASK)
    }

    #[inline]
    pub(crate) fn is_closed(self) -> bool {
        self.0 & KIND_MASK == 0
    }

    #[inline]
    pub(crate) fn epoch(self) -> u32 {
        ((self.0 >> EPOCH_SHIFT) & EPOCH_MASK) as u32
    }

    /// The epoch after this one.
    pub(crate) fn next_epoch(self) -> u32 {
        ((u64::from(self.epoch()) + 1) & EPOCH_MASK) as u32
    }

    pub(crate) fn taken(self) -> u32 {
        ((self.0 >> TAKEN_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) fn done(self) -> u32 {
        ((self.0 >> DONE_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) fn failed(self) -> u32 {
        ((self.0 >> FAILED_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) fn slow(self) -> u32 {
        ((self.0 >> SLOW_SHIFT) & FIELD_MASK) as u32
    }

    /// This word with one more finished probe (which failed and/or was slow).
    /// The caller keeps `done <= taken <= 255`, so no field overflows.
    pub(crate) fn with_probe_done(self, failed: bool, slow: bool) -> Word {
        Word(
            self.0
                + (1 << DONE_SHIFT)
                + (u64::from(failed) << FAILED_SHIFT)
                + (u64::from(slow) << SLOW_SHIFT),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let mut w = Word::new(BreakerState::HalfOpen, EPOCH_MASK as u32);
        for _ in 0..255 {
            w = Word(w.0 + TAKEN_ONE);
            w = w.with_probe_done(true, true);
        }
        assert_eq!(w.state(), BreakerState::HalfOpen);
        assert_eq!(
            (w.taken(), w.done(), w.failed(), w.slow()),
            (255, 255, 255, 255)
        );
        assert_eq!(w.epoch(), EPOCH_MASK as u32);
        assert_eq!(w.next_epoch(), 0);
        for s in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::ForcedOpen,
            BreakerState::Disabled,
            BreakerState::MetricsOnly,
        ] {
            assert_eq!(Word::new(s, 7).state(), s);
        }
    }
}
