//! Shards whose replicas come from DNS (`discovery = "name:port"`), with
//! feature `dns`; without it, such a shard is a typed error.

use std::fmt;
#[cfg(feature = "dns")]
use std::sync::{Arc, Mutex};

use super::config::ShardEntry;
use super::StackError;
#[cfg(feature = "dns")]
use super::{config::StackConfig, handle::ReplicaBreaker};
#[cfg(feature = "dns")]
use crate::discover::{DnsConfig, DnsDiscover, DnsHandle, Resolve, SystemResolver};

/// How the stack builder resolves the shards that name a DNS discovery:
/// the builder's `dns` settings, if given.
#[derive(Clone, Default)]
pub(crate) struct DnsSource {
    #[cfg(feature = "dns")]
    pub(crate) config: Option<DnsConfig>,
    #[cfg(feature = "dns")]
    pub(crate) resolver: Option<Arc<dyn Resolve>>,
}

impl fmt::Debug for DnsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DnsSource");
        #[cfg(feature = "dns")]
        d.field("config", &self.config)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"));
        d.finish()
    }
}

/// Without feature `dns` there is nothing to resolve a shard's name with:
/// refuse it rather than build a shard that never gets a replica.
#[cfg(not(feature = "dns"))]
pub(crate) fn check_available(entry: &ShardEntry) -> Result<(), StackError> {
    match &entry.discovery {
        Some(name) => Err(StackError::DiscoveryUnavailable {
            shard: entry.id.clone(),
            name: name.clone(),
        }),
        None => Ok(()),
    }
}

/// With feature `dns` every discovery name is resolvable.
#[cfg(feature = "dns")]
pub(crate) fn check_available(_entry: &ShardEntry) -> Result<(), StackError> {
    Ok(())
}

/// The shard's DNS discovery: each address that appears is connected and
/// wrapped like a configured replica (through `connect`), and its breaker is
/// listed in `breakers` until the address goes away.
#[cfg(feature = "dns")]
#[allow(clippy::type_complexity)]
pub(crate) fn discover<G>(
    source: &DnsSource,
    config: &StackConfig,
    index: usize,
    entry: &ShardEntry,
    name: &str,
    connect: Arc<dyn Fn(&str) -> G + Send + Sync>,
    breakers: Arc<Mutex<Vec<ReplicaBreaker>>>,
) -> Result<
    (
        impl futures_util::Stream<
                Item = Result<
                    tower::discover::Change<std::net::SocketAddr, G>,
                    std::convert::Infallible,
                >,
            > + Send
            + 'static,
        DnsHandle,
    ),
    StackError,
>
where
    G: super::handle::BreakerOf + Send + 'static,
{
    use futures_util::StreamExt;
    use tower::discover::Change;

    let dns = source
        .config
        .clone()
        .or_else(|| config.dns.clone())
        .unwrap_or_default();
    let shard = entry.id.clone();
    let listed = breakers.clone();
    let connect = move |address: std::net::SocketAddr| {
        let replica = address.to_string();
        let guarded = connect(&replica);
        let mut list = listed.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|b| !(b.shard == shard && b.replica == replica));
        list.push(ReplicaBreaker {
            shard: shard.clone(),
            replica,
            handle: guarded.breaker_handle(),
        });
        guarded
    };
    let resolver: Arc<dyn Resolve> = source
        .resolver
        .clone()
        .unwrap_or_else(|| Arc::new(SystemResolver));
    let discover = DnsDiscover::new(name, dns, connect)
        .map_err(|e| {
            if e.field() == "name" {
                crate::config::ConfigError::new(
                    format!("shards[{index}].discovery"),
                    e.value(),
                    e.reason().to_string(),
                )
            } else {
                e.within("dns")
            }
        })?
        .resolver(resolver);
    let handle = discover.handle();
    let shard = entry.id.clone();
    let stream = discover.map(move |change| {
        if let Ok(Change::Remove(address)) = &change {
            let replica = address.to_string();
            breakers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|b| !(b.shard == shard && b.replica == replica));
        }
        change
    });
    Ok((stream, handle))
}
