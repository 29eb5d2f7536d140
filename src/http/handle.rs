//! `HttpHandle`: the counters of the HTTP integration.

use std::fmt;
use std::sync::Arc;

use crate::metrics::Counter;

/// The counters shared by the pieces made from one [`Http`](super::Http)
/// (or by one piece made alone).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) retry_after_malformed: Counter,
    pub(crate) bodies_buffered: Counter,
    pub(crate) bodies_too_large: Counter,
    pub(crate) not_replayed: Counter,
    pub(crate) responses_too_large: Counter,
}

/// Reads the counters of the HTTP integration: cheap to clone, a snapshot
/// is a few relaxed atomic loads.
#[derive(Clone, Default)]
pub struct HttpHandle {
    pub(crate) stats: Arc<Stats>,
}

impl HttpHandle {
    /// The counters now.
    pub fn snapshot(&self) -> HttpSnapshot {
        let s = &self.stats;
        HttpSnapshot {
            retry_after_malformed: s.retry_after_malformed.get(),
            bodies_buffered: s.bodies_buffered.get(),
            bodies_too_large: s.bodies_too_large.get(),
            not_replayed: s.not_replayed.get(),
            responses_too_large: s.responses_too_large.get(),
        }
    }
}

impl fmt::Debug for HttpHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HttpHandle").field(&self.snapshot()).finish()
    }
}

/// The counters of the HTTP integration at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpSnapshot {
    /// `Retry-After` or `grpc-retry-pushback-ms` values that could not be
    /// read, and were ignored.
    pub retry_after_malformed: u64,
    /// Request bodies buffered whole for replay.
    pub bodies_buffered: u64,
    /// Request bodies larger than the replay cap: each is sent once, never
    /// retried or hedged, and never lost.
    pub bodies_too_large: u64,
    /// Requests that a retry, hedge or failover asked to copy and that
    /// could not be (their body streams).
    pub not_replayed: u64,
    /// Responses whose body was larger than the buffering cap.
    pub responses_too_large: u64,
}
