//! Caching with miss coalescing and stale serving.
//!
//! A cache in front of a fleet answers hot reads without touching the
//! network. Done badly, it stampedes the backend each time a hot key expires,
//! burns CPU in the requests that wait for a load, and hangs them when the
//! caller that started the load goes away. The [`Cache`] service is nearly
//! free on a hit (no allocation, no lock taken for writing), calls the
//! backend once per key however many requests miss at once, serves stale
//! data when that is the kinder answer, and never leaves a request waiting
//! for a load that nobody drives.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::cache::Cache;
//! use tower_fleet::key::Key;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
//! let backend = service_fn(|path: String| async move {
//!     Ok::<_, std::io::Error>(Bytes::from(format!("contents of {path}")))
//! });
//! let mut cache = Cache::builder()
//!     .max_entries(10_000)
//!     .ttl(Duration::from_secs(30))
//!     .stale_while_revalidate(Duration::from_secs(5))
//!     .stale_if_error(Duration::from_secs(300))
//!     .key(|path: &String| Some(Key::from(path.as_str())))
//!     .build(backend)?;
//!
//! let first = cache.ready().await?.call("/a".to_string()).await?;  // a miss: loaded
//! let again = cache.ready().await?.call("/a".to_string()).await?;  // a hit
//! assert_eq!(first, again);
//! let stats = cache.handle().snapshot();
//! assert_eq!((stats.misses, stats.hits, stats.loads), (1, 1, 1));
//! # Ok(()) }
//! ```
//!
//! # How a request is answered
//!
//! The [`KeyFn`](crate::key::KeyFn) gives the request's key, borrowed from the
//! request (a request without a key passes through uncached). The store is
//! asked synchronously, with the key's bytes, and the entry's age, judged in
//! place in the store ([`Store::lookup_with`]), decides:
//!
//! - **fresh** (younger than its `ttl`): a clone of the stored response,
//!   answered in `call`; the future is ready on its first poll. The inner
//!   service is not touched, so hits are served while the backend is
//!   saturated or failing. Responses are cloned: use `Bytes` or `Arc<_>`.
//! - **stale, within `stale_while_revalidate`**: the stale response at once,
//!   and exactly one background refresh of the key (a tokio task).
//! - **stale, within `stale_if_error`**: a miss, but if the load fails the
//!   stale response is the answer instead of the error.
//! - **absent or dead**: a miss.
//!
//! A miss joins the load of its key already in flight, or starts one. The
//! first caller drives the load inside its own response future: it clones the
//! inner service, drives its readiness (at most `ready_timeout`, then
//! [`CacheError::Overloaded`], which carries the shared
//! [`Unavailable`](crate::signal::Unavailable) signal of kind `Overloaded`),
//! and calls it. The answer is stored if the [`Policy`] says so (by default
//! every `Ok` response, filtered by `cache_if`, for the configured freshness;
//! errors only with a `negative_ttl`) and handed to every waiter.
//!
//! # Miss coalescing: guarantees
//!
//! - **One upstream call per key**: concurrent misses of a key share one load.
//!   A thousand requests for a missing key make one call and get one answer;
//!   if it fails, all of them get the same error, shared behind an `Arc`
//!   ([`SharedError`]), and the next request tries again.
//! - **Waiters never spin**: a waiter is polled once to register its waker and
//!   once when woken with the result, whatever the upstream's latency or its
//!   own wake-ups. Its CPU cost does not grow with the wait.
//! - **Cancel safety**: dropping a response future is always safe. A dropped
//!   driver leaves its call in flight for a waiter to take over and drive on
//!   (counted in [`CacheSnapshot::handovers`]); the call is never restarted.
//!   When no caller waits any more, the call is dropped (cancelled).
//! - **Bounded waits**: a waiter's wait ends by its request's deadline
//!   ([`Carrier::deadline`](crate::signal::Carrier::deadline);
//!   [`CacheError::DeadlineExceeded`], or the stale entry if it is within its
//!   stale-if-error window); with `coalesce_timeout`, a waiter that waited
//!   that long stops waiting and calls upstream itself.
//! - A load that panics wakes its waiters with [`CacheError::LoadPanicked`].
//!
//! # Stale serving and what a failure is
//!
//! Stale-if-error serves the stale entry when a load *fails*: when the
//! crate's [`Classify`](crate::classify::Classify) (given to
//! [`CacheBuilder::classify`]; by default every error) calls the outcome a
//! failure, or when the error carries the shared unavailable signal whatever
//! the classifier says (an open breaker, a shard with no replica, load
//! shedding). A response the classifier calls a failure (an HTTP 503, say) is
//! never stored, so it cannot displace the value stale-if-error serves.
//! Background refreshes (stale-while-revalidate, early refresh) are loads
//! like any other, one at a time per key (a miss of the key joins a refresh
//! in flight); a failed refresh leaves the stale entry in place, and the next
//! stale hit starts another.
//!
//! Early refresh (`early_refresh`, XFetch by Vattani, Chierichetti and
//! Lowenstein): a hit on a fresh entry starts a background refresh when
//! `now + delta * beta * -ln(u)` reaches the entry's expiry, with `delta` the
//! time its load took and `u` uniform in (0, 1]. Hot keys are then refreshed
//! shortly before they expire, and their readers never wait for a load.
//!
//! # Invalidation
//!
//! [`CacheHandle::invalidate`] (one key and its variants),
//! [`CacheHandle::invalidate_all`] and [`CacheHandle::insert`] take effect
//! when they return. A load that started before an invalidation answers its
//! own callers, but does not fill the store: each key with loads in progress
//! has a generation, bumped by an invalidation, and a load fills the store
//! only if the generation (and the cache's epoch, bumped by
//! `invalidate_all`) is still the one it started under; the check and the
//! store write happen under the same per-key lock as the invalidation. So a
//! writer that invalidates after its write completes never reads its old
//! value back through the cache.
//!
//! # Stores
//!
//! The [`Store`] trait has a synchronous [`lookup`](Store::lookup) (and
//! [`lookup_with`](Store::lookup_with), which lets the cache judge the entry
//! in place and clone only the response it serves) that an in-memory store
//! answers at once, keeping a hit free of allocations and of extra polls;
//! and asynchronous reads and writes for stores that must wait (a remote
//! tier). The cache keeps the expiry metadata in each [`Entry`] and
//! judges ages itself; a store only keeps entries, and may drop one after
//! [`Entry::expires_at`].
//!
//! The default [`MemoryStore`] is built on `quick_cache` (S3-FIFO eviction;
//! `quick_cache` tables in shards behind read-write locks of the store's own,
//! so that a hit is judged under the read lock; keys hashed once, packed into
//! two words when short), bounded by entry count or by a weigher. It was chosen over moka by `benches/cache.rs`, which
//! measures both with expiry in the same run (BENCHMARKS.md has the
//! figures): a `quick_cache` get plus the layer's own expiry check cost
//! about a third of a moka get with its built-in time-to-live, and on a
//! Zipf(1.0) trace its hit ratio was above moka's and 8 points above an
//! LRU's. moka's own expiry and time-to-idle bring nothing the layer needs:
//! stale windows, per-response freshness and generations must live beside the
//! value anyway.
//!
//! # How a hit tells the time
//!
//! A hit needs the time only to tell that its entry has not expired, and
//! reading the clock costs about as much as the whole store lookup on some
//! virtual machines. So by default ([`CacheConfig::clock_resolution`], 10ms)
//! a task on the runtime the cache is built in writes the time every 10ms,
//! and a hit whose entry is fresh for more than three ticks (30ms) after the
//! last one is served without reading the clock. A hit closer to its
//! entry's expiry (or past it), and every entry's age beyond freshness, are
//! judged by the clock, exactly. The bound this gives:
//!
//! - While the tick task runs at most two resolutions late, no entry is
//!   served a nanosecond past its expiry: the semantics are those of a
//!   clock read per hit.
//! - A tick task late by `d` more than that (a runtime starved for `d`) lets
//!   an entry be served fresh for less than `d` past its expiry. Blocking a
//!   runtime's thread starves it like any other task: on a current-thread
//!   runtime, a hit right after a `std::thread::sleep` of a second may be
//!   judged by a tick a second old. Set `clock_resolution = "0s"` where
//!   every hit must be judged by the clock whatever the runtime does.
//! - When the runtime shuts down, the bound stops vouching: every hit reads
//!   the clock.
//! - With tokio's time paused (tests), outside a runtime, with
//!   `early_refresh`, or with a clock given to [`CacheBuilder::clock`],
//!   every hit reads the clock: tests that move time with `advance` see
//!   exact expiry.
//!
//! Each cache built with the default runs one tick task: a wake-up every
//! resolution.
//!
//! # The policy hook
//!
//! [`Policy`] decides what is stored and for how long (per response), adds a
//! secondary key to a request (HTTP `Vary`), and revalidates stale entries
//! with a conditional request whose "not modified" answer refreshes the
//! entry. The `http` feature fills it from RFC 9111; the default
//! ([`DefaultPolicy`]) stores every `Ok` response that passes `cache_if`.
//!
//! # Errors
//!
//! The inner service's errors are wrapped, shared, in
//! [`CacheError::Upstream`]: every caller of one load gets a clone of the same
//! error (and a negatively cached error is a clone of the one stored). The
//! shared signals stay findable through
//! [`ErrorSignals`](crate::signal::ErrorSignals) or
//! [`find_unavailable`](crate::signal::find_unavailable).
//!
//! # Costs and what may block
//!
//! - A hit: the key function; one store lookup (a hash of the key bytes,
//!   one shard's read lock, the entry judged where it lies); one atomic load
//!   of the ticked time bound instead of a clock read (see below); one
//!   reference-count increment (the response); one count of the hit, on a
//!   counter line the calling thread owns (no locked instruction). No
//!   allocation, and no write to memory another thread writes (but the
//!   access time, every 1/32 of `time_to_idle`, when that is set). The
//!   response future of a hit holds only the response. BENCHMARKS.md has
//!   the measured cost against a bare store get.
//! - A miss: a few allocations (the owned key, the flight, the boxed load) and
//!   one of 64 short-held per-key-shard locks, taken again when the load ends.
//!   Store writes ([`Store::insert`], [`Store::invalidate`]) are called under
//!   that lock: a store must not block in them (it may return a future the
//!   cache completes in the background).
//! - No lock is held across an `.await` or while the inner service runs.
//!
//! # Defaults
//!
//! | knob | default | |
//! |---|---|---|
//! | `max_entries` | 10,000 | or a weigher's `max_weight` |
//! | `ttl` | 60s | per response through the [`Policy`] |
//! | `time_to_idle` | off | |
//! | `stale_while_revalidate` | 0 (off) | |
//! | `stale_if_error` | 0 (off) | |
//! | `negative_ttl` | off | errors are not cached |
//! | `ready_timeout` | 1s | the miss's wait for readiness |
//! | `coalesce_timeout` | off | waiters wait for the load or their deadline |
//! | `early_refresh` | off | `beta`, 1.0 is usual |
//! | `clock_resolution` | 10ms | the hit path's ticked time bound; `0s`: a clock read per hit |
//!
//! See [`CacheConfig`] for what each knob does and when to change it.

mod builder;
mod config;
mod core;
mod entry;
mod error;
mod flight;
mod future;
mod handle;
mod hits;
mod horizon;
mod judge;
mod layer;
mod load;
mod make_store;
mod memory;
mod miss;
mod policy;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod refresh;
mod service;
mod slot;
mod solo;
mod store;

pub use builder::CacheBuilder;
pub use config::{CacheConfig, DEFAULT_CLOCK_RESOLUTION, MAX_EARLY_REFRESH_BETA};
pub use entry::{Entry, Freshness};
pub use error::{CacheError, SharedError};
pub use future::ResponseFuture;
pub use handle::{CacheHandle, CacheSnapshot};
pub use layer::CacheLayer;
pub use make_store::{DefaultStore, GivenStore, MakeStore};
pub use memory::MemoryStore;
pub use policy::{DefaultPolicy, Policy, RequestMode, StoreEveryOk};
pub use service::Cache;
pub use store::{CacheKey, Lookup, Store, StoreStats};
