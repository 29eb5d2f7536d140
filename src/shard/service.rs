//! The `Shard` service: routes each request to the shard that owns its key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::oneshot;
use tower_service::Service;

use super::config::PlacementConfig;
use super::error::{PlacementError, ShardError};
use super::future::ResponseFuture;
use super::placement::{Placement, PlacementTable, ShardId, ShardSpec};
use crate::clock::Clock;
use crate::key::{Identity, KeyFn, KeyHasher};
use crate::signal::{
    Carrier, Health, HealthSignal, NoReplay, Replay, Unavailable, UnavailableKind,
};
use crate::{BoxError, Counter};

/// Routes each request to the service of the shard that owns the request's key.
///
/// Built with [`Shard::builder`] (or [`ShardLayer`](super::ShardLayer)). See the
/// [module docs](super) for the semantics; in short:
///
/// - `Clone`: all clones share one membership and one placement table.
/// - Always ready: `poll_ready` never waits on a shard. A call picks the owner,
///   clones its service and drives that clone's readiness inside the response
///   future, bounded by `ready_timeout` and the request's deadline. So a slow
///   or stuck shard never holds up requests bound for other shards.
/// - With `hops = 0` (the default) a request only ever goes to its owner. An
///   owner whose health signal says unavailable fails the request at once with
///   [`ShardError::Unavailable`] and its retry-after.
/// - With `hops > 0` an unavailable owner (by health, by readiness timeout, or
///   by an answer that carries the unavailable signal, when requests can be
///   replayed) passes the request on along the preference list.
pub struct Shard<S, K = Identity, R = NoReplay> {
    pub(crate) core: Arc<Core<S>>,
    pub(crate) key_fn: Arc<K>,
    pub(crate) replay: R,
}

impl<S, K, R: Clone> Clone for Shard<S, K, R> {
    fn clone(&self) -> Self {
        Shard {
            core: self.core.clone(),
            key_fn: self.key_fn.clone(),
            replay: self.replay.clone(),
        }
    }
}

impl<S, K, R> fmt::Debug for Shard<S, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.core.snapshot.load();
        f.debug_struct("Shard")
            .field("shards", &snap.slots.len())
            .field("placement", &self.core.placement)
            .field("hops", &self.core.hops)
            .field("ready_timeout", &self.core.ready_timeout)
            .finish()
    }
}

/// What all clones of a `Shard` (and its handle) share.
pub(crate) struct Core<S> {
    pub(crate) snapshot: ArcSwap<Snapshot<S>>,
    pub(crate) placement: PlacementConfig,
    pub(crate) hasher: KeyHasher,
    pub(crate) hops: u32,
    pub(crate) ready_timeout: Duration,
    pub(crate) clock: Clock,
    /// The authoritative membership, changed only under this lock (rare path).
    pub(crate) membership: Mutex<BTreeMap<ShardId, Entry<S>>>,
    pub(crate) health_of: Option<HealthOf<S>>,
    pub(crate) stats: CoreStats,
    /// Dropped with the core, which tells background workers to stop.
    pub(crate) workers: Mutex<Vec<oneshot::Sender<()>>>,
}

pub(crate) type HealthOf<S> = Arc<dyn Fn(&S) -> Option<HealthSignal> + Send + Sync>;

/// One member of the authoritative membership.
#[derive(Clone)]
pub(crate) struct Entry<S> {
    pub(crate) spec: ShardSpec,
    pub(crate) service: S,
    pub(crate) info: Arc<SlotInfo>,
}

/// An immutable routing table: the placement and, index for index, the shards'
/// services. Rebuilt on every membership change and swapped in whole.
pub(crate) struct Snapshot<S> {
    pub(crate) table: Option<PlacementTable>,
    pub(crate) slots: Box<[Slot<S>]>,
    /// Set when the layer was applied to a membership that cannot be placed.
    pub(crate) error: Option<PlacementError>,
}

pub(crate) struct Slot<S> {
    pub(crate) service: S,
    pub(crate) info: Arc<SlotInfo>,
}

/// What a response future needs to know about its shard.
pub(crate) struct SlotInfo {
    pub(crate) id: ShardId,
    pub(crate) health: Option<HealthSignal>,
    pub(crate) stats: Arc<SlotStats>,
}

#[derive(Default)]
pub(crate) struct SlotStats {
    pub(crate) requests: Counter,
    pub(crate) unavailable: Counter,
    pub(crate) not_ready_timeouts: Counter,
    pub(crate) deadline_exceeded: Counter,
    pub(crate) failovers_away: Counter,
}

#[derive(Default)]
pub(crate) struct CoreStats {
    pub(crate) no_key: Counter,
    pub(crate) no_shards: Counter,
    pub(crate) failovers: Counter,
    pub(crate) membership_changes: Counter,
    pub(crate) membership_errors: Counter,
    pub(crate) discovery_errors: Counter,
}

impl<S> Snapshot<S> {
    pub(crate) fn empty(error: Option<PlacementError>) -> Snapshot<S> {
        Snapshot {
            table: None,
            slots: Box::new([]),
            error,
        }
    }
}

impl<S> Core<S> {
    /// The error for a request when the table is empty or invalid.
    pub(crate) fn no_table_error(&self, snap: &Snapshot<S>) -> ShardError {
        match &snap.error {
            Some(e) => ShardError::Membership(e.clone()),
            None => {
                self.stats.no_shards.inc();
                ShardError::NoShards
            }
        }
    }

    /// `Some(error)` when the slot's health says it is unavailable now.
    #[inline]
    pub(crate) fn unavailable(&self, info: &SlotInfo) -> Option<ShardError> {
        let health = info.health.as_ref()?;
        match health.health(&self.clock) {
            Health::Available => None,
            Health::Unavailable { until } => {
                info.stats.unavailable.inc();
                let retry_after = until.map(|u| u.saturating_duration_since(self.clock.now()));
                Some(ShardError::Unavailable {
                    shard: info.id.clone(),
                    signal: Unavailable::new(UnavailableKind::NoneAvailable)
                        .with_retry_after(retry_after),
                })
            }
        }
    }
}

impl<S: Clone> Core<S> {
    /// Builds a snapshot of `members` and swaps it in.
    pub(crate) fn publish(
        &self,
        members: &BTreeMap<ShardId, Entry<S>>,
    ) -> Result<(), PlacementError> {
        if members.is_empty() {
            self.snapshot.store(Arc::new(Snapshot::empty(None)));
            return Ok(());
        }
        let specs: Vec<ShardSpec> = members.values().map(|e| e.spec.clone()).collect();
        let table = self.placement.build(self.hasher.clone(), &specs)?;
        // The table sorts its shards by id, as the BTreeMap does: index i of
        // the table is entry i of the map.
        let slots = members
            .values()
            .map(|e| Slot {
                service: e.service.clone(),
                info: e.info.clone(),
            })
            .collect();
        self.snapshot.store(Arc::new(Snapshot {
            table: Some(table),
            slots,
            error: None,
        }));
        Ok(())
    }

    /// Applies a change to a copy of the membership, builds its table, and
    /// commits both only if the table builds.
    pub(crate) fn change(
        &self,
        f: impl FnOnce(&mut BTreeMap<ShardId, Entry<S>>) -> Result<(), PlacementError>,
    ) -> Result<(), PlacementError> {
        let mut members = self.membership.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = members.clone();
        let result = f(&mut next).and_then(|()| self.publish(&next));
        match result {
            Ok(()) => {
                *members = next;
                self.stats.membership_changes.inc();
                tracing::info!(shards = members.len(), "shard membership changed");
                Ok(())
            }
            Err(e) => {
                self.stats.membership_errors.inc();
                tracing::warn!(error = %e, "shard membership change refused");
                Err(e)
            }
        }
    }

    /// A membership entry for a new or replaced shard, keeping the counters of
    /// the shard it replaces.
    pub(crate) fn entry(
        &self,
        old: Option<&Entry<S>>,
        spec: ShardSpec,
        service: S,
        health: Option<HealthSignal>,
    ) -> Result<Entry<S>, PlacementError> {
        if spec.weight == 0 {
            return Err(PlacementError::ZeroWeight { id: spec.id });
        }
        let health = health.or_else(|| self.health_of.as_ref().and_then(|f| f(&service)));
        let stats = old.map(|o| o.info.stats.clone()).unwrap_or_default();
        Ok(Entry {
            info: Arc::new(SlotInfo {
                id: spec.id.clone(),
                health,
                stats,
            }),
            spec,
            service,
        })
    }
}

impl<S, K, R, Req> Service<Req> for Shard<S, K, R>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    K: KeyFn<Req>,
    R: Replay<Req> + Clone,
    Req: Carrier,
{
    type Response = S::Response;
    type Error = ShardError;
    type Future = ResponseFuture<S, R, Req>;

    /// Always ready: readiness of the chosen shard is driven inside the
    /// response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let core = &self.core;
        let snap = core.snapshot.load();
        let Some(table) = &snap.table else {
            return ResponseFuture::failed(core.no_table_error(&snap));
        };
        let hash = match self.key_fn.key(&req) {
            Some(key) => table.hasher().hash_key(&key),
            None => {
                core.stats.no_key.inc();
                return ResponseFuture::failed(ShardError::NoKey);
            }
        };
        let owner = table.route_hash(hash);
        let slot = &snap.slots[owner];
        slot.info.stats.requests.inc();
        if core.hops == 0 {
            if let Some(err) = core.unavailable(&slot.info) {
                return ResponseFuture::failed(err);
            }
            return ResponseFuture::new(
                slot.service.clone(),
                slot.info.clone(),
                req,
                core.clone(),
                None,
            );
        }
        // Failover mode: keep the table this request was routed with, so every
        // hop follows one preference list.
        let snap = arc_swap::Guard::into_inner(snap);
        super::future::failover_call(core.clone(), snap, hash, self.replay.clone(), req)
    }
}
