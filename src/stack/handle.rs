//! `StackHandle`: one place to reach every layer's handle of a built stack.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::replica::Guarded;
use super::StackError;
use crate::balance::{Balance, BalanceHandle, BalanceSnapshot, Replica};
use crate::breaker::{BreakerHandle, BreakerSnapshot};
use crate::cache::{CacheHandle, CacheSnapshot};
use crate::retry::{RetryHandle, RetrySnapshot};
use crate::shard::{ShardHandle, ShardId, ShardSnapshot};

/// The balancer of one shard of a stack built for one replica per request.
pub type BalanceOf<S, Req, C> = Balance<Guarded<S, Req, C>, C>;

/// A replica's circuit breaker, with the shard and address it guards.
#[derive(Clone, Debug)]
pub struct ReplicaBreaker {
    /// The shard the replica belongs to.
    pub shard: ShardId,
    /// The replica's address, as given to the connector.
    pub replica: String,
    /// The breaker's handle.
    pub handle: BreakerHandle,
}

type Connect<G> = Arc<dyn Fn(&str) -> G + Send + Sync>;

/// Reaches every layer of a built stack: for metrics (each layer's
/// snapshot) and administration (breakers, cache invalidation, membership).
///
/// `Mem` is the shard layer's member type (a balancer, or its quorum view),
/// `T` the stack's response type, `G` a replica as its balancer holds it.
/// Cheap to clone; clones reach the same stack.
pub struct StackHandle<Mem, T, G> {
    pub(crate) cache: Option<CacheHandle<T>>,
    pub(crate) retry: Option<RetryHandle>,
    pub(crate) shard: ShardHandle<Mem>,
    pub(crate) balances: Arc<Vec<(ShardId, BalanceHandle<G>)>>,
    pub(crate) breakers: Arc<Mutex<Vec<ReplicaBreaker>>>,
    pub(crate) connect: Connect<G>,
    #[cfg(feature = "dns")]
    pub(crate) dns: Arc<Vec<(ShardId, crate::discover::DnsHandle)>>,
}

impl<Mem, T, G> Clone for StackHandle<Mem, T, G> {
    fn clone(&self) -> Self {
        StackHandle {
            cache: self.cache.clone(),
            retry: self.retry.clone(),
            shard: self.shard.clone(),
            balances: self.balances.clone(),
            breakers: self.breakers.clone(),
            connect: self.connect.clone(),
            #[cfg(feature = "dns")]
            dns: self.dns.clone(),
        }
    }
}

impl<Mem, T, G> fmt::Debug for StackHandle<Mem, T, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackHandle")
            .field("cache", &self.cache.is_some())
            .field("retry", &self.retry.is_some())
            .field("shards", &self.balances.len())
            .finish_non_exhaustive()
    }
}

/// Every layer's counters at one moment, from [`StackHandle::snapshot`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StackSnapshot {
    /// The cache's, if the stack has one.
    pub cache: Option<CacheSnapshot>,
    /// The retry layer's, if the stack has one.
    pub retry: Option<RetrySnapshot>,
    /// The shard layer's.
    pub shard: ShardSnapshot,
    /// Each shard's balancer's, in configuration order.
    pub balances: Vec<(ShardId, BalanceSnapshot)>,
    /// Each replica's breaker's.
    pub breakers: Vec<(ShardId, String, BreakerSnapshot)>,
    /// Each DNS-discovered shard's discovery's.
    #[cfg(feature = "dns")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
    pub dns: Vec<(ShardId, crate::discover::DnsSnapshot)>,
}

impl<Mem, T, G> StackHandle<Mem, T, G> {
    /// The cache's handle (invalidation, counters), if the stack has a cache.
    pub fn cache(&self) -> Option<&CacheHandle<T>> {
        self.cache.as_ref()
    }

    /// The retry layer's handle, if the stack has one.
    pub fn retry(&self) -> Option<&RetryHandle> {
        self.retry.as_ref()
    }

    /// The shard layer's handle (where keys go, counters).
    pub fn shard(&self) -> &ShardHandle<Mem> {
        &self.shard
    }

    /// The balancer of shard `id`.
    pub fn balance(&self, id: &str) -> Option<&BalanceHandle<G>> {
        self.balances
            .iter()
            .find(|(s, _)| s.as_str() == id)
            .map(|(_, b)| b)
    }

    /// Every shard's balancer, in configuration order.
    pub fn balances(&self) -> impl Iterator<Item = (&ShardId, &BalanceHandle<G>)> {
        self.balances.iter().map(|(s, b)| (s, b))
    }

    /// The DNS discovery of shard `id`, if its configuration names one:
    /// the membership it resolved last, its last error, its counters.
    #[cfg(feature = "dns")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
    pub fn dns(&self, id: &str) -> Option<&crate::discover::DnsHandle> {
        self.dns
            .iter()
            .find(|(s, _)| s.as_str() == id)
            .map(|(_, d)| d)
    }

    /// Every replica's breaker (discovered replicas' too, while they are
    /// members).
    pub fn breakers(&self) -> Vec<ReplicaBreaker> {
        self.breakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The breaker of `replica` in shard `shard`.
    pub fn breaker(&self, shard: &str, replica: &str) -> Option<BreakerHandle> {
        self.breakers()
            .into_iter()
            .find(|b| b.shard.as_str() == shard && b.replica == replica)
            .map(|b| b.handle)
    }
}

impl<Mem, T: Clone + Send + Sync + 'static, G> StackHandle<Mem, T, G> {
    /// Every layer's counters.
    pub fn snapshot(&self) -> StackSnapshot {
        StackSnapshot {
            cache: self.cache.as_ref().map(CacheHandle::snapshot),
            retry: self.retry.as_ref().map(RetryHandle::snapshot),
            shard: self.shard.snapshot(),
            balances: self
                .balances
                .iter()
                .map(|(s, b)| (s.clone(), b.snapshot()))
                .collect(),
            breakers: self
                .breakers()
                .into_iter()
                .map(|b| (b.shard, b.replica, b.handle.snapshot()))
                .collect(),
            #[cfg(feature = "dns")]
            dns: self
                .dns
                .iter()
                .map(|(s, d)| (s.clone(), d.snapshot()))
                .collect(),
        }
    }
}

impl<Mem, T, G> StackHandle<Mem, T, G>
where
    G: Clone + BreakerOf,
{
    /// Adds a replica at `address` to shard `shard`: connected through the
    /// stack's connector and wrapped like the configured ones (timeout,
    /// breaker). Requests start reaching it at once.
    pub fn add_replica(&self, shard: &str, address: &str) -> Result<(), StackError> {
        let Some(balance) = self.balance(shard) else {
            return Err(StackError::UnknownShard(ShardId::new(shard)));
        };
        let guarded = (self.connect)(address);
        balance
            .insert(Replica::new(address, guarded.clone()))
            .map_err(|e| StackError::Membership {
                shard: ShardId::new(shard),
                source: Box::new(e),
            })?;
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers.retain(|b| !(b.shard.as_str() == shard && b.replica == address));
        breakers.push(ReplicaBreaker {
            shard: ShardId::new(shard),
            replica: address.to_string(),
            handle: guarded.breaker_handle(),
        });
        Ok(())
    }

    /// Removes the replica at `address` from shard `shard`. Requests already
    /// sent to it complete. Returns whether it was a member.
    pub fn remove_replica(&self, shard: &str, address: &str) -> bool {
        let removed = self.balance(shard).is_some_and(|b| b.remove(address));
        if removed {
            let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
            breakers.retain(|b| !(b.shard.as_str() == shard && b.replica == address));
        }
        removed
    }
}

/// A replica service that has a breaker handle (the stack's guarded replicas).
pub trait BreakerOf {
    /// The replica's breaker.
    fn breaker_handle(&self) -> BreakerHandle;
}

impl<S, C> BreakerOf for crate::breaker::CircuitBreaker<S, C> {
    fn breaker_handle(&self) -> BreakerHandle {
        self.handle()
    }
}
