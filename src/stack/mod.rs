//! Assembling a fleet: one configuration document and a connector in, the
//! canonical stack out.
//!
//! The canonical stack fans out (one balancer per shard, one breaker per
//! replica), so it is not one `ServiceBuilder` chain. [`StackBuilder`] does
//! the wiring: from a [`StackConfig`] (one document of nested tables, one per
//! layer's `Config`, plus the fleet's shards and replica addresses) and a
//! connector (address in, the service that talks to that replica out), it
//! builds
//!
//! ```text
//! Cache -> Retry -> Shard -> one Balance per shard -> one CircuitBreaker per replica -> Timeout -> connector's service
//! ```
//!
//! as one `Clone` service, and a [`StackHandle`] that reaches every layer's
//! handle: each layer's counters for metrics, each replica's breaker, the
//! cache for invalidation, and each shard's membership.
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::key::Key;
//! use tower_fleet::stack::{StackBuilder, StackConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
//! let config: StackConfig = toml::from_str(r#"
//!     [cache]
//!     ttl = "30s"
//!     [retry]
//!     max_attempts = 3
//!     [breaker]
//!     consecutive_failures = 5
//!     [[shards]]
//!     id = "a"
//!     replicas = ["10.0.0.1:80", "10.0.0.2:80"]
//!     [[shards]]
//!     id = "b"
//!     replicas = ["10.0.0.3:80", "10.0.0.4:80"]
//! "#)?;
//! // In-process "replicas" that say who answered; in a real fleet, a hyper
//! // client bound to the address.
//! let connect = |address: &str| {
//!     let address = address.to_string();
//!     service_fn(move |key: String| {
//!         let address = address.clone();
//!         async move { Ok::<_, Infallible>(format!("{address} has {key}")) }
//!     })
//! };
//! let (mut stack, handle) = StackBuilder::new(config)
//!     .connector(connect)
//!     .key(|k: &String| Some(Key::from(k.as_str())))
//!     .build()?;
//! let answer = stack.ready().await?.call("user:42".to_string()).await?;
//! let owner = handle.shard().route(b"user:42").unwrap();
//! let replicas = &handle.balance(owner.as_str()).unwrap().replicas();
//! assert!(replicas.iter().any(|r| answer.starts_with(r.id.as_str())));
//! # Ok(()) }
//! ```
//!
//! # Leaving layers out
//!
//! A layer whose table is absent is left out at run time, at the cost of a
//! branch: no `[cache]`, every request passes the cache through; no
//! `[retry]`, every request is sent once; no `[breaker]`, each replica's
//! breaker is disabled (it passes every call and records nothing); no
//! `[timeout]`, no timer is set. The shard and balance layers are the fleet
//! and always there (a fleet of one shard works). The stack's type is the
//! same whichever layers are left out.
//!
//! # One classifier, one key, for every layer
//!
//! The builder takes one [`Classify`](crate::classify::Classify), given to
//! every layer, so they agree on what a failure is; it must classify each
//! layer's outcome (the breaker's, the balancer's, the shard's, the retry
//! layer's errors differ), which `ErrorIsFailure` and the `http` feature's
//! classifiers do. The key function serves both the shard and the cache
//! layers.
//!
//! # Quorum mode
//!
//! [`StackBuilder::build_quorum`] puts each shard's balancer in quorum mode
//! (with the `[balance.quorum]` table's R, W and fan-out): a write reaches
//! every replica of its shard and succeeds when W acknowledge; a read asks R
//! and keeps the newest reply. The responses name the replicas that failed or
//! lag behind, so the caller can repair them. See the balance module's docs.
//! [`StackBuilder::build_quorum_with`] maps that answer (after starting the
//! repair, say) to the response the cache keeps, which must be `Clone`.
//!
//! # Membership
//!
//! [`StackHandle::add_replica`] and [`StackHandle::remove_replica`] change a
//! shard's replicas at run time: new ones are connected and wrapped like the
//! configured ones, and the change goes to that shard's balancer only.
//!
//! A shard may name a DNS `discovery` (`host:port`) instead of, or beside,
//! its addresses (feature `dns`, see the [`discover`](crate::discover)
//! module): the builder starts a [`DnsDiscover`](crate::discover::DnsDiscover)
//! for it, resolved every `[dns].interval`, so each address that appears is
//! connected and wrapped like a configured replica, and each that goes away
//! leaves. A failed or empty resolution keeps the membership;
//! `StackHandle::dns` reports it. Without the feature such a shard is refused
//! with [`StackError::DiscoveryUnavailable`].
//!
//! ```toml
//! [dns]
//! interval = "5s"
//! [[shards]]
//! id = "s0"
//! discovery = "kv-s0.kv.svc.cluster.local:8080"   # or: dns = "..."
//! ```
//!
//! # Metrics
//!
//! With the `metrics` feature, [`StackHandle::publish_metrics`] publishes
//! every layer's counters through the [`metrics`](https://docs.rs/metrics)
//! facade, named in Prometheus style with `shard` and `replica` labels
//! (`tower_fleet_breaker_state{shard="kv-0",replica="10.0.0.1:7000"}`), so
//! any exporter serves them; call it before each scrape.
//!
//! # Errors
//!
//! Building fails with a [`StackError`] that names the failing part: an
//! invalid configuration ([`ConfigError`](crate::config::ConfigError) with
//! its path, such as `shards[2].replicas[0]` or `shard.placement.table_size`),
//! or a call outside a tokio runtime. The built stack's errors are the cache
//! layer's [`CacheError`](crate::cache::CacheError), which wraps the retry
//! layer's and so on down; the shared signals stay findable through
//! [`ErrorSignals`](crate::signal::ErrorSignals).

mod builder;
mod config;
mod dns;
#[cfg(feature = "metrics")]
mod export;
mod finish;
mod handle;
mod replica;

use crate::cache::{Cache, MemoryStore};
use crate::key::{Key, KeyFn};
use crate::retry::{Policy, Retry};
use crate::shard::{PlacementError, Shard, ShardBuildError, ShardId};
use crate::signal::CloneReplay;

pub use builder::StackBuilder;
pub use config::{ShardEntry, StackConfig, TimeoutConfig};
#[cfg(feature = "metrics")]
pub use export::breaker_state_value;
pub use finish::Finished;
pub use handle::{BalanceOf, BreakerOf, ReplicaBreaker, StackHandle, StackSnapshot};
pub use replica::{Guarded, Timed};

/// The built stack: the cache over the retry layer over the shard layer over
/// `Mem` (one balancer, or one quorum view, per shard).
pub type Stack<Mem, Req, K, C, F, A, P, R = CloneReplay> = Cache<
    Retry<Shard<Mem, K, R>, Policy<C, F, R, A>>,
    <Mem as tower_service::Service<Req>>::Response,
    CacheKey<K>,
    MemoryStore<<Mem as tower_service::Service<Req>>::Response>,
    P,
    C,
>;

/// The cache layer's key in a stack: the stack's key function, or no key at
/// all (every request passes through) when the stack has no `[cache]` table.
#[derive(Clone, Debug)]
pub struct CacheKey<K> {
    pub(crate) key: Option<K>,
}

impl<Req, K: KeyFn<Req>> KeyFn<Req> for CacheKey<K> {
    #[inline]
    fn key<'r>(&self, req: &'r Req) -> Option<Key<'r>> {
        self.key.as_ref()?.key(req)
    }
}

/// Why a stack could not be built, or a membership change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The configuration is invalid; the error names the field by its path.
    #[error(transparent)]
    Config(crate::config::ConfigError),
    /// The stack builder was called outside a tokio runtime.
    #[error(transparent)]
    NoRuntime(#[from] crate::NoRuntime),
    /// A shard's balancer could not be built.
    #[error("shard {shard}: {source}")]
    Balance {
        /// The shard.
        shard: ShardId,
        /// Why.
        source: Box<crate::balance::BalanceBuildError>,
    },
    /// The replicas' breakers could not be built.
    #[error("breakers: {0}")]
    Breaker(Box<crate::breaker::BreakerBuildError>),
    /// The shard layer could not be built.
    #[error("shard layer: {0}")]
    Shard(Box<ShardBuildError>),
    /// A membership change named a shard the stack does not have.
    #[error("no shard {0} in this stack")]
    UnknownShard(ShardId),
    /// A shard names a DNS `discovery` but the crate was built without its
    /// `dns` feature, so nothing could ever resolve it.
    #[error("shard {shard}: discovery = {name:?} needs tower-fleet's `dns` feature")]
    DiscoveryUnavailable {
        /// The shard.
        shard: ShardId,
        /// The name it gives.
        name: String,
    },
    /// A membership change was refused.
    #[error("shard {shard}: {source}")]
    Membership {
        /// The shard.
        shard: ShardId,
        /// Why.
        source: Box<crate::balance::MembershipError>,
    },
}

impl From<PlacementError> for StackError {
    fn from(e: PlacementError) -> Self {
        StackError::Shard(Box::new(ShardBuildError::Placement(e)))
    }
}
