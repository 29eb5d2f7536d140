//! `MemoryStore`: the default, in-memory store, on `quick_cache`.

use std::fmt;
use std::future::{ready, Ready};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use quick_cache::unsync::Cache as QuickCache;
use quick_cache::{Lifecycle, OptionsBuilder, Weighter};

use super::entry::Entry;
use super::slot::{PassHash, Probe, Slot};
use super::store::{CacheKey, Lookup, Store, StoreStats};
use crate::config::ConfigError;

/// One shard's table.
type Table<T> = QuickCache<Slot, Entry<T>, Weigh<T>, PassHash, Evictions>;

/// One shard: a `quick_cache` table behind its own read-write lock.
type Shard<T> = RwLock<Table<T>>;

type WeighFn<T> = Arc<dyn Fn(&[u8], &T) -> u64 + Send + Sync>;

/// The in-memory store: a bounded, concurrent map with S3-FIFO eviction
/// (the `quick_cache` crate), bounded by entry count or by a weigher.
///
/// The map is split in shards, each a `quick_cache` table behind its own
/// read-write lock. A lookup hashes the borrowed key bytes once (xxh3, with a
/// seed drawn per store so that clients cannot choose keys that collide),
/// takes one shard's read lock (readers do not block each other), and lets
/// the cache judge the entry in place: a hit clones only the response (an
/// `Arc`), no allocation. Keys are kept with their hash, so a probe compares
/// hashes before bytes. Expired entries are not swept: the cache treats them
/// as misses and overwrites them, and, never hit again, they are the first
/// evicted. See the [module docs](super) for why `quick_cache` and not moka.
///
/// ```
/// use bytes::Bytes;
/// use tower_fleet::cache::MemoryStore;
///
/// // At most 64 MiB of bodies, however many entries that is.
/// let store = MemoryStore::<Bytes>::weighed(64 << 20, 10_000, |_key, body: &Bytes| body.len() as u64).unwrap();
/// # let _ = store;
/// ```
pub struct MemoryStore<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    shards: Box<[Shard<T>]>,
    mask: usize,
    seed: u64,
    capacity: u64,
    evictions: Arc<AtomicU64>,
}

impl<T> Clone for MemoryStore<T> {
    fn clone(&self) -> Self {
        MemoryStore {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> fmt::Debug for MemoryStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

struct Weigh<T>(Option<WeighFn<T>>);

impl<T> Clone for Weigh<T> {
    fn clone(&self) -> Self {
        Weigh(self.0.clone())
    }
}

impl<T> Weighter<Slot, Entry<T>> for Weigh<T> {
    fn weight(&self, slot: &Slot, entry: &Entry<T>) -> u64 {
        match (&self.0, entry.value()) {
            // A weight of 0 would pin the entry: never evictable.
            (Some(f), Ok(v)) => slot.with_bytes(|k| f(k, v)).max(1),
            _ => 1,
        }
    }
}

#[derive(Clone)]
struct Evictions(Arc<AtomicU64>);

/// The key an insert is writing: `quick_cache` reports the entry a write
/// replaces through the eviction hook too, and a replacement is no eviction.
#[derive(Default)]
struct Inserting(Option<Slot>);

impl<T> Lifecycle<Slot, Entry<T>> for Evictions {
    type RequestState = Inserting;

    fn on_evict(&self, state: &mut Inserting, key: Slot, _entry: Entry<T>) {
        if state.0.as_ref() != Some(&key) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Shards hold at least this many entries (fewer shards for small stores).
const MIN_SHARD_ITEMS: usize = 32;

impl<T: Clone + Send + Sync + 'static> MemoryStore<T> {
    /// A store of at most `max_entries` entries (at least 1).
    pub fn new(max_entries: u64) -> Result<MemoryStore<T>, ConfigError> {
        let items = usize::try_from(max_entries).unwrap_or(usize::MAX);
        Self::make("max_entries", max_entries, items, Weigh(None))
    }

    /// A store bounded by weight: each entry weighs `weigh(key, value)` (at
    /// least 1; negatively cached errors weigh 1), and the total stays at
    /// most `max_weight`. `estimated_entries` sizes the tables up front.
    pub fn weighed(
        max_weight: u64,
        estimated_entries: usize,
        weigh: impl Fn(&[u8], &T) -> u64 + Send + Sync + 'static,
    ) -> Result<MemoryStore<T>, ConfigError> {
        Self::make(
            "max_weight",
            max_weight,
            estimated_entries.max(1),
            Weigh(Some(Arc::new(weigh))),
        )
    }

    fn make(
        field: &str,
        capacity: u64,
        items: usize,
        weigh: Weigh<T>,
    ) -> Result<MemoryStore<T>, ConfigError> {
        if capacity == 0 {
            return Err(ConfigError::new(field, capacity, "must be at least 1"));
        }
        // As quick_cache's own sharded map: four shards per core, fewer when
        // shards would hold under 32 entries.
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let mut shards = cores.saturating_mul(4).next_power_of_two();
        while shards > 1 && items.div_ceil(shards) < MIN_SHARD_ITEMS {
            shards /= 2;
        }
        let per_shard = capacity.div_ceil(shards as u64);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(items.div_ceil(shards))
            .weight_capacity(per_shard)
            .build()
            .map_err(|e| ConfigError::new(field, capacity, e.to_string()))?;
        let evictions = Arc::new(AtomicU64::new(0));
        let shards = (0..shards)
            .map(|_| {
                RwLock::new(QuickCache::with_options(
                    options.clone(),
                    weigh.clone(),
                    PassHash,
                    Evictions(evictions.clone()),
                ))
            })
            .collect::<Box<[_]>>();
        Ok(MemoryStore {
            inner: Arc::new(Inner {
                mask: shards.len() - 1,
                shards,
                // A seed no client can know: std draws its hasher keys at random.
                seed: std::collections::hash_map::RandomState::new().hash_one(0x0063_6163_6865_u64),
                capacity,
                evictions,
            }),
        })
    }

    /// Entries held now (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        (0..self.inner.shards.len())
            .map(|i| self.read(i).len())
            .sum()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shard of a hash: bits from its middle, since `quick_cache`'s
    /// table uses the lowest and the highest ones.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        (hash.rotate_right(32) as usize) & self.inner.mask
    }

    #[inline]
    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Table<T>> {
        // A lock poisoned by a panicking weigher is used as it is, as
        // quick_cache's own (non-poisoning) locks would be.
        self.inner.shards[shard]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Table<T>> {
        self.inner.shards[shard]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Clone + Send + Sync + 'static> Store<T> for MemoryStore<T> {
    type Get = Ready<Option<Entry<T>>>;
    type Done = Ready<()>;

    #[inline]
    fn lookup(&self, key: &[u8]) -> Lookup<T> {
        match self.lookup_with(key, |e| e.cloned()) {
            Some(Some(entry)) => Lookup::Found(entry),
            _ => Lookup::Absent,
        }
    }

    /// Judges the entry in place, under the shard's read lock.
    #[inline]
    fn lookup_with<R>(&self, key: &[u8], read: impl FnOnce(Option<&Entry<T>>) -> R) -> Option<R> {
        let probe = Probe::new(key, self.inner.seed);
        let shard = self.read(self.shard_of(probe.hash));
        Some(read(shard.get(&probe)))
    }

    fn get(&self, key: CacheKey) -> Self::Get {
        ready(self.lookup_with(key.as_bytes(), |e| e.cloned()).flatten())
    }

    fn insert(&self, key: CacheKey, entry: Entry<T>) -> Self::Done {
        let slot = Probe::new(key.as_bytes(), self.inner.seed).to_slot();
        let mut state = Inserting(Some(slot.clone()));
        self.write(self.shard_of(slot.hash))
            .insert_with_lifecycle(slot, entry, &mut state);
        ready(())
    }

    fn invalidate(&self, key: &[u8]) -> Self::Done {
        let probe = Probe::new(key, self.inner.seed);
        self.write(self.shard_of(probe.hash)).remove(&probe);
        ready(())
    }

    fn invalidate_all(&self) -> Self::Done {
        for i in 0..self.inner.shards.len() {
            self.write(i).clear();
        }
        ready(())
    }

    fn stats(&self) -> StoreStats {
        StoreStats::new(
            Some(self.len() as u64),
            Some(self.inner.evictions.load(Ordering::Relaxed)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Freshness;
    use std::time::Duration;

    fn entry(v: &str) -> Entry<String> {
        Entry::new(
            v.to_string(),
            tokio::time::Instant::now(),
            Freshness::ttl(Duration::from_secs(1)),
        )
    }

    #[test]
    fn replacing_and_removing_entries_are_not_evictions() {
        let store = MemoryStore::<String>::new(10_000).unwrap();
        for i in 0..1000 {
            let k = CacheKey::copy_from(if i % 2 == 0 { b"a" } else { b"b" });
            drop(store.insert(k.clone(), entry("v")));
            if i % 3 == 0 {
                drop(store.invalidate(k.as_bytes()));
            }
        }
        assert_eq!(store.stats().evictions, Some(0));
        assert!(matches!(
            store.lookup(b"a"),
            Lookup::Found(_) | Lookup::Absent
        ));
    }

    #[test]
    fn lookups_borrow_the_key_bytes() {
        let store = MemoryStore::<String>::new(10).unwrap();
        drop(store.insert(CacheKey::from(crate::key::Key::from(7u64)), entry("seven")));
        let Lookup::Found(e) = store.lookup(&7u64.to_le_bytes()) else {
            panic!("not found by its bytes");
        };
        assert_eq!(e.value().unwrap(), "seven");
        drop(store.invalidate_all());
        assert!(store.is_empty());
    }
}
