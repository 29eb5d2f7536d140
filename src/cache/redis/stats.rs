//! The tier's counters and their snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter (relaxed: a snapshot is a best-effort reading).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct TierStats {
    pub(crate) gets: Counter,
    pub(crate) redis_hits: Counter,
    pub(crate) fills: Counter,
    pub(crate) fills_refused: Counter,
    pub(crate) fills_fenced: Counter,
    pub(crate) failures: Counter,
    pub(crate) remote_invalidations: Counter,
    pub(crate) subscriptions: Counter,
}

/// What a [`RedisStore`](super::RedisStore) has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTierSnapshot {
    /// Redis reads sent (one per key per coalesced miss of the first tier).
    pub gets: u64,
    /// Reads that found a current value in Redis.
    pub redis_hits: u64,
    /// Values written to Redis.
    pub fills: u64,
    /// Writes Redis refused because an invalidation came after their read.
    pub fills_refused: u64,
    /// Loads kept out of the first tier because an invalidation of their
    /// key came after they started.
    pub fills_fenced: u64,
    /// Batches of commands that failed or were refused by the open breaker.
    pub failures: u64,
    /// Invalidations received from other gateways.
    pub remote_invalidations: u64,
    /// Successful (re)subscriptions to the invalidation channel; each one
    /// flushed the first tier.
    pub subscriptions: u64,
}

impl TierStats {
    pub(crate) fn snapshot(&self) -> RedisTierSnapshot {
        RedisTierSnapshot {
            gets: self.gets.get(),
            redis_hits: self.redis_hits.get(),
            fills: self.fills.get(),
            fills_refused: self.fills_refused.get(),
            fills_fenced: self.fills_fenced.get(),
            failures: self.failures.get(),
            remote_invalidations: self.remote_invalidations.get(),
            subscriptions: self.subscriptions.get(),
        }
    }
}

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl RedisTierSnapshot {
    /// Publishes these counters through the `metrics` facade (feature
    /// `metrics`), set to their absolute values, beside a stack's
    /// ([`StackSnapshot::publish`](crate::stack::StackSnapshot::publish)):
    ///
    /// | metric | what |
    /// |---|---|
    /// | `tower_fleet_redis_{gets,hits,fills,fills_refused,fills_fenced,failures,remote_invalidations,subscriptions}_total` | the fields of the same names (`hits` is [`redis_hits`](Self::redis_hits)) |
    pub fn publish(&self) {
        for (name, v) in [
            ("tower_fleet_redis_gets_total", self.gets),
            ("tower_fleet_redis_hits_total", self.redis_hits),
            ("tower_fleet_redis_fills_total", self.fills),
            ("tower_fleet_redis_fills_refused_total", self.fills_refused),
            ("tower_fleet_redis_fills_fenced_total", self.fills_fenced),
            ("tower_fleet_redis_failures_total", self.failures),
            (
                "tower_fleet_redis_remote_invalidations_total",
                self.remote_invalidations,
            ),
            ("tower_fleet_redis_subscriptions_total", self.subscriptions),
        ] {
            metrics::counter!(name).absolute(v);
        }
    }
}
