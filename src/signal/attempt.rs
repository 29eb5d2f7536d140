//! The attempt mark: which attempt a request is and which endpoints it used.

use std::fmt;
use std::sync::{Arc, Mutex};

/// A stable identity of one endpoint (replica), for the attempt mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

impl EndpointId {
    /// The identity of an endpoint named `name` (its address, or its id),
    /// hashed with xxh3 so that it agrees across processes.
    pub fn of(name: &str) -> EndpointId {
        EndpointId(xxhash_rust::xxh3::xxh3_64(name.as_bytes()))
    }
}

/// How many endpoints an attempt mark remembers; later ones are dropped.
pub(super) const MAX_TRIED: usize = 16;

/// Which attempt a request is, and the endpoints its attempts used.
///
/// All copies of one request share the cell of tried endpoints, so a balancer
/// that appends the replica it picked lets the next attempt pick another
/// (Envoy's previous-hosts predicate). It remembers at most 16 endpoints.
#[derive(Clone)]
pub struct AttemptMark {
    attempt: u32,
    tried: Arc<Mutex<Vec<EndpointId>>>,
}

impl Default for AttemptMark {
    fn default() -> Self {
        AttemptMark::new()
    }
}

impl AttemptMark {
    /// The mark of a first attempt, with no endpoint tried.
    pub fn new() -> AttemptMark {
        AttemptMark {
            attempt: 1,
            tried: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The mark of the next attempt: the number plus one, the same cell.
    #[must_use]
    pub fn next(&self) -> AttemptMark {
        AttemptMark {
            attempt: self.attempt.saturating_add(1),
            tried: self.tried.clone(),
        }
    }

    /// Records that an attempt of this request used `endpoint`.
    pub fn record(&self, endpoint: EndpointId) {
        let mut tried = self.tried.lock().unwrap_or_else(|p| p.into_inner());
        if tried.len() < MAX_TRIED {
            tried.push(endpoint);
        }
    }

    /// Whether an attempt of this request used `endpoint`.
    pub fn was_tried(&self, endpoint: EndpointId) -> bool {
        self.tried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&endpoint)
    }

    /// The endpoints used so far, in order.
    pub fn tried(&self) -> Vec<EndpointId> {
        self.tried.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl fmt::Debug for AttemptMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptMark")
            .field("attempt", &self.attempt)
            .field("tried", &self.tried())
            .finish()
    }
}
