//! `ShardHandle`: membership changes, routing queries and counters.

use std::fmt;
use std::sync::Arc;

use super::error::PlacementError;
use super::placement::{Placement, ShardId, ShardSpec};
use super::service::{Core, Entry};
use crate::signal::HealthSignal;

/// One shard of a membership: its id, weight, service and (optionally) the
/// health signal its service publishes.
///
/// ```
/// use tower_fleet::shard::Member;
/// let m = Member::new("shard-a", ()).weight(2);
/// assert_eq!(m.spec().weight, 2);
/// ```
#[derive(Clone)]
pub struct Member<S> {
    pub(crate) spec: ShardSpec,
    pub(crate) service: S,
    pub(crate) health: Option<HealthSignal>,
}

impl<S> Member<S> {
    /// A shard of weight 1 served by `service`.
    pub fn new(id: impl Into<ShardId>, service: S) -> Member<S> {
        Member {
            spec: ShardSpec::new(id),
            service,
            health: None,
        }
    }

    /// The same member with another weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Member<S> {
        self.spec.weight = weight;
        self
    }

    /// The same member with a health signal the router reads to skip it when
    /// it is known to be unavailable (a breaker's or a balancer's).
    #[must_use]
    pub fn health(mut self, signal: HealthSignal) -> Member<S> {
        self.health = Some(signal);
        self
    }

    /// The member's id and weight.
    pub fn spec(&self) -> &ShardSpec {
        &self.spec
    }
}

impl<S> fmt::Debug for Member<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.spec.id)
            .field("weight", &self.spec.weight)
            .field("health", &self.health.is_some())
            .finish()
    }
}

/// Reaches a [`Shard`](super::Shard)'s shared state: change its membership,
/// ask where keys go, read its counters.
///
/// Membership changes build a new placement table on the calling thread and
/// swap it in; requests in flight keep the table they were routed with, and
/// lookups never wait for a build. A Maglev build at 1,000 shards takes a few
/// milliseconds: from async code with large tables, call these methods inside
/// `tokio::task::spawn_blocking`. A change that would leave an invalid
/// membership (zero weight, a table smaller than the shard count) is refused
/// with a [`PlacementError`] and changes nothing.
///
/// A handle keeps the shard's state (and its discovery worker) alive.
pub struct ShardHandle<S> {
    pub(crate) core: Arc<Core<S>>,
}

impl<S> Clone for ShardHandle<S> {
    fn clone(&self) -> Self {
        ShardHandle {
            core: self.core.clone(),
        }
    }
}

impl<S> fmt::Debug for ShardHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardHandle").finish_non_exhaustive()
    }
}

impl<S: Clone> ShardHandle<S> {
    /// Adds a shard, or replaces the service and weight of the shard with the
    /// same id (its counters carry over).
    pub fn insert(&self, member: Member<S>) -> Result<(), PlacementError> {
        self.core.change(|members| {
            let old = members.get(&member.spec.id);
            let entry = self
                .core
                .entry(old, member.spec, member.service, member.health)?;
            members.insert(entry.spec.id.clone(), entry);
            Ok(())
        })
    }

    /// Removes a shard. Returns whether it was a member. Requests already
    /// routed to it complete.
    pub fn remove(&self, id: &str) -> Result<bool, PlacementError> {
        let mut found = false;
        self.core.change(|members| {
            found = members.remove(id).is_some();
            Ok(())
        })?;
        Ok(found)
    }

    /// Changes a shard's weight. Returns whether it was a member.
    pub fn set_weight(&self, id: &str, weight: u32) -> Result<bool, PlacementError> {
        let mut found = false;
        self.core.change(|members| {
            if weight == 0 {
                return Err(PlacementError::ZeroWeight {
                    id: ShardId::new(id),
                });
            }
            if let Some(e) = members.get_mut(id) {
                e.spec.weight = weight;
                found = true;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Replaces the whole membership at once (one table build).
    pub fn set_members(
        &self,
        new: impl IntoIterator<Item = Member<S>>,
    ) -> Result<(), PlacementError> {
        self.core.change(|members| {
            let old = std::mem::take(members);
            for m in new {
                if members.contains_key(&m.spec.id) {
                    return Err(PlacementError::DuplicateId { id: m.spec.id });
                }
                let entry = self
                    .core
                    .entry(old.get(&m.spec.id), m.spec, m.service, m.health)?;
                members.insert(entry.spec.id.clone(), entry);
            }
            Ok(())
        })
    }
}

impl<S> ShardHandle<S> {
    /// The current members, sorted by id.
    pub fn members(&self) -> Vec<ShardSpec> {
        let members = self
            .core
            .membership
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        members
            .values()
            .map(|e: &Entry<S>| e.spec.clone())
            .collect()
    }

    /// The shard that owns `key` under the current membership, or `None` when
    /// it is empty.
    pub fn route(&self, key: &[u8]) -> Option<ShardId> {
        let snap = self.core.snapshot.load();
        snap.table.as_ref().map(|t| t.route(key).clone())
    }

    /// The first `n` distinct shards of `key`'s preference list, the owner
    /// first (fewer when there are fewer shards).
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<ShardId> {
        let snap = self.core.snapshot.load();
        match snap.table.as_ref() {
            Some(t) => t.preference_list(key, n).into_iter().cloned().collect(),
            None => Vec::new(),
        }
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> ShardSnapshot {
        let snap = self.core.snapshot.load();
        let specs = snap.table.as_ref().map(|t| t.shards()).unwrap_or(&[]);
        let shards = snap
            .slots
            .iter()
            .zip(specs)
            .map(|(slot, spec)| {
                let s = &slot.info.stats;
                ShardStats {
                    id: slot.info.id.clone(),
                    weight: spec.weight,
                    requests: s.requests.get(),
                    unavailable: s.unavailable.get(),
                    not_ready_timeouts: s.not_ready_timeouts.get(),
                    deadline_exceeded: s.deadline_exceeded.get(),
                    failovers_away: s.failovers_away.get(),
                }
            })
            .collect();
        let c = &self.core.stats;
        ShardSnapshot {
            shards,
            no_key: c.no_key.get(),
            no_shards: c.no_shards.get(),
            failovers: c.failovers.get(),
            membership_changes: c.membership_changes.get(),
            membership_errors: c.membership_errors.get(),
            discovery_errors: c.discovery_errors.get(),
        }
    }
}

/// Counters of one shard, since it joined (kept across service replacements).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStats {
    /// The shard.
    pub id: ShardId,
    /// Its weight now.
    pub weight: u32,
    /// Requests routed to it (as owner or on failover).
    pub requests: u64,
    /// Requests failed or passed on because its health said unavailable.
    pub unavailable: u64,
    /// Requests that waited `ready_timeout` for it in vain.
    pub not_ready_timeouts: u64,
    /// Requests whose deadline passed while they waited for it.
    pub deadline_exceeded: u64,
    /// Requests that moved on from it to the next shard (`hops > 0`).
    pub failovers_away: u64,
}

/// Counters of a [`Shard`](super::Shard), read through [`ShardHandle::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardSnapshot {
    /// Per shard, sorted by id.
    pub shards: Vec<ShardStats>,
    /// Requests without a key.
    pub no_key: u64,
    /// Requests that found the membership empty.
    pub no_shards: u64,
    /// Times a request was sent on to a shard after its owner.
    pub failovers: u64,
    /// Membership changes applied.
    pub membership_changes: u64,
    /// Membership changes refused.
    pub membership_errors: u64,
    /// Errors reported by the discovery stream.
    pub discovery_errors: u64,
}

impl ShardSnapshot {
    /// The counters of shard `id`.
    pub fn shard(&self, id: &str) -> Option<&ShardStats> {
        self.shards.iter().find(|s| s.id.as_str() == id)
    }
}
