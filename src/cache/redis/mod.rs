//! A shared Redis tier under the cache (feature `redis`).
//!
//! One gateway's in-process cache cannot see another gateway's writes, and
//! each gateway loads every key from the origin once per TTL on its own.
//! [`RedisStore`] is a cache [`Store`](super::Store) with two tiers: the
//! in-process [`MemoryStore`](super::MemoryStore) first, a Redis server
//! shared by every gateway second, and the origin (the cache's inner
//! service) last. A write through one gateway removes its key from Redis
//! and, over Redis pub/sub, from every gateway's first tier.
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use tower::service_fn;
//! use tower_fleet::cache::redis::{BytesCodec, RedisStore, RedisTierConfig};
//! use tower_fleet::cache::Cache;
//! use tower_fleet::key::Key;
//!
//! # #[tokio::main] async fn main() -> Result<(), tower_fleet::BoxError> {
//! let mut config = RedisTierConfig::default();
//! config.namespace = "catalog".into();
//! let store = RedisStore::connect("redis://127.0.0.1:6379/", config, BytesCodec)?;
//! let origin = service_fn(|path: String| async move {
//!     Ok::<_, std::io::Error>(Bytes::from(format!("contents of {path}")))
//! });
//! let cache = Cache::builder()
//!     .ttl(Duration::from_secs(30))
//!     .key(|path: &String| Some(Key::from(path.as_str())))
//!     .store(store.clone())
//!     .build(origin)?;
//! # let _ = cache;
//! # Ok(()) }
//! ```
//!
//! # Why the store is asynchronous only on a first-tier miss
//!
//! The [`Store`](super::Store) trait asks synchronously first
//! ([`Store::lookup_with`](super::Store::lookup_with)) and awaits
//! [`Store::get`](super::Store::get) only when the answer is
//! [`Lookup::Pending`](super::Lookup::Pending). `RedisStore` answers a
//! first-tier hit in place (no allocation, no lock beyond the first tier's
//! shard read lock, no network) and says "pending" on a first-tier miss;
//! the cache then awaits the Redis read inside the miss's response future.
//! So the fast hit path is unchanged, and only misses of the first tier pay
//! a round trip.
//!
//! # How it works
//!
//! - **Keys and values.** A key is stored as `<namespace>:d:<key bytes>`
//!   with `SET .. PX` of the entry's remaining lifetime (fresh time plus its
//!   longer stale window). The value is a 40-byte header (the namespace
//!   version, the Unix time it was stored, its ttl and stale windows) and
//!   the bytes of the [`Codec`] you choose: [`BytesCodec`] passes `Bytes`
//!   through, [`JsonCodec`] writes any serde type as JSON. Negatively cached
//!   errors stay in the first tier. Entry ages cross gateways by wall-clock
//!   time, so clock skew between gateways shifts them by that skew.
//! - **One ordered link.** One task sends every command to Redis, batched
//!   (up to `max_batch`) into one pipeline at a time on one multiplexed
//!   connection (redis-rs's `ConnectionManager`, which reconnects by
//!   itself), in the order the store was called. So an invalidation is
//!   applied in Redis before any read this gateway asks for after it:
//!   **read-your-writes through the gateway that wrote**.
//! - **Coalescing across tiers.** Concurrent misses of one key share one
//!   Redis read (`get` joins the read in flight), and after a Redis miss
//!   the cache's own coalescing makes one origin call. A stampede of a key
//!   makes at most one Redis GET and one origin call per gateway.
//! - **Invalidation fan-out.** An invalidation (a request whose
//!   [`RequestMode`](super::RequestMode) is `Invalidate`, or
//!   [`CacheHandle::invalidate`](super::CacheHandle::invalidate)) drops the
//!   key from this first tier at once, then in Redis bumps the key's
//!   version, deletes the value and publishes the key on
//!   `<namespace>:inv`. Every other gateway's subscriber drops the key from
//!   its first tier. `invalidate_all` bumps a namespace version instead
//!   (values written under an older one read as misses and expire by their
//!   TTL) and makes every gateway flush its first tier.
//! - **No resurrection: version-checked fills.** A gateway fills Redis
//!   only after a Redis miss of the key, and only while the key's version
//!   and the namespace version are still the ones that miss saw (a Lua
//!   script compares and sets atomically). A load that began before
//!   another gateway's write is therefore never written to Redis after that
//!   write's invalidation. In the first tier, a load (or Redis read) that
//!   began before an invalidation of its key arrived is not stored. The
//!   fence is kept per bucket of keys (1,024 buckets), so an invalidation
//!   may also skip a concurrent fill of another key of its bucket: a later
//!   miss, never a stale value. A load that followed a first-tier entry
//!   (a stale refresh) fills the first tier only.
//! - **Redis failure never fails a request.** Every batch goes through our
//!   [`CircuitBreaker`], bounded by
//!   `command_timeout`. A failed or refused read is a miss (the origin
//!   answers); a failed write is dropped. The breaker opens after
//!   repeated failures and refuses at once while open (its `open_mode` is
//!   always fail-fast here), then lets probes through: the tier recovers on
//!   its own when Redis returns. Watch it with [`RedisStore::breaker`].
//! - **Resubscribe flushes.** Pub/sub loses the messages sent while a
//!   subscriber is disconnected, so each (re)subscription flushes this
//!   gateway's first tier.
//!
//! # Guarantees
//!
//! - Read-your-writes through the gateway that wrote (the first tier is
//!   dropped at once; Redis sees the invalidation before any later read).
//! - Through other gateways, while Redis is up: an old value is served
//!   for at most the invalidation delay (the pub/sub round trip), and once
//!   the invalidation has arrived, never again.
//! - While Redis is down: each gateway serves from its first tier and the
//!   origin; other gateways' writes are not seen until the first tier's
//!   entries expire (their TTL bounds the staleness) or Redis returns (the
//!   resubscription flushes the first tier). An invalidation made while
//!   Redis is down is lost in Redis, so an old value may be read back from
//!   Redis until its own TTL ends.
//!
//! # Costs and defaults
//!
//! A first-tier hit costs what a [`MemoryStore`](super::MemoryStore) hit
//! costs. A first-tier miss costs one boxed future, one channel send and a
//! share of one pipeline round trip. Two background tasks run per store
//! (the link and the subscriber), started by [`RedisStore::connect`]
//! (which fails with a typed error outside a tokio runtime) and stopped
//! when the last clone of the store is dropped. Defaults: see
//! [`RedisTierConfig`].

mod codec;
mod config;
mod error;
mod link;
mod stats;
mod store;
mod subscribe;

pub use codec::{BytesCodec, Codec, JsonCodec};
pub use config::RedisTierConfig;
pub use error::RedisTierError;
pub use stats::RedisTierSnapshot;
pub use store::RedisStore;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::breaker::{BreakerHandle, CircuitBreaker, OpenMode};
use crate::config::Validate;
use crate::worker::Workers;
use crate::NoRuntime;
use link::{Link, Names};
use stats::TierStats;
use store::Tier;

impl<T: Clone + Send + Sync + 'static, C: Codec<T>> RedisStore<T, C> {
    /// A two-tier store on the Redis server at `url` (`redis://host:port/db`).
    ///
    /// Connects lazily: Redis need not be up yet (reads are misses until it
    /// is). Starts the link and subscriber tasks on the current tokio
    /// runtime; fails with [`RedisTierError::NoRuntime`] outside one, and
    /// with [`RedisTierError::Config`] on a value out of range.
    pub fn connect(url: &str, config: RedisTierConfig, codec: C) -> Result<Self, RedisTierError> {
        config.validate()?;
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| NoRuntime::new("RedisStore::connect"))?;
        let first = super::MemoryStore::new(config.first_tier_max_entries)?;
        let client = redis::Client::open(url).map_err(RedisTierError::Client)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(RedisTierError::Client)?;
        let mut breaker_config = config.breaker.clone();
        breaker_config.open_mode = OpenMode::FailFast;
        let link = Link {
            conn,
            timeout: config.command_timeout,
        };
        let breaker = CircuitBreaker::new(link, breaker_config)?;
        let breaker_handle = breaker.handle();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let names = Names::new(&config.namespace);
        let channel = names.channel.clone();
        let stats = Arc::new(TierStats::default());
        let workers = Workers::default();
        let stop = workers.stop_signal();
        let tier = Arc::new(Tier {
            first,
            codec,
            tx,
            namespace: config.namespace.clone(),
            id: rand::random(),
            fences: (0..1024).map(|_| AtomicU64::new(0)).collect(),
            fence_all: AtomicU64::new(0),
            tokens: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            stats: stats.clone(),
            breaker: breaker_handle,
            _workers: workers,
        });
        rt.spawn(link::run(rx, breaker, names, config.max_batch, stats));
        rt.spawn(subscribe::run(
            client,
            Arc::downgrade(&tier),
            channel,
            config.resubscribe_delay,
            stop,
        ));
        tracing::info!(namespace = %config.namespace, "redis tier started");
        Ok(RedisStore { tier })
    }
}

impl<T, C> RedisStore<T, C> {
    /// The tier's counters now.
    pub fn snapshot(&self) -> RedisTierSnapshot {
        self.tier.stats.snapshot()
    }

    /// The breaker around Redis: its state, its transitions.
    pub fn breaker(&self) -> BreakerHandle {
        self.tier.breaker.clone()
    }

    /// The in-process first tier.
    pub fn first_tier(&self) -> &super::MemoryStore<T> {
        &self.tier.first
    }
}
