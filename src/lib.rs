//! # tower-fleet
//!
//! The building blocks of a horizontally scalable client (or gateway) as
//! composable [`tower`] middleware: consistent-hash sharding, load balancing,
//! circuit breaking, retry and caching. Put them in front of hyper, tonic or
//! axum clients and get a client that spreads load over a fleet of backends,
//! keeps every key on the shard that owns it, survives broken and slow
//! backends, and answers hot reads from cache.
//!
//! ## The canonical stack
//!
//! ```text
//! Cache            answers hits without touching the network; one upstream call per key under a stampede
//!  └ Retry         re-sends transient failures: jittered backoff, bounded by a retry budget
//!     └ Shard      sends each key to the shard that owns it (consistent hash)
//!        └ Balance one per shard: spreads its traffic over the shard's replicas, ejects outliers;
//!                  or fans a request out to several replicas and waits for a quorum
//!           └ CircuitBreaker   one per replica: an open breaker reports not-ready, so Balance skips it
//!              └ tower::timeout::Timeout → the transport (hyper, tonic, a channel, ...)
//! ```
//!
//! The stack fans out (one balancer per shard, one breaker per replica), so it
//! is not one `ServiceBuilder` chain. Each layer also works alone around any
//! suitable service. The layers meet through small shared types rather than
//! through each other: [`key`] (what a request's key is and how it hashes),
//! [`classify`] (what counts as a failure), [`signal`] (health, "unavailable,
//! retry after", deadlines, attempt marks), [`clock`] (injectable time) and
//! [`config`] (validated, serde-friendly configuration).
//!
//! ## The layers
//!
//! - [`cache`]: hits answered without touching the network or allocating,
//!   one upstream call per key under a stampede, stale serving (while
//!   revalidating, and when the backend fails), invalidation.
//! - [`retry`]: jittered backoff, a lock-free retry budget, retry-after hints
//!   and hedging, as one [`Retry`] layer.
//! - [`shard`]: consistent-hash sharding (Maglev, ring, rendezvous, jump,
//!   Memento), bounded loads, failover along the preference list.
//! - [`balance`]: load balancing over a shard's replicas (P2C peak-EWMA,
//!   least request, round robin, random), with outlier ejection, health
//!   checks and slow start; and quorum fan-out over the same replicas
//!   (W of N writes, R of N reads, merged, with a repair report).
//! - [`breaker`]: resilience4j-grade circuit breaking (count and time
//!   windows, slow calls, half-open probes, fail-fast or not-ready when open),
//!   lock-free on the closed-state path, publishing its health to balancers.
//! - [`stack`]: one configuration document and a connector in, the whole
//!   canonical stack out, with one handle on every layer.
//! - `http` (feature `http`): HTTP and gRPC for every layer: key
//!   extractors, classification (gRPC statuses in trailers too), retries by
//!   method, `Retry-After`, body replay, an RFC 9111 cache policy.
//! - `cache::redis` (feature `redis`): a Redis tier shared by gateways under
//!   the in-process cache, with invalidation fan-out over pub/sub.
//! - `discover` (feature `dns`): a shard's replicas found by resolving a
//!   DNS name every interval (a Kubernetes headless Service), as
//!   `tower::discover` changes; a failed resolution keeps the membership.
//!
//! The whole stack over two shards of two in-process replicas, from one
//! document:
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
//!     id = "shard-a"
//!     replicas = ["a1", "a2"]
//!     [[shards]]
//!     id = "shard-b"
//!     replicas = ["b1", "b2"]
//! "#)?;
//! // Each replica says who answered; in a real fleet, a client bound to the address.
//! let connect = |address: &str| {
//!     let address = address.to_string();
//!     service_fn(move |key: String| {
//!         let address = address.clone();
//!         async move { Ok::<_, Infallible>(format!("{address} owns {key}")) }
//!     })
//! };
//! let (mut fleet, handle) = StackBuilder::new(config)
//!     .connector(connect)
//!     .key(|req: &String| Some(Key::from(req.as_str())))
//!     .build()?;
//!
//! for key in ["user:1", "user:2", "user:3"] {
//!     let answer = fleet.ready().await?.call(key.to_string()).await?;
//!     // The answer came from a replica of the shard that owns the key.
//!     let owner = handle.shard().route(key.as_bytes()).unwrap();
//!     assert!(answer.starts_with(&owner.as_str()[6..]), "{answer} not from {owner}");
//! }
//! // The second read of a key is a cache hit: no replica is asked.
//! fleet.ready().await?.call("user:1".to_string()).await?;
//! assert_eq!(handle.cache().unwrap().snapshot().hits, 1);
//! # Ok(()) }
//! ```
//!
//! ## Guarantees that hold everywhere
//!
//! - Keys hash stably: routing agrees across processes, machines, platforms
//!   and crate versions (see [`key`]).
//! - Bad input (invalid configuration, empty membership, a request without a
//!   key) is a typed error, never a panic or a hang.
//! - Routers are ready without waiting on every inner service; every wait is
//!   bounded by a configured limit and the request's deadline.
//! - Hot paths take no lock; membership changes rebuild immutable tables off
//!   the request path.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod balance;
pub mod breaker;
pub mod cache;
pub mod classify;
pub mod clock;
pub mod config;
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub mod discover;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod key;
mod metrics;
pub mod retry;
pub mod shard;
pub mod signal;
pub mod stack;
mod worker;

/// The boxed error type the layers accept from inner services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A constructor that starts a background task was called outside a tokio
/// runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs a tokio runtime: call it from within one")]
pub struct NoRuntime {
    what: &'static str,
}

impl NoRuntime {
    pub(crate) fn new(what: &'static str) -> NoRuntime {
        NoRuntime { what }
    }
}

/// The README's code, compiled and run as a doc test so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(feature = "http")]
pub use crate::http::{Http, HttpCachePolicy, HttpClassify, HttpConfig, HttpRetryPolicy};
pub use balance::{
    Balance, BalanceConfig, BalanceError, BalanceHandle, BalanceLayer, Quorum, QuorumConfig,
    QuorumError, Strategy,
};
pub use breaker::{BreakerConfig, BreakerError, CircuitBreaker, CircuitBreakerLayer};
pub use cache::{Cache, CacheConfig, CacheError, CacheHandle, CacheLayer};
pub use classify::{Classify, Outcome};
pub use clock::Clock;
pub use config::{ConfigError, Validate};
pub use key::{Key, KeyFn, KeyHasher};
pub use retry::{Retry, RetryConfig, RetryError, RetryHandle, RetryLayer};
pub use shard::{Shard, ShardConfig, ShardError, ShardLayer};
