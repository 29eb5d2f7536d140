//! What all clones of a `Balance` (and its handle and workers) share: the
//! settings, the replica set, the panic census, the balancer's own health,
//! the waiting requests, and the membership (changed under a lock, rare path).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::config::{BalanceConfig, OutlierConfig, Strategy};
use super::error::MembershipError;
use super::quorum::{QuorumConfig, QuorumCounters};
use super::replica::{Replica, ReplicaId, ReplicaSpec, ReplicaState};
use super::set::ReplicaSet;
use super::slow_start::{self, SlowStart};
use crate::clock::{Clock, Ticks};
use crate::metrics::Counter;
use crate::signal::{health, HealthPublisher, HealthSignal};

/// When no replica is available and none says when it will be, waiting
/// requests look again (and the balancer's published health expires) after this.
pub(crate) const RECHECK: Duration = Duration::from_millis(25);

/// Waiting requests kept before all are woken to re-register (bounds memory
/// when nothing changes for a long time).
const MAX_WAITERS: usize = 1024;

pub(crate) type HealthOf<S> = Arc<dyn Fn(&S) -> Option<HealthSignal> + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    PeakEwma,
    LeastRequest,
    RoundRobin,
    Random,
}

/// The configuration, turned into what the request path reads.
pub(crate) struct Settings {
    pub(crate) kind: Kind,
    pub(crate) tau_ns: f64,
    pub(crate) penalty_ns: f64,
    pub(crate) default_rtt_ns: f64,
    pub(crate) ready_timeout: Duration,
    pub(crate) panic_threshold: u32,
    pub(crate) outlier: Option<OutlierConfig>,
    pub(crate) slow_start: Option<SlowStart>,
    /// The quorum mode's settings (the defaults when the config has none).
    pub(crate) quorum: QuorumConfig,
}

impl Settings {
    pub(crate) fn new(c: &BalanceConfig) -> Settings {
        let nanos = |d: Duration| d.as_nanos() as f64;
        let (kind, tau_ns, penalty_ns, default_rtt_ns) = match c.strategy {
            Strategy::PeakEwma {
                decay,
                failure_penalty,
                default_rtt,
            } => (
                Kind::PeakEwma,
                nanos(decay),
                nanos(failure_penalty),
                nanos(default_rtt),
            ),
            Strategy::LeastRequest {} => (Kind::LeastRequest, 1.0, 0.0, 0.0),
            Strategy::RoundRobin {} => (Kind::RoundRobin, 1.0, 0.0, 0.0),
            Strategy::Random {} => (Kind::Random, 1.0, 0.0, 0.0),
        };
        Settings {
            kind,
            tau_ns,
            penalty_ns,
            default_rtt_ns,
            ready_timeout: c.ready_timeout,
            panic_threshold: c.panic_threshold,
            outlier: c.outlier.enabled.then(|| c.outlier.clone()),
            slow_start: SlowStart::from_config(&c.slow_start),
            quorum: c.quorum.unwrap_or_default(),
        }
    }

    /// Whether calls are timed (the peak-EWMA strategy).
    #[inline]
    pub(crate) fn timed(&self) -> bool {
        self.kind == Kind::PeakEwma
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) no_replicas: Counter,
    pub(crate) unavailable: Counter,
    pub(crate) deadline_exceeded: Counter,
    pub(crate) membership_changes: Counter,
    pub(crate) membership_errors: Counter,
    pub(crate) discovery_errors: Counter,
    pub(crate) ejections_refused: Counter,
    pub(crate) panics: Counter,
    pub(crate) quorum: QuorumCounters,
}

/// The part of the shared state that does not depend on the service type, so
/// that outcome callbacks (which may run at the end of a stream) can hold it.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) clock: Clock,
    /// Failure-rate windows are counted from here.
    pub(crate) start: Ticks,
    /// Every replica's state, for ejection limits and the panic census.
    pub(crate) roster: ArcSwap<Vec<Arc<ReplicaState>>>,
    panic: AtomicBool,
    /// In panic mode: ticks of the earliest ejection end, when the census is due again.
    panic_recheck: AtomicU64,
    /// Serialises ejections and census (rare path).
    judge: Mutex<()>,
    publisher: HealthPublisher,
    pub(crate) signal: HealthSignal,
    down: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    pub(crate) stats: Stats,
}

impl Shared {
    pub(crate) fn new(settings: Settings, clock: Clock) -> Shared {
        let (publisher, signal) = health();
        // An empty set is unavailable until a replica joins.
        publisher.set_unavailable();
        Shared {
            start: clock.ticks(),
            settings,
            clock,
            roster: ArcSwap::from_pointee(Vec::new()),
            panic: AtomicBool::new(false),
            panic_recheck: AtomicU64::new(u64::MAX),
            judge: Mutex::new(()),
            publisher,
            signal,
            down: AtomicBool::new(true),
            waiters: Mutex::new(Vec::new()),
            stats: Stats::default(),
        }
    }

    pub(crate) fn judge(&self) -> MutexGuard<'_, ()> {
        self.judge.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the set is in panic mode now. One atomic load unless it is.
    #[inline]
    pub(crate) fn panic(&self) -> bool {
        if !self.panic.load(Ordering::Relaxed) {
            return false;
        }
        if self.clock.ticks().0 >= self.panic_recheck.load(Ordering::Relaxed) {
            let _judge = self.judge();
            self.census();
        }
        self.panic.load(Ordering::Relaxed)
    }

    /// Counts the replicas healthy by the balancer's own judgement and enters
    /// or leaves panic mode. Call with the judge lock held.
    pub(crate) fn census(&self) {
        let now = self.clock.ticks();
        let roster = self.roster.load();
        let n = roster.len() as u64;
        let mut healthy = 0u64;
        let mut next = u64::MAX;
        for s in roster.iter() {
            if s.own_available(&self.clock) {
                healthy += 1;
            } else {
                let until = s.outlier.ejected_until.load(Ordering::Relaxed);
                if until > now.0 {
                    next = next.min(until);
                }
            }
        }
        let threshold = u64::from(self.settings.panic_threshold);
        let panic = threshold > 0 && n > 0 && healthy * 100 < threshold * n;
        self.panic_recheck
            .store(if panic { next } else { u64::MAX }, Ordering::Relaxed);
        let was = self.panic.swap(panic, Ordering::Relaxed);
        if panic && !was {
            self.stats.panics.inc();
            tracing::warn!(
                healthy,
                replicas = n,
                "too few healthy replicas: balancing over all of them (panic mode)"
            );
        } else if was && !panic {
            tracing::info!(
                healthy,
                replicas = n,
                "enough healthy replicas again: panic mode over"
            );
        }
    }

    /// A request found a replica: the balancer is available.
    #[inline]
    pub(crate) fn mark_up(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            self.publisher.set_available();
            tracing::info!("balancer has an available replica again");
        }
    }

    /// No replica is available; publish it until `until` (or a short recheck).
    pub(crate) fn mark_down(&self, until: Option<tokio::time::Instant>) {
        let until = until.unwrap_or_else(|| self.clock.now() + RECHECK);
        self.publisher.set_unavailable_until(until);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("no replica available");
        }
    }

    fn mark_empty(&self) {
        self.publisher.set_unavailable();
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("the replica set is empty");
        }
    }

    /// Registers a request that waits for a replica to become available.
    pub(crate) fn wait(&self, waker: &Waker) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if waiters.iter().any(|w| w.will_wake(waker)) {
            return;
        }
        if waiters.len() >= MAX_WAITERS {
            waiters.drain(..).for_each(Waker::wake);
        }
        waiters.push(waker.clone());
    }

    /// Wakes every waiting request: something may have become available.
    pub(crate) fn notify(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|p| p.into_inner()));
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// One member of the authoritative membership.
#[derive(Clone)]
pub(crate) struct Entry<S> {
    pub(crate) spec: ReplicaSpec,
    pub(crate) service: S,
    pub(crate) source: Option<HealthSignal>,
    pub(crate) state: Arc<ReplicaState>,
}

pub(crate) type Members<S> = BTreeMap<ReplicaId, Entry<S>>;

/// Everything the clones of one `Balance` share.
pub(crate) struct Core<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) set: ArcSwap<ReplicaSet<S>>,
    pub(crate) cursor: AtomicUsize,
    pub(crate) membership: Mutex<Members<S>>,
    pub(crate) health_of: Option<HealthOf<S>>,
    /// Set when a layer was applied to a membership it could not take.
    pub(crate) invalid: OnceLock<MembershipError>,
    /// Dropped with the core, which tells background workers to stop.
    pub(crate) workers: crate::worker::Workers,
}

impl<S> Core<S> {
    pub(crate) fn new(settings: Settings, clock: Clock, health_of: Option<HealthOf<S>>) -> Core<S> {
        Core {
            shared: Arc::new(Shared::new(settings, clock)),
            set: ArcSwap::from_pointee(ReplicaSet::empty()),
            cursor: AtomicUsize::new(0),
            membership: Mutex::new(BTreeMap::new()),
            health_of,
            invalid: OnceLock::new(),
            workers: crate::worker::Workers::default(),
        }
    }

    pub(crate) fn members(&self) -> MutexGuard<'_, Members<S>> {
        self.membership.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: Clone> Core<S> {
    /// Applies a change to a copy of the membership and, if it is valid,
    /// swaps in the new set. `f` is told whether replicas it adds join a
    /// non-empty set (and so ramp up under slow start).
    pub(crate) fn change<R>(
        &self,
        f: impl FnOnce(&mut Members<S>, bool) -> Result<R, MembershipError>,
    ) -> Result<R, MembershipError> {
        let mut members = self.members();
        let mut next = members.clone();
        let joining = !members.is_empty();
        match f(&mut next, joining) {
            Ok(r) => {
                for (id, old) in members.iter() {
                    if next
                        .get(id)
                        .is_none_or(|e| !Arc::ptr_eq(&e.state, &old.state))
                    {
                        old.state.removed.store(true, Ordering::Relaxed);
                    }
                }
                self.publish(&next);
                *members = next;
                self.shared.stats.membership_changes.inc();
                tracing::info!(replicas = members.len(), "replica set changed");
                Ok(r)
            }
            Err(e) => {
                self.shared.stats.membership_errors.inc();
                tracing::warn!(error = %e, "replica set change refused");
                Err(e)
            }
        }
    }

    fn publish(&self, members: &Members<S>) {
        let shared = &self.shared;
        self.set
            .store(Arc::new(ReplicaSet::build(members, shared.settings.kind)));
        shared.roster.store(Arc::new(
            members.values().map(|e| e.state.clone()).collect(),
        ));
        {
            let _judge = shared.judge();
            shared.census();
        }
        if members.is_empty() {
            shared.mark_empty();
        } else {
            shared.mark_up();
        }
        shared.notify();
    }

    /// A membership entry for a new or replaced replica. A replaced replica
    /// keeps its state (load, counters, ejection); a new one that joins a
    /// non-empty set starts a slow-start ramp.
    pub(crate) fn entry(
        &self,
        old: Option<&Entry<S>>,
        replica: Replica<S>,
        joining: bool,
    ) -> Result<Entry<S>, MembershipError> {
        let Replica {
            spec,
            service,
            health,
        } = replica;
        if spec.weight == 0 {
            return Err(MembershipError::ZeroWeight { id: spec.id });
        }
        let source = health.or_else(|| self.health_of.as_ref().and_then(|f| f(&service)));
        let shared = &self.shared;
        let state = match old {
            Some(o) => {
                o.state.weight.store(spec.weight, Ordering::Relaxed);
                o.state.clone()
            }
            None => {
                let now = shared.clock.ticks();
                let state = Arc::new(ReplicaState::new(
                    &spec,
                    shared.settings.default_rtt_ns,
                    now,
                ));
                if joining {
                    slow_start::start(shared.settings.slow_start.as_ref(), &state, now);
                }
                state
            }
        };
        Ok(Entry {
            spec,
            service,
            source,
            state,
        })
    }
}
