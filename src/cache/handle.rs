//! `CacheHandle`: invalidation and counters.

use std::fmt;
use std::sync::Arc;

use super::core::Core;
use super::memory::MemoryStore;
use super::store::Store;

/// Reaches a [`Cache`](super::Cache)'s shared state: invalidate keys, store
/// a value, read the counters. Cheap to clone; keeps the store alive.
///
/// Invalidation takes effect when the method returns: the key is never
/// served from this cache afterwards, and a load of it that started before
/// the call answers its own callers but does not fill the store. So a writer
/// that invalidates after its write completes never reads its old value back
/// through this cache. The returned future completes when the store has
/// applied the change: at once for the in-memory store; a remote store
/// finishes in the background if the future is dropped.
///
/// ```
/// use std::convert::Infallible;
/// use tower::{service_fn, Service, ServiceExt};
/// use tower_fleet::cache::Cache;
/// use tower_fleet::key::Key;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
/// let mut cache = Cache::builder()
///     .key(|req: &String| Some(Key::from(req.as_str())))
///     .build(service_fn(|req: String| async move { Ok::<_, Infallible>(format!("v({req})")) }))?;
/// cache.ready().await?.call("a".to_string()).await?;
/// cache.ready().await?.call("a".to_string()).await?;
/// let handle = cache.handle();
/// assert_eq!((handle.snapshot().hits, handle.snapshot().loads), (1, 1));
///
/// handle.invalidate("a").await;
/// cache.ready().await?.call("a".to_string()).await?;
/// assert_eq!(handle.snapshot().loads, 2);
/// # Ok(()) }
/// ```
pub struct CacheHandle<T, St = MemoryStore<T>> {
    pub(crate) core: Arc<Core<T, St>>,
}

impl<T, St> Clone for CacheHandle<T, St> {
    fn clone(&self) -> Self {
        CacheHandle {
            core: self.core.clone(),
        }
    }
}

impl<T, St> fmt::Debug for CacheHandle<T, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle").finish_non_exhaustive()
    }
}

impl<T: Clone, St: Store<T>> CacheHandle<T, St> {
    /// Invalidates `key` and every variant stored under it (secondary keys).
    pub fn invalidate(&self, key: impl AsRef<[u8]>) -> St::Done {
        self.core.invalidate(key.as_ref())
    }

    /// Invalidates every key.
    pub fn invalidate_all(&self) -> St::Done {
        self.core.invalidate_all()
    }

    /// Stores `value` for `key` with the configured freshness (a
    /// write-through), replacing what was stored; loads of the key in
    /// progress do not overwrite it.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: T) -> St::Done {
        self.core.put(key.as_ref(), value)
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> CacheSnapshot {
        let s = &self.core.stats;
        let store = self.core.store.stats();
        CacheSnapshot {
            hits: s.hits.get(),
            stale_hits: s.stale_hits.get(),
            negative_hits: s.negative_hits.get(),
            stale_if_error: s.stale_if_error.get(),
            misses: s.misses.get(),
            coalesced: s.coalesced.get(),
            loads: s.loads.get(),
            load_errors: s.load_errors.get(),
            refreshes: s.refreshes.get(),
            not_stored: s.not_stored.get(),
            handovers: s.handovers.get(),
            wait_timeouts: s.wait_timeouts.get(),
            deadline_exceeded: s.deadline_exceeded.get(),
            passed_through: s.passed_through.get(),
            invalidations: s.invalidations.get(),
            evictions: store.evictions.unwrap_or(0),
            entries: store.entries.unwrap_or(0),
        }
    }
}

/// Counters of a [`Cache`](super::Cache), read through [`CacheHandle::snapshot`].
/// Each is a relaxed atomic read: the fields are not one consistent cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSnapshot {
    /// Requests answered with a fresh stored response.
    pub hits: u64,
    /// Requests answered with a stale response while it was refreshed
    /// (stale-while-revalidate).
    pub stale_hits: u64,
    /// Requests answered with a negatively cached error.
    pub negative_hits: u64,
    /// Requests answered with a stale response because the load failed
    /// (stale-if-error).
    pub stale_if_error: u64,
    /// Requests that found no servable entry.
    pub misses: u64,
    /// Misses that waited for another request's load instead of calling upstream.
    pub coalesced: u64,
    /// Upstream calls made for the cache: miss loads, background refreshes,
    /// and waiters that stopped waiting.
    pub loads: u64,
    /// Loads that failed (an error, or a response the classifier calls a failure).
    pub load_errors: u64,
    /// Background refreshes started (stale-while-revalidate, early refresh).
    pub refreshes: u64,
    /// Loads whose answer was not stored because the key was invalidated
    /// while they ran.
    pub not_stored: u64,
    /// Loads handed from a cancelled caller to a waiter.
    pub handovers: u64,
    /// Waiters that stopped waiting after `coalesce_timeout` and went upstream.
    pub wait_timeouts: u64,
    /// Requests whose deadline passed while they waited for a load.
    pub deadline_exceeded: u64,
    /// Requests without a key, passed through uncached.
    pub passed_through: u64,
    /// Calls to `invalidate` and `invalidate_all`.
    pub invalidations: u64,
    /// Entries the store evicted to make room (0 if the store does not say).
    pub evictions: u64,
    /// Entries the store holds now (0 if the store does not say).
    pub entries: u64,
}

pub(crate) use crate::metrics::Counter;

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) hits: super::hits::Hits,
    pub(crate) stale_hits: Counter,
    pub(crate) negative_hits: Counter,
    pub(crate) stale_if_error: Counter,
    pub(crate) misses: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) loads: Counter,
    pub(crate) load_errors: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) not_stored: Counter,
    pub(crate) handovers: Counter,
    pub(crate) wait_timeouts: Counter,
    pub(crate) deadline_exceeded: Counter,
    pub(crate) passed_through: Counter,
    pub(crate) invalidations: Counter,
}
