//! Replicas: their ids, the members users hand in, and the state the
//! balancer keeps for each (load, health, ejection, counters).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use tower::Layer;

use super::ewma::PeakEwma;
use super::health_check::CheckState;
use super::outlier::OutlierState;
use crate::clock::{Clock, Ticks};
use crate::signal::{health, EndpointId, Health, HealthPublisher, HealthSignal};

/// The stable name of a replica (its address, or an id). Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaId(Arc<str>);

impl ReplicaId {
    /// A replica id from a name.
    pub fn new(id: impl AsRef<str>) -> ReplicaId {
        ReplicaId(Arc::from(id.as_ref()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The replica's identity in attempt marks (xxh3 of the id).
    pub fn endpoint(&self) -> EndpointId {
        EndpointId::of(&self.0)
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ReplicaId {
    fn from(s: &str) -> Self {
        ReplicaId::new(s)
    }
}

impl From<String> for ReplicaId {
    fn from(s: String) -> Self {
        ReplicaId(Arc::from(s))
    }
}

impl From<SocketAddr> for ReplicaId {
    fn from(a: SocketAddr) -> Self {
        ReplicaId::from(a.to_string())
    }
}

impl std::borrow::Borrow<str> for ReplicaId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A replica as the set sees it: its id and weight. Discovery keys convert
/// into it (`&str`, `String`, `SocketAddr`, or `(id, weight)`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplicaSpec {
    /// The replica's stable id.
    pub id: ReplicaId,
    /// Its weight, at least 1: its share of traffic relative to the others.
    pub weight: u32,
}

impl ReplicaSpec {
    /// A replica of weight 1.
    pub fn new(id: impl Into<ReplicaId>) -> ReplicaSpec {
        ReplicaSpec {
            id: id.into(),
            weight: 1,
        }
    }
}

impl<I: Into<ReplicaId>> From<(I, u32)> for ReplicaSpec {
    fn from((id, weight): (I, u32)) -> Self {
        ReplicaSpec {
            id: id.into(),
            weight,
        }
    }
}

impl From<&str> for ReplicaSpec {
    fn from(s: &str) -> Self {
        ReplicaSpec::new(s)
    }
}

impl From<String> for ReplicaSpec {
    fn from(s: String) -> Self {
        ReplicaSpec::new(s)
    }
}

impl From<SocketAddr> for ReplicaSpec {
    fn from(a: SocketAddr) -> Self {
        ReplicaSpec::new(a)
    }
}

impl From<ReplicaId> for ReplicaSpec {
    fn from(id: ReplicaId) -> Self {
        ReplicaSpec::new(id)
    }
}

/// One replica handed to the balancer: id, weight, service, and optionally
/// the health signal its service publishes.
///
/// ```
/// use tower_fleet::balance::Replica;
/// let r = Replica::new("10.0.0.1:80", ()).weight(3);
/// assert_eq!(r.spec().weight, 3);
/// ```
#[derive(Clone)]
pub struct Replica<S> {
    pub(crate) spec: ReplicaSpec,
    pub(crate) service: S,
    pub(crate) health: Option<HealthSignal>,
}

impl<S> Replica<S> {
    /// A replica of weight 1 served by `service`.
    pub fn new(id: impl Into<ReplicaId>, service: S) -> Replica<S> {
        Replica {
            spec: ReplicaSpec::new(id),
            service,
            health: None,
        }
    }

    /// The same replica with another weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Replica<S> {
        self.spec.weight = weight;
        self
    }

    /// The same replica with a health signal that the balancer reads to skip
    /// it, without polling it, while it says unavailable (a breaker's, say).
    #[must_use]
    pub fn health(mut self, signal: HealthSignal) -> Replica<S> {
        self.health = Some(signal);
        self
    }

    /// The same replica with its service wrapped by `layer` (a per-replica
    /// circuit breaker, timeout, ...). Use it for replicas inserted through a
    /// [`BalanceHandle`](super::BalanceHandle) when the builder was given a
    /// [`replica_layer`](super::BalanceBuilder::replica_layer).
    pub fn layer<L: Layer<S>>(self, layer: &L) -> Replica<L::Service> {
        Replica {
            spec: self.spec,
            service: layer.layer(self.service),
            health: self.health,
        }
    }

    /// The replica's id and weight.
    pub fn spec(&self) -> &ReplicaSpec {
        &self.spec
    }
}

impl<S> fmt::Debug for Replica<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.spec.id)
            .field("weight", &self.spec.weight)
            .field("health", &self.health.is_some())
            .finish()
    }
}

/// What the balancer knows about one replica; shared by the set, in-flight
/// requests and the handle. Everything the request path touches is atomic.
pub(crate) struct ReplicaState {
    pub(crate) id: ReplicaId,
    pub(crate) endpoint: EndpointId,
    pub(crate) weight: AtomicU32,
    pub(crate) in_flight: AtomicU64,
    pub(crate) ewma: PeakEwma,
    /// The balancer's own ejection, published as a health signal.
    pub(crate) ejection: HealthPublisher,
    pub(crate) ejection_signal: HealthSignal,
    /// The active health checks' verdict.
    pub(crate) checked: HealthPublisher,
    pub(crate) checked_signal: HealthSignal,
    pub(crate) check: CheckState,
    pub(crate) outlier: OutlierState,
    /// Ticks from which a slow-start ramp runs; 0 when it takes a full share.
    pub(crate) ramp_from: AtomicU64,
    /// Set when the replica leaves the set: requests not yet sent pick again.
    pub(crate) removed: AtomicBool,
    pub(crate) requests: AtomicU64,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl ReplicaState {
    pub(crate) fn new(spec: &ReplicaSpec, default_rtt_ns: f64, now: Ticks) -> ReplicaState {
        let (ejection, ejection_signal) = health();
        let (checked, checked_signal) = health();
        ReplicaState {
            id: spec.id.clone(),
            endpoint: spec.id.endpoint(),
            weight: AtomicU32::new(spec.weight.max(1)),
            in_flight: AtomicU64::new(0),
            ewma: PeakEwma::new(default_rtt_ns, now),
            ejection,
            ejection_signal,
            checked,
            checked_signal,
            check: CheckState::default(),
            outlier: OutlierState::default(),
            ramp_from: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether the balancer's own judgement (ejection, health checks) lets
    /// it take requests now.
    #[inline]
    pub(crate) fn own_available(&self, clock: &Clock) -> bool {
        self.ejection_signal.is_available(clock) && self.checked_signal.is_available(clock)
    }

    /// Whether it can take requests now: its source's signal and, unless the
    /// set is in panic mode, the balancer's own judgement.
    #[inline]
    pub(crate) fn usable(&self, source: Option<&HealthSignal>, clock: &Clock, panic: bool) -> bool {
        if let Some(s) = source {
            if !s.is_available(clock) {
                return false;
            }
        }
        panic || self.own_available(clock)
    }

    /// The same judgement with the instant it may change: unavailable until
    /// the latest of the signals that say so (`None`: unknown).
    pub(crate) fn health(
        &self,
        source: Option<&HealthSignal>,
        clock: &Clock,
        panic: bool,
    ) -> Health {
        let own = [&self.ejection_signal, &self.checked_signal];
        let signals = source.into_iter().chain(own.into_iter().filter(|_| !panic));
        let mut latest = None;
        for s in signals {
            match s.health(clock) {
                Health::Available => {}
                Health::Unavailable { until: None } => return Health::Unavailable { until: None },
                Health::Unavailable { until: Some(t) } => latest = latest.max(Some(t)),
            }
        }
        match latest {
            None => Health::Available,
            until => Health::Unavailable { until },
        }
    }

    #[inline]
    pub(crate) fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}
