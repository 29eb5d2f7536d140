//! A hybrid logical clock: versions that follow wall time but never go
//! backwards, and that order two writes from the same millisecond.
//!
//! A [`Version`] is `(millis, counter, gateway)`, compared in that order, so
//! versions are totally ordered: the newest write wins (last-writer-wins), and
//! two gateways never mint the same version because the gateway id breaks ties.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One write's version; the greater version is the newer write.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Wall-clock milliseconds since the Unix epoch (or later, if a peer's clock ran ahead).
    pub millis: u64,
    /// Orders versions minted in the same millisecond.
    pub counter: u32,
    /// The gateway that minted it: breaks ties between gateways.
    pub gateway: u32,
}

/// The response header in which a node states the version of the entry it
/// answers with, so that a quorum's merge compares versions without
/// parsing bodies.
pub const VERSION_HEADER: &str = "kv-version";

impl Version {
    /// The version as [`VERSION_HEADER`] carries it: `millis.counter.gateway`.
    pub fn to_header(self) -> String {
        format!("{}.{}.{}", self.millis, self.counter, self.gateway)
    }

    /// A version written by [`to_header`](Self::to_header); `None` if `text`
    /// is not one.
    pub fn from_header(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let version = Version {
            millis: parts.next()?.parse().ok()?,
            counter: parts.next()?.parse().ok()?,
            gateway: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(version)
    }
}

/// A gateway's clock. `now` is monotonic: each call returns a version greater
/// than every version it returned or [`Hlc::observe`]d before.
#[derive(Debug)]
pub struct Hlc {
    gateway: u32,
    last: Mutex<(u64, u32)>,
}

impl Hlc {
    /// A clock for gateway `gateway`.
    pub fn new(gateway: u32) -> Self {
        Self {
            gateway,
            last: Mutex::new((0, 0)),
        }
    }

    /// The next version, from the given wall time in milliseconds.
    pub fn tick(&self, wall_millis: u64) -> Version {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (millis, counter) = if wall_millis > last.0 {
            (wall_millis, 0)
        } else {
            (last.0, last.1.saturating_add(1))
        };
        *last = (millis, counter);
        Version {
            millis,
            counter,
            gateway: self.gateway,
        }
    }

    /// The next version, from the system clock.
    pub fn now(&self) -> Version {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.tick(wall)
    }

    /// Moves the clock past a version seen elsewhere, so this gateway's next
    /// write orders after it even if its own wall clock is behind.
    pub fn observe(&self, seen: Version) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if (seen.millis, seen.counter) > *last {
            *last = (seen.millis, seen.counter);
        }
    }
}
