//! `BalanceHandle`: membership changes, counters and a per-replica snapshot.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::core::{Core, Kind};
use super::error::MembershipError;
use super::quorum::QuorumStats;
use super::replica::{Replica, ReplicaId, ReplicaSpec};
use super::set::{Avoid, Choice, Now};
use crate::clock::Ticks;
use crate::signal::HealthSignal;

/// Reaches a [`Balance`](super::Balance)'s shared state: change its replica
/// set, read its counters. All clones of the balancer see every change at once.
///
/// A change builds a new immutable set (O(replicas)) on the calling thread
/// and swaps it in; requests never wait for it. Requests already sent to a
/// removed replica complete there; requests still waiting for its readiness
/// pick another. A change that would leave an invalid set (a zero weight, a
/// duplicate id) is refused and changes nothing.
///
/// Replicas given here join as they are: when the builder had a
/// [`replica_layer`](super::BalanceBuilder::replica_layer), wrap them with
/// [`Replica::layer`] first. A handle keeps the balancer's state (and its
/// background workers) alive.
pub struct BalanceHandle<S> {
    pub(crate) core: Arc<Core<S>>,
}

impl<S> Clone for BalanceHandle<S> {
    fn clone(&self) -> Self {
        BalanceHandle {
            core: self.core.clone(),
        }
    }
}

impl<S> fmt::Debug for BalanceHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceHandle").finish_non_exhaustive()
    }
}

impl<S: Clone> BalanceHandle<S> {
    /// Adds a replica, or replaces the service, weight and health signal of
    /// the replica with the same id (its load, counters and ejection carry over).
    pub fn insert(&self, replica: Replica<S>) -> Result<(), MembershipError> {
        self.core.change(|members, joining| {
            let entry = self
                .core
                .entry(members.get(&replica.spec.id), replica, joining)?;
            members.insert(entry.spec.id.clone(), entry);
            Ok(())
        })
    }

    /// Removes a replica. Returns whether it was a member.
    pub fn remove(&self, id: &str) -> bool {
        self.core
            .change(|members, _| Ok(members.remove(id).is_some()))
            .unwrap_or(false)
    }

    /// Changes a replica's weight. Returns whether it was a member.
    pub fn set_weight(&self, id: &str, weight: u32) -> Result<bool, MembershipError> {
        self.core.change(|members, _| {
            if weight == 0 {
                return Err(MembershipError::ZeroWeight {
                    id: ReplicaId::new(id),
                });
            }
            Ok(match members.get_mut(id) {
                Some(e) => {
                    e.spec.weight = weight;
                    e.state.weight.store(weight, Ordering::Relaxed);
                    true
                }
                None => false,
            })
        })
    }

    /// Replaces the whole set at once. Replicas whose ids were already
    /// members keep their state.
    pub fn set_replicas(
        &self,
        replicas: impl IntoIterator<Item = Replica<S>>,
    ) -> Result<(), MembershipError> {
        self.core.change(|members, joining| {
            let old = std::mem::take(members);
            for r in replicas {
                if members.contains_key(&r.spec.id) {
                    return Err(MembershipError::DuplicateId { id: r.spec.id });
                }
                let entry = self.core.entry(old.get(&r.spec.id), r, joining)?;
                members.insert(entry.spec.id.clone(), entry);
            }
            Ok(())
        })
    }
}

impl<S> BalanceHandle<S> {
    /// The current replicas, sorted by id.
    pub fn replicas(&self) -> Vec<ReplicaSpec> {
        self.core
            .members()
            .values()
            .map(|e| e.spec.clone())
            .collect()
    }

    /// The balancer's own health signal (unavailable while no replica is).
    pub fn health_signal(&self) -> HealthSignal {
        self.core.shared.signal.clone()
    }

    /// The replica the strategy would choose for a request now, or `None`
    /// when none is available. A real pick: round robin moves on.
    pub fn pick(&self) -> Option<ReplicaId> {
        let set = self.core.set.load();
        let mut now = Now::new(&self.core.shared.clock);
        match set.choose(
            &self.core.shared,
            &self.core.cursor,
            &Avoid::default(),
            &mut now,
        ) {
            Choice::Slot(i) => Some(set.slots[i].state.id.clone()),
            Choice::None(_) | Choice::Empty => None,
        }
    }

    /// A snapshot of the counters, per replica and for the whole set.
    pub fn snapshot(&self) -> BalanceSnapshot {
        let shared = &self.core.shared;
        let clock = &shared.clock;
        let now = clock.ticks();
        let set = self.core.set.load();
        let panic = shared.panic();
        let replicas = set
            .slots
            .iter()
            .map(|slot| {
                let st = &slot.state;
                let until = st.outlier.ejected_until.load(Ordering::Relaxed);
                ReplicaStats {
                    id: st.id.clone(),
                    weight: st.weight(),
                    in_flight: st.in_flight(),
                    ewma: (shared.settings.kind == Kind::PeakEwma).then(|| {
                        Duration::from_nanos(st.ewma.estimate(now, shared.settings.tau_ns) as u64)
                    }),
                    requests: st.requests.load(Ordering::Relaxed),
                    successes: st.successes.load(Ordering::Relaxed),
                    failures: st.failures.load(Ordering::Relaxed),
                    ejections: st.outlier.ejections.load(Ordering::Relaxed),
                    ejected_until: (until > now.0).then(|| Ticks(until).to_instant()),
                    health_check_failed: !st.checked_signal.is_available(clock),
                    available: st.usable(slot.source.as_ref(), clock, panic),
                    slow_start: shared
                        .settings
                        .slow_start
                        .as_ref()
                        .map(|s| s.factor_of(st, now))
                        .filter(|f| *f < 1.0),
                }
            })
            .collect();
        let c = &shared.stats;
        BalanceSnapshot {
            replicas,
            panic,
            available: shared.signal.is_available(clock),
            no_replicas: c.no_replicas.get(),
            unavailable: c.unavailable.get(),
            deadline_exceeded: c.deadline_exceeded.get(),
            ejections_refused: c.ejections_refused.get(),
            panics: c.panics.get(),
            membership_changes: c.membership_changes.get(),
            membership_errors: c.membership_errors.get(),
            discovery_errors: c.discovery_errors.get(),
            quorum: c.quorum.snapshot(),
        }
    }
}

/// The state and counters of one replica (counters since it joined; kept
/// when its service is replaced).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReplicaStats {
    /// The replica.
    pub id: ReplicaId,
    /// Its weight now.
    pub weight: u32,
    /// Requests assigned to it whose outcome is not known yet.
    pub in_flight: u64,
    /// Its peak-EWMA latency estimate now (peak-EWMA strategy only).
    pub ewma: Option<Duration>,
    /// Requests assigned to it.
    pub requests: u64,
    /// Calls classified as successes.
    pub successes: u64,
    /// Calls (and readiness checks) classified as failures.
    pub failures: u64,
    /// Times it was ejected.
    pub ejections: u64,
    /// When its current ejection ends, if it is ejected.
    pub ejected_until: Option<Instant>,
    /// Whether active health checks have taken it out.
    pub health_check_failed: bool,
    /// Whether a request could be sent to it now.
    pub available: bool,
    /// Its slow-start share factor (0 to 1) while it ramps up.
    pub slow_start: Option<f64>,
}

/// The counters of a [`Balance`](super::Balance), from [`BalanceHandle::snapshot`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BalanceSnapshot {
    /// Per replica, sorted by id.
    pub replicas: Vec<ReplicaStats>,
    /// Whether the set is in panic mode (balancing over all replicas).
    pub panic: bool,
    /// The balancer's own published health.
    pub available: bool,
    /// Requests that found the set empty.
    pub no_replicas: u64,
    /// Requests that waited `ready_timeout` for a replica in vain.
    pub unavailable: u64,
    /// Requests whose deadline passed while they waited for a replica.
    pub deadline_exceeded: u64,
    /// Ejections refused by `max_ejection_percent`.
    pub ejections_refused: u64,
    /// Times the set entered panic mode.
    pub panics: u64,
    /// Membership changes applied.
    pub membership_changes: u64,
    /// Membership changes refused.
    pub membership_errors: u64,
    /// Errors reported by the discovery stream.
    pub discovery_errors: u64,
    /// The quorum mode's counters.
    pub quorum: QuorumStats,
}

impl BalanceSnapshot {
    /// The counters of replica `id`.
    pub fn replica(&self, id: &str) -> Option<&ReplicaStats> {
        self.replicas.iter().find(|r| r.id.as_str() == id)
    }
}
