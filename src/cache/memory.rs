//! `MemoryStore`: the default, in-memory store, on `quick_cache`.

use std::fmt;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::entry::Entry;
use super::store::{CacheKey, Lookup, Store, StoreStats};
use crate::config::ConfigError;

type Map<T> = QuickCache<CacheKey, Entry<T>, Weigh<T>, DefaultHashBuilder, Evictions>;

type WeighFn<T> = Arc<dyn Fn(&[u8], &T) -> u64 + Send + Sync>;

/// The in-memory store: a bounded, concurrent map with S3-FIFO eviction
/// (the `quick_cache` crate), bounded by entry count or by a weigher.
///
/// A lookup hashes the borrowed key bytes, takes one shard's read lock
/// (uncontended readers do not block each other) and clones the entry's `Arc`:
/// no allocation. Expired entries are not swept: the cache treats them as
/// misses and overwrites them, and, never hit again, they are the first
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
    map: Arc<Map<T>>,
    evictions: Arc<AtomicU64>,
}

impl<T> Clone for MemoryStore<T> {
    fn clone(&self) -> Self {
        MemoryStore {
            map: self.map.clone(),
            evictions: self.evictions.clone(),
        }
    }
}

impl<T: Clone> fmt::Debug for MemoryStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.map.len())
            .field("capacity", &self.map.capacity())
            .finish()
    }
}

struct Weigh<T>(Option<WeighFn<T>>);

impl<T> Clone for Weigh<T> {
    fn clone(&self) -> Self {
        Weigh(self.0.clone())
    }
}

impl<T> Weighter<CacheKey, Entry<T>> for Weigh<T> {
    fn weight(&self, key: &CacheKey, entry: &Entry<T>) -> u64 {
        match (&self.0, entry.value()) {
            // A weight of 0 would pin the entry: never evictable.
            (Some(f), Ok(v)) => f(key.as_bytes(), v).max(1),
            _ => 1,
        }
    }
}

#[derive(Clone)]
struct Evictions(Arc<AtomicU64>);

/// The key an insert is writing: `quick_cache` reports the entry a write
/// replaces through the eviction hook too, and a replacement is no eviction.
#[derive(Default)]
struct Inserting(Option<CacheKey>);

impl<T> Lifecycle<CacheKey, Entry<T>> for Evictions {
    type RequestState = Inserting;

    fn on_evict(&self, state: &mut Inserting, key: CacheKey, _entry: Entry<T>) {
        if state.0.as_ref() != Some(&key) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

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
        let options = OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(capacity)
            .build()
            .map_err(|e| ConfigError::new(field, capacity, e.to_string()))?;
        let evictions = Arc::new(AtomicU64::new(0));
        let map = QuickCache::with_options(
            options,
            weigh,
            DefaultHashBuilder::default(),
            Evictions(evictions.clone()),
        );
        Ok(MemoryStore {
            map: Arc::new(map),
            evictions,
        })
    }

    /// Entries held now (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<T: Clone + Send + Sync + 'static> Store<T> for MemoryStore<T> {
    type Get = Ready<Option<Entry<T>>>;
    type Done = Ready<()>;

    #[inline]
    fn lookup(&self, key: &[u8]) -> Lookup<T> {
        match self.map.get(key) {
            Some(entry) => Lookup::Found(entry),
            None => Lookup::Absent,
        }
    }

    fn get(&self, key: CacheKey) -> Self::Get {
        ready(self.map.get(key.as_bytes()))
    }

    fn insert(&self, key: CacheKey, entry: Entry<T>) -> Self::Done {
        let mut state = Inserting(Some(key.clone()));
        self.map.insert_with_lifecycle(key, entry, &mut state);
        ready(())
    }

    fn invalidate(&self, key: &[u8]) -> Self::Done {
        self.map.remove(key);
        ready(())
    }

    fn invalidate_all(&self) -> Self::Done {
        self.map.clear();
        ready(())
    }

    fn stats(&self) -> StoreStats {
        StoreStats::new(
            Some(self.map.len() as u64),
            Some(self.evictions.load(Ordering::Relaxed)),
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
