//! What all clones of a `Cache` (and its handle) share: the store, the
//! per-key load registry with its generations, and the counters.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::Duration;

use super::entry::{Entry, Freshness};
use super::flight::{Fence, Flight, Waiter};
use super::handle::Stats;
use super::horizon::Horizon;
use super::load::{BoxLoad, LoadOutput, Shared};
use super::store::{CacheKey, Store};
use crate::clock::Clock;

/// Shards of the load registry (misses and invalidations lock one).
const SHARDS: usize = 64;
/// Buckets of variant generations (see [`Core::variant_fence`]).
const VARIANT_BUCKETS: usize = 1024;

/// The registry's record of one key with loads in progress.
struct KeyState<T> {
    /// Bumped by each invalidation of the key: a load that started under an
    /// older generation never fills the store.
    gen: u64,
    /// Loads of the key in progress (flights and uncoalesced loads).
    loads: u32,
    /// The flight new misses join, if any.
    flight: Option<Arc<Flight<T>>>,
}

impl<T> Default for KeyState<T> {
    fn default() -> Self {
        KeyState {
            gen: 0,
            loads: 0,
            flight: None,
        }
    }
}

type Shard<T> = Mutex<HashMap<CacheKey, KeyState<T>>>;

/// Settings the core reads on hits and misses.
pub(crate) struct Settings {
    pub(crate) freshness: Freshness,
    pub(crate) tti: Option<Duration>,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) coalesce_timeout: Option<Duration>,
}

pub(crate) struct Core<T, St> {
    pub(crate) store: St,
    pub(crate) clock: Clock,
    /// When set, hits prove entries fresh from it without reading `clock`.
    pub(crate) horizon: Option<Horizon>,
    pub(crate) settings: Settings,
    pub(crate) stats: Stats,
    shards: Box<[Shard<T>]>,
    /// Bumped by `invalidate_all`, with every shard locked.
    epoch: AtomicU64,
    pub(crate) variants: Box<[AtomicU64]>,
}

/// Invalidates a key when dropped: held by a request that changes the
/// resource (an unsafe HTTP method), so that the key is invalidated when its
/// answer arrives, or when it is cancelled after it may have been sent.
pub(crate) struct Invalidation<T: Clone, St: Store<T>> {
    core: Arc<Core<T, St>>,
    key: CacheKey,
}

impl<T: Clone, St: Store<T>> Invalidation<T, St> {
    pub(crate) fn new(core: Arc<Core<T, St>>, key: CacheKey) -> Self {
        Invalidation { core, key }
    }
}

impl<T: Clone, St: Store<T>> Drop for Invalidation<T, St> {
    fn drop(&mut self) {
        finish_write(self.core.invalidate(self.key.as_bytes()));
    }
}

/// How a miss proceeds.
pub(crate) enum Joined<T: Clone, St: Store<T>> {
    /// Another caller's load is in flight: wait for it.
    Wait(Waiter<T, St>),
    /// This caller leads a new flight: it must drive a load for it.
    Lead(Arc<Flight<T>>),
}

fn shard_of(key: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) as usize) & (SHARDS - 1)
}

fn bucket_of(primary: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64_with_seed(primary, 0x7661_7279) as usize) & (VARIANT_BUCKETS - 1)
}

/// Completes a store write: at once for in-memory stores, in the background
/// for stores that must wait.
pub(crate) fn finish_write<F: Future<Output = ()> + Send + Unpin + 'static>(mut write: F) {
    let mut cx = Context::from_waker(Waker::noop());
    if Pin::new(&mut write).poll(&mut cx).is_ready() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(write);
        }
        Err(_) => tracing::warn!("cache store write dropped: no tokio runtime to complete it"),
    }
}

impl<T: Clone, St: Store<T>> Core<T, St> {
    pub(crate) fn new(
        store: St,
        clock: Clock,
        horizon: Option<Horizon>,
        settings: Settings,
    ) -> Core<T, St> {
        Core {
            store,
            clock,
            horizon,
            settings,
            stats: Stats::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            epoch: AtomicU64::new(0),
            variants: (0..VARIANT_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, HashMap<CacheKey, KeyState<T>>> {
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The variant bucket of a primary key and its generation now.
    ///
    /// Entries stored under a secondary key (HTTP `Vary`) cannot be found
    /// from their primary key, so invalidating the primary key bumps the
    /// generation of its bucket instead, and a variant entry (or load) of an
    /// older generation is treated as absent. Primary keys that share a
    /// bucket invalidate each other's variants: extra misses, never a stale
    /// answer.
    pub(crate) fn variant_fence(&self, primary: &[u8]) -> (usize, u64) {
        let b = bucket_of(primary);
        (b, self.variants[b].load(Ordering::Acquire))
    }

    /// The generation of a variant bucket now.
    pub(crate) fn variant_fence_bucket(&self, bucket: usize) -> u64 {
        self.variants[bucket].load(Ordering::Acquire)
    }

    /// Joins the flight of `key`, or registers a new one for this caller to lead.
    pub(crate) fn join_or_lead(
        self: &Arc<Self>,
        key: &CacheKey,
        variant: Option<(usize, u64)>,
    ) -> Joined<T, St> {
        let shard = shard_of(key.as_bytes());
        let mut map = self.lock(shard);
        if let Some(flight) = map.get(key.as_bytes()).and_then(|ks| ks.flight.clone()) {
            let slot = flight.register();
            drop(map);
            self.stats.coalesced.inc();
            return Joined::Wait(Waiter::new(self.clone(), flight, slot));
        }
        Joined::Lead(self.new_flight(&mut map, key, shard, variant))
    }

    /// Registers a new flight of `key`, fenced by the key's generation and the
    /// epoch now. Called with the key's shard locked.
    fn new_flight(
        &self,
        map: &mut HashMap<CacheKey, KeyState<T>>,
        key: &CacheKey,
        shard: usize,
        variant: Option<(usize, u64)>,
    ) -> Arc<Flight<T>> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let ks = map.entry(key.clone()).or_default();
        ks.loads += 1;
        let flight = Arc::new(Flight::new(Fence {
            key: key.clone(),
            shard,
            gen: ks.gen,
            epoch,
            variant,
        }));
        ks.flight = Some(flight.clone());
        flight
    }

    /// Registers a flight for a background refresh, unless a load of the key
    /// is already in flight.
    pub(crate) fn lead_refresh(
        &self,
        key: &CacheKey,
        variant: Option<(usize, u64)>,
    ) -> Option<Arc<Flight<T>>> {
        let shard = shard_of(key.as_bytes());
        let mut map = self.lock(shard);
        if map
            .get(key.as_bytes())
            .is_some_and(|ks| ks.flight.is_some())
        {
            return None;
        }
        Some(self.new_flight(&mut map, key, shard, variant))
    }

    /// Registers an uncoalesced load of `key` (a waiter that stopped waiting).
    pub(crate) fn begin_solo(&self, key: CacheKey, variant: Option<(usize, u64)>) -> Fence {
        let shard = shard_of(key.as_bytes());
        let mut map = self.lock(shard);
        let epoch = self.epoch.load(Ordering::Acquire);
        let ks = map.entry(key.clone()).or_default();
        ks.loads += 1;
        Fence {
            key,
            shard,
            gen: ks.gen,
            epoch,
            variant,
        }
    }

    /// Ends a load: stores what it asks to keep if no invalidation happened
    /// since it started, and detaches its flight.
    pub(crate) fn end_load(
        &self,
        fence: &Fence,
        flight: Option<&Arc<Flight<T>>>,
        keep: Option<Entry<T>>,
    ) {
        let mut map = self.lock(fence.shard);
        let write = self.end_load_locked(&mut map, fence, flight, keep);
        drop(map);
        if let Some(write) = write {
            finish_write(write);
        }
    }

    fn end_load_locked(
        &self,
        map: &mut HashMap<CacheKey, KeyState<T>>,
        fence: &Fence,
        flight: Option<&Arc<Flight<T>>>,
        keep: Option<Entry<T>>,
    ) -> Option<St::Done> {
        let ks = map.get_mut(fence.key.as_bytes())?;
        if let (Some(mine), Some(current)) = (flight, &ks.flight) {
            if Arc::ptr_eq(mine, current) {
                ks.flight = None;
            }
        }
        ks.loads = ks.loads.saturating_sub(1);
        let mut write = None;
        if let Some(entry) = keep {
            let current = ks.gen == fence.gen
                && self.epoch.load(Ordering::Acquire) == fence.epoch
                && fence
                    .variant
                    .is_none_or(|(b, g)| self.variants[b].load(Ordering::Acquire) == g);
            if current {
                write = Some(self.store.insert(fence.key.clone(), entry));
            } else {
                self.stats.not_stored.inc();
                tracing::debug!("cache load finished after an invalidation: answered, not stored");
            }
        }
        if ks.loads == 0 && ks.flight.is_none() {
            map.remove(fence.key.as_bytes());
        }
        write
    }

    /// The entry a load's output asks to keep.
    pub(crate) fn entry_of(&self, out: &mut LoadOutput<T>, fence: &Fence) -> Option<Entry<T>> {
        let keep = out.keep.take()?;
        Some(Entry::build(
            keep.value,
            self.clock.ticks(),
            keep.freshness,
            keep.took,
            fence.variant.map(|(_, g)| g),
        ))
    }

    /// Finishes a flight: fills the store (if still current), publishes the
    /// result to its waiters, and returns it.
    pub(crate) fn complete(&self, flight: &Arc<Flight<T>>, mut out: LoadOutput<T>) -> Shared<T> {
        if out.shared.failure || out.shared.result.is_err() {
            self.stats.load_errors.inc();
        }
        let keep = self.entry_of(&mut out, &flight.fence);
        // Fill before publishing, so that a waiter's next request hits.
        self.end_load(&flight.fence, Some(flight), keep);
        flight.publish(&out.shared);
        out.shared
    }

    /// Hands a load whose driver went away to a waiter, or drops it when no
    /// caller waits for it any more.
    pub(crate) fn settle(&self, flight: &Arc<Flight<T>>, load: BoxLoad<T>) {
        let Some(load) = flight.offer(load) else {
            self.stats.handovers.inc();
            tracing::debug!("cache load handed over to a waiter");
            return;
        };
        // Joining takes the shard lock: under it, "no waiter" is final.
        let mut map = self.lock(flight.fence.shard);
        let Some(load) = flight.offer(load) else {
            self.stats.handovers.inc();
            return;
        };
        self.end_load_locked(&mut map, &flight.fence, Some(flight), None);
        drop(map);
        drop(load);
        tracing::debug!("cache load cancelled: no caller waits for it");
    }

    /// Invalidates `key` (and its variants): its entry is removed, and no
    /// load in progress stores its answer.
    pub(crate) fn invalidate(&self, key: &[u8]) -> St::Done {
        self.variants[bucket_of(key)].fetch_add(1, Ordering::AcqRel);
        let mut map = self.lock(shard_of(key));
        if let Some(ks) = map.get_mut(key) {
            ks.gen += 1;
            ks.flight = None;
        }
        let done = self.store.invalidate(key);
        drop(map);
        self.stats.invalidations.inc();
        tracing::debug!("cache key invalidated");
        done
    }

    /// Stores `value` for `key` with the default freshness, fencing off loads
    /// of the key in progress.
    pub(crate) fn put(&self, key: &[u8], value: T) -> St::Done {
        self.variants[bucket_of(key)].fetch_add(1, Ordering::AcqRel);
        let mut map = self.lock(shard_of(key));
        if let Some(ks) = map.get_mut(key) {
            ks.gen += 1;
            ks.flight = None;
        }
        let entry = Entry::build(
            Ok(value),
            self.clock.ticks(),
            self.settings.freshness,
            Duration::ZERO,
            None,
        );
        let done = self.store.insert(CacheKey::copy_from(key), entry);
        drop(map);
        done
    }

    /// Invalidates every key.
    pub(crate) fn invalidate_all(&self) -> St::Done {
        let mut maps: Vec<_> = (0..SHARDS).map(|i| self.lock(i)).collect();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for map in &mut maps {
            map.retain(|_, ks| {
                ks.flight = None;
                ks.loads > 0
            });
        }
        let done = self.store.invalidate_all();
        drop(maps);
        self.stats.invalidations.inc();
        tracing::info!("cache invalidated entirely");
        done
    }
}
