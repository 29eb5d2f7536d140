//! The subjects of the cache hit benches, shared by `benches/cache.rs`
//! (criterion timings) and `benches/cache_instructions.rs` (callgrind
//! instruction counts), so both measure exactly the same thing.
//!
//! Like with like: every subject maps the same `u64` keys to the same
//! `Arc<str>` values (the very same allocations, see [`value`]), holds all
//! `ENTRIES` keys (capacity twice that, so no store evicts any, which
//! [`Subject::new`] checks), and is asked for the same scrambled key
//! sequence ([`keys`]). Every subject returns the value to the caller (an
//! `Arc` clone, dropped after `black_box`); the services are called the way
//! a user calls a tower service: `ready`, then `call`, then the response
//! future polled (each is ready on its first poll). The cache's key function
//! is a zero-sized `KeyFn`, inlined as a closure given to
//! `CacheBuilder::key` would be.

#![allow(dead_code)]

use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tower::util::ServiceFn;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_fleet::cache::{Cache, CacheKey, Entry, Freshness, MemoryStore, Store};
use tower_fleet::clock::Clock;
use tower_fleet::key::{Key, KeyFn};

/// Warm keys in every store.
pub const ENTRIES: u64 = 10_000;

/// Every subject, in the order of the tables.
pub const SUBJECTS: [&str; 10] = [
    "quick_cache_get",
    "quick_cache_service",
    "quick_cache_get_ttl",
    "moka_get",
    "moka_get_ttl",
    "memory_store_lookup",
    "service",
    "service_clock_every_hit",
    "service_coarse_clock",
    "tower_resilience",
];

/// The value of key `i`: for warm keys, a clone of one `Arc` allocated up
/// front, so that every subject holds the very same values (laid out in
/// memory the same way, whatever else a subject allocates while it warms).
pub fn value(i: u64) -> Arc<str> {
    static VALUES: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    let fresh = |i: u64| Arc::from(format!("value of {i}"));
    let values = VALUES.get_or_init(|| (0..ENTRIES).map(fresh).collect());
    usize::try_from(i)
        .ok()
        .and_then(|i| values.get(i))
        .cloned()
        .unwrap_or_else(|| fresh(i))
}

/// The keys asked for, in a scrambled order (a power of two of them), so
/// that each lookup touches another slot.
pub fn keys() -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..4096).map(|_| rng.random_range(0..ENTRIES)).collect()
}

/// Polls a future that must be ready at once (every hit here is).
pub fn now<F: Future>(f: F) -> F::Output {
    f.now_or_never().expect("a hit is ready on its first poll")
}

type Backend = ServiceFn<fn(u64) -> Ready<Result<Arc<str>, std::io::Error>>>;

fn backend() -> Backend {
    service_fn((|id| ready(Ok(value(id)))) as fn(u64) -> Ready<Result<Arc<str>, std::io::Error>>)
}

/// The key of a request: the request itself, as a zero-sized function that
/// the compiler inlines, as it does a closure given to `CacheBuilder::key`.
#[derive(Clone, Copy)]
pub struct KeyOf;

impl KeyFn<u64> for KeyOf {
    #[inline]
    fn key<'r>(&self, id: &'r u64) -> Option<Key<'r>> {
        Some(Key::from(*id))
    }
}

/// A bare quick_cache get as a tower service (no expiry, no counters).
pub struct QuickCacheService(quick_cache::sync::Cache<u64, Arc<str>>);

impl Service<u64> for QuickCacheService {
    type Response = Arc<str>;
    type Error = std::io::Error;
    type Future = Ready<Result<Arc<str>, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, key: u64) -> Self::Future {
        ready(
            self.0
                .get(&key)
                .ok_or_else(|| std::io::ErrorKind::NotFound.into()),
        )
    }
}

/// A thing to hit.
pub enum Subject {
    QuickCache(quick_cache::sync::Cache<u64, Arc<str>>),
    QuickCacheService(QuickCacheService),
    QuickCacheTtl(quick_cache::sync::Cache<u64, (Arc<str>, Instant)>),
    Moka(moka::sync::Cache<u64, Arc<str>>),
    Store(MemoryStore<Arc<str>>),
    Service(Box<Cache<Backend, Arc<str>, KeyOf>>),
    Resilience(Box<tower_resilience_cache::Cache<Backend, u64, u64, Arc<str>>>),
}

impl Subject {
    /// The subject of this name, warmed with every key; `None` for an
    /// unknown name. Services are warmed on `rt`.
    pub fn new(name: &str, rt: &tokio::runtime::Runtime) -> Option<Subject> {
        let cap = ENTRIES as usize * 2;
        let subject = match name {
            // The anchor: a bare quick_cache get.
            "quick_cache_get" => {
                let qc = quick_cache::sync::Cache::new(cap);
                for i in 0..ENTRIES {
                    qc.insert(i, value(i));
                }
                Subject::QuickCache(qc)
            }
            // The least a tower service over quick_cache can cost: a bare get
            // in `call`, its answer in a ready future.
            "quick_cache_service" => {
                let qc = quick_cache::sync::Cache::new(cap);
                for i in 0..ENTRIES {
                    qc.insert(i, value(i));
                }
                Subject::QuickCacheService(QuickCacheService(qc))
            }
            // quick_cache with an expiry instant beside the value, checked
            // against `Instant::now()` on each get.
            "quick_cache_get_ttl" => {
                let qc = quick_cache::sync::Cache::new(cap);
                let until = Instant::now() + Duration::from_secs(3600);
                for i in 0..ENTRIES {
                    qc.insert(i, (value(i), until));
                }
                Subject::QuickCacheTtl(qc)
            }
            // moka, without and with its built-in time-to-live.
            "moka_get" | "moka_get_ttl" => {
                let mut b = moka::sync::Cache::builder().max_capacity(cap as u64);
                if name == "moka_get_ttl" {
                    b = b.time_to_live(Duration::from_secs(3600));
                }
                let moka = b.build();
                for i in 0..ENTRIES {
                    moka.insert(i, value(i));
                }
                moka.run_pending_tasks();
                Subject::Moka(moka)
            }
            // The default store alone, as the cache's hit path asks it (the
            // entry judged in place, its response cloned), but no age check.
            "memory_store_lookup" => {
                let store = MemoryStore::new(cap as u64).unwrap();
                let at = tokio::time::Instant::now();
                for i in 0..ENTRIES {
                    drop(store.insert(
                        CacheKey::from(Key::from(i)),
                        Entry::new(value(i), at, Freshness::ttl(Duration::from_secs(3600))),
                    ));
                }
                Subject::Store(store)
            }
            // The default cache, then the same reading tokio's clock on every
            // hit, then the same with a coarse clock given to it.
            // The default cache, then the same reading tokio's clock on every
            // hit, then the same with a coarse clock given to it.
            "service_store" => {
                let store = MemoryStore::new(cap as u64).unwrap();
                let mut svc = Cache::builder()
                    .max_entries(cap as u64)
                    .ttl(Duration::from_secs(3600))
                    .key_fn(KeyOf)
                    .store(store.clone())
                    .build(backend())
                    .unwrap();
                for i in 0..ENTRIES {
                    rt.block_on(async {
                        svc.ready().await.unwrap().call(i).await.unwrap();
                    });
                }
                Subject::Store(store)
            }
            "service" | "service_clock_every_hit" | "service_coarse_clock" => {
                let mut builder = Cache::builder()
                    .max_entries(cap as u64)
                    .ttl(Duration::from_secs(3600))
                    .key_fn(KeyOf);
                if name == "service_clock_every_hit" {
                    builder = builder.clock_resolution(Duration::ZERO);
                }
                if name == "service_coarse_clock" {
                    builder = builder.clock(Clock::coarse(Duration::from_millis(1)).unwrap());
                }
                let mut svc = builder.build(backend()).unwrap();
                for i in 0..ENTRIES {
                    rt.block_on(async {
                        svc.ready().await.unwrap().call(i).await.unwrap();
                    });
                }
                Subject::Service(Box::new(svc))
            }
            // tower-resilience's cache, called as a user calls it.
            "tower_resilience" => {
                let layer = tower_resilience_cache::CacheLayer::builder()
                    .max_size(cap)
                    .ttl(Duration::from_secs(3600))
                    .key_extractor(|id: &u64| *id)
                    .build()
                    .unwrap();
                let mut svc = layer.layer(backend());
                for i in 0..ENTRIES {
                    rt.block_on(async {
                        svc.ready().await.unwrap().call(i).await.unwrap();
                    });
                }
                Subject::Resilience(Box::new(svc))
            }
            _ => return None,
        };
        // Every key must be warm: a subject that evicted some would be
        // timed on a mix of hits and misses.
        let mut subject = subject;
        for i in 0..ENTRIES {
            assert!(subject.hit(i), "{name}: key {i} is not warm");
        }
        Some(subject)
    }

    /// One hit: the value of `key`, handed to `black_box` and dropped.
    /// Whether the key was found.
    #[inline]
    pub fn hit(&mut self, key: u64) -> bool {
        match self {
            Subject::QuickCache(qc) => black_box(qc.get(&key)).is_some(),
            Subject::QuickCacheService(svc) => {
                let svc = now(svc.ready()).unwrap();
                black_box(now(svc.call(key))).is_ok()
            }
            Subject::QuickCacheTtl(qc) => black_box(
                qc.get(&key)
                    .filter(|(_, until)| Instant::now() < *until)
                    .map(|(v, _)| v),
            )
            .is_some(),
            Subject::Moka(moka) => black_box(moka.get(&key)).is_some(),
            Subject::Store(store) => {
                let found = store.lookup_with(&key.to_le_bytes(), |e| {
                    e.and_then(|e| e.value().ok().cloned())
                });
                black_box(found.flatten()).is_some()
            }
            Subject::Service(svc) => {
                let svc = now(svc.ready()).unwrap();
                black_box(now(svc.call(key))).is_ok()
            }
            Subject::Resilience(svc) => {
                let svc = now(svc.ready()).unwrap();
                black_box(now(svc.call(key))).is_ok()
            }
        }
    }
}
