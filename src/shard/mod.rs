//! Consistent-hash sharding: send each key to the shard that owns it.
//!
//! A fleet keeps each key's data (or its cache entries) on one shard, so that
//! state stays local and adding a shard adds capacity. The [`Shard`] service
//! takes a request's key with a [`KeyFn`](crate::key::KeyFn), hashes its bytes
//! with a stable [`KeyHasher`](crate::key::KeyHasher), asks a [`Placement`]
//! which shard owns the hash, and sends the request to that shard's service.
//! When the membership changes, consistent hashing moves as few keys as
//! possible.
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::key::Key;
//! use tower_fleet::shard::{Member, Shard};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
//! // Three in-process "nodes" that say who answered.
//! let node = |name: &'static str| service_fn(move |key: String| async move {
//!     Ok::<_, Infallible>(format!("{key} lives on {name}"))
//! });
//! let mut shard = Shard::builder()
//!     .key(|req: &String| Some(Key::from(req.as_str())))
//!     .members(["a", "b", "c"].map(|n| Member::new(n, node(n))))
//!     .build()?;
//!
//! let answer = shard.ready().await?.call("user:42".into()).await?;
//! let owner = shard.handle().route(b"user:42").unwrap();
//! assert_eq!(answer, format!("user:42 lives on {owner}"));
//! # Ok(()) }
//! ```
//!
//! # Placement algorithms
//!
//! | | [`Maglev`] (default) | [`HashRing`] | [`Rendezvous`] | [`Jump`] | [`Memento`] |
//! |---|---|---|---|---|---|
//! | lookup | O(1): a multiply and a load | O(1) expected: a radix index, then about one point | O(N): one 64-bit mix per shard | O(log N): the jump loop | O(log N) jump, then O(1) expected for keys of removed shards |
//! | arbitrary removal | yes | yes | yes | no: grows and shrinks at the end only (a typed error otherwise) | yes |
//! | weights | yes | yes | yes | no | no |
//! | independent of insertion order | yes | yes | yes | yes: a shard's bucket is the number its id ends in | no |
//! | exact minimal disruption | no: 1.03x the optimum at 10 shards, 1.6x at 100, about 6x at 500 | yes | yes | yes (at the end) | yes |
//! | needs an ordered membership log | no | no | no | no | yes |
//! | `preference_list(k)[1]` is where `k` goes if its owner leaves | no | yes | yes | no | yes |
//! | balance at 100 shards, 1M keys (peak / mean; the floor is 1.02) | 1.020 | 1.227 at 160 points, 1.063 at 1,000 | 1.031 | 1.031 | 1.031 |
//! | lookup at 100 shards, random keys (BENCHMARKS.md) | ~1.4x the key hash | ~1.7x the key hash | ~3 ns per shard (~9 ns weighted) | ~the plain jump function | ~the plain jump function |
//!
//! Which to pick, from these measurements:
//!
//! - **Maglev** where an even spread and the fastest lookup matter and
//!   membership changes are rare or cheap: routing to caches, stateless
//!   fleets, stateful fleets of a few dozen shards. At hundreds of shards a
//!   change moves several times the keys it must.
//! - **Ring** when a change must move no key it need not and shards are
//!   weighted, or when a key's second shard must be exactly where it goes
//!   after its owner fails (replication along the preference list). Give it
//!   1,000 points per shard if balance matters more than memory.
//! - **Rendezvous** for small weighted fleets (tens of shards) that want the
//!   ring's exactness with perfect balance and no table at all; its O(N)
//!   lookup makes it the slowest choice past a hundred shards.
//! - **Jump** for numbered, append-only shards (storage partitions, a
//!   Kubernetes StatefulSet whose pods end in their ordinal): perfect balance,
//!   exact moves, no memory.
//! - **Memento** for large fleets that remove arbitrary shards and can give
//!   every router the same ordered membership log (a config file, a
//!   consensus store): exact moves, jump-like speed and balance.
//!
//! [Bounded loads](BoundedLoadsConfig) work with every algorithm, through its
//! preference list, for stateless fleets with hot keys.
//!
//! # Failover: which model you get
//!
//! - **Strict ownership (`hops = 0`, the default)** is for stateful shards: a
//!   key's data lives only on its owner, so no other shard may answer for it.
//!   If the owner's health signal says it is unavailable (its breaker is open,
//!   its balancer has no live replica), the request fails at once with
//!   [`ShardError::Unavailable`] carrying the retry-after; if the owner's
//!   service does not become ready within `ready_timeout` (or the request's
//!   deadline), the request fails with the same error, and the shard is
//!   reported in the counters. A failed shard is never removed from placement:
//!   its keys must not move to shards that do not hold their data.
//! - **Failover (`hops > 0`)** is for stateless or cache-like fleets, where any
//!   shard can serve any key and placement is only for locality. A request
//!   whose owner is known unavailable, is not ready in time, or answers with an
//!   error carrying the unavailable signal moves on along the key's preference
//!   list, up to `hops` shards after the owner. Moving on after an answer needs
//!   a copy of the request made before the call: give the builder a
//!   [`Replay`](crate::signal::Replay) (e.g. [`CloneReplay`](crate::signal::CloneReplay)).
//!
//! - **Bounded loads** ([`ShardConfig::bounded_loads`], also for stateless
//!   fleets): no shard takes more than `ceil(c × (requests in flight + 1) / N)`
//!   requests at once; a request goes to the first shard of its preference
//!   list under that cap (skipping shards whose health says unavailable), so a
//!   hot key spills over to the next shards and returns to its owner as soon
//!   as the owner's load falls. The load is taken with a compare-and-swap, so
//!   racing callers cannot push a shard past the cap. A shard's load is given
//!   back when its response arrives or the request is dropped.
//!
//! # Readiness
//!
//! `poll_ready` cannot see the request, so a router cannot know there which
//! shard it will need. `Shard` is therefore always ready: `call` clones the
//! owner's service (hyper clients, tonic channels and the crate's balancers
//! and breakers are cheap to clone) and drives that clone's readiness inside
//! the response future. One slow or stuck shard never blocks requests bound
//! for other shards, and no request waits longer than `ready_timeout` or its
//! deadline ([`Carrier::deadline`](crate::signal::Carrier::deadline)).
//!
//! # Membership
//!
//! The membership is set by the builder, changed through a [`ShardHandle`], or
//! fed by a `tower::discover::Discover` stream ([`ShardBuilder::discover`]).
//! Each change builds a new immutable table off the request path and swaps it
//! in; lookups never wait for a build, and requests in flight complete on the
//! table they were routed with.
//!
//! # Errors
//!
//! [`ShardError`] wraps the inner service's error with the shard's id
//! ([`ShardError::Inner`]); a request without a key, an empty membership and
//! an unavailable owner each have their own variant. The shared signals stay
//! findable through [`ErrorSignals`](crate::signal::ErrorSignals).

mod bounded;
mod config;
mod discover;
mod error;
mod future;
mod handle;
mod jump;
mod layer;
mod maglev;
mod memento;
mod placement;
mod rendezvous;
mod ring;
mod service;

pub use config::{BoundedLoadsConfig, PlacementConfig, ShardConfig, MAX_HOPS};
pub use error::{PlacementError, ShardBuildError, ShardError};
pub use future::ResponseFuture;
pub use handle::{Member, ShardHandle, ShardSnapshot, ShardStats};
pub use jump::{jump_hash, Jump};
pub use layer::{ShardBuilder, ShardLayer};
pub use maglev::{Maglev, DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE};
pub use memento::{LogEntry, Memento};
pub use placement::{Placement, PlacementTable, ShardId, ShardSpec, MAX_SHARDS};
pub use rendezvous::Rendezvous;
pub use ring::{HashRing, DEFAULT_POINTS_PER_WEIGHT, MAX_POINTS};
pub use service::Shard;
