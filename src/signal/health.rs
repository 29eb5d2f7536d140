//! Health: whether an endpoint can take requests now.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Clock, Ticks};

/// What a [`HealthSignal`] says about its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// It can take requests now.
    Available,
    /// It cannot take requests; `until` is when it may again (`None`: unknown,
    /// until its publisher says otherwise).
    Unavailable {
        /// When the endpoint expects to be available again, if known.
        until: Option<Instant>,
    },
}

impl Health {
    /// Whether the endpoint can take requests now.
    pub fn is_available(&self) -> bool {
        matches!(self, Health::Available)
    }
}

const AVAILABLE: u64 = 0;
const UNTIL_TOLD: u64 = u64::MAX;

#[derive(Debug)]
struct HealthCell {
    /// `AVAILABLE`, `UNTIL_TOLD`, or the [`Ticks`] until which it is unavailable.
    until: AtomicU64,
}

/// The read side of an endpoint's health: cheap to clone, one atomic load to read.
///
/// A signal whose "unavailable until" instant has passed reads as available:
/// publishers need no timer to bring an endpoint back.
#[derive(Clone)]
pub struct HealthSignal {
    cell: Arc<HealthCell>,
}

/// The write side of an endpoint's health, held by whoever judges it.
#[derive(Clone)]
pub struct HealthPublisher {
    cell: Arc<HealthCell>,
}

/// A new health signal, available, with its publisher.
pub fn health() -> (HealthPublisher, HealthSignal) {
    let cell = Arc::new(HealthCell {
        until: AtomicU64::new(AVAILABLE),
    });
    (
        HealthPublisher { cell: cell.clone() },
        HealthSignal { cell },
    )
}

impl HealthSignal {
    /// A signal that nobody publishes to: always available.
    pub fn always_available() -> HealthSignal {
        health().1
    }

    /// The health now, by `clock`. Reads the clock only when the endpoint was
    /// marked unavailable until a known instant.
    #[inline]
    pub fn health(&self, clock: &Clock) -> Health {
        match self.cell.until.load(Ordering::Acquire) {
            AVAILABLE => Health::Available,
            UNTIL_TOLD => Health::Unavailable { until: None },
            t if clock.ticks().0 >= t => Health::Available,
            t => Health::Unavailable {
                until: Some(Ticks(t).to_instant()),
            },
        }
    }

    /// Whether the endpoint can take requests now, by `clock`.
    #[inline]
    pub fn is_available(&self, clock: &Clock) -> bool {
        self.health(clock).is_available()
    }

    /// How long until the endpoint may be available again, from `now`: zero
    /// when it is available, `None` when unknown.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        match self.cell.until.load(Ordering::Acquire) {
            AVAILABLE => Some(Duration::ZERO),
            UNTIL_TOLD => None,
            t => Some(Ticks(t).to_instant().saturating_duration_since(now)),
        }
    }
}

impl HealthPublisher {
    /// Marks the endpoint available.
    pub fn set_available(&self) {
        self.cell.until.store(AVAILABLE, Ordering::Release);
    }

    /// Marks the endpoint unavailable until `until`; it reads as available
    /// after that without further calls.
    pub fn set_unavailable_until(&self, until: Instant) {
        let t = Ticks::from_instant(until).0.clamp(1, UNTIL_TOLD - 1);
        self.cell.until.store(t, Ordering::Release);
    }

    /// Marks the endpoint unavailable until [`set_available`](Self::set_available)
    /// or [`set_unavailable_until`](Self::set_unavailable_until) is called.
    pub fn set_unavailable(&self) {
        self.cell.until.store(UNTIL_TOLD, Ordering::Release);
    }

    /// A read side of this signal.
    pub fn signal(&self) -> HealthSignal {
        HealthSignal {
            cell: self.cell.clone(),
        }
    }
}

impl fmt::Debug for HealthSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HealthSignal")
            .field(&self.cell.until.load(Ordering::Relaxed))
            .finish()
    }
}

impl fmt::Debug for HealthPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HealthPublisher")
            .field(&self.cell.until.load(Ordering::Relaxed))
            .finish()
    }
}

/// A service that publishes its own health, such as a circuit breaker or a
/// balancer. Routers built over such services can skip the unavailable ones.
pub trait HealthSource {
    /// The service's health signal.
    fn health_signal(&self) -> HealthSignal;
}
