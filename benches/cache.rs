//! Benchmarks of the cache layer, with their anchors in the same run.
//!
//! - `cache/hit/*`: one hit through the `Cache` service (`ready` + `call` +
//!   `.await`) against a bare `get` on quick_cache and on moka, with and
//!   without expiry, and against tower-resilience's cache. The subjects live
//!   in `cache_common`, shared with `cache_instructions.rs` (callgrind).
//! - `cache/stampede_cpu/*`: the process CPU time (`getrusage`) of 1,000
//!   coalesced requests for one missing key, for a 50 ms and a 500 ms upstream:
//!   waiters that sleep until woken cost the same whatever the latency.
//! - hit ratio (printed, and written to `target/criterion/cache_hit_ratio.txt`):
//!   the default store, an LRU and moka of 10,000 entries on a Zipf(1.0)
//!   trace over 1,000,000 keys.

mod cache_common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tower::{service_fn, ServiceExt};
use tower_fleet::cache::{Cache, CacheKey, Entry, Freshness, Lookup, MemoryStore, Store};
use tower_fleet::key::Key;

use cache_common::{keys, value, Subject, ENTRIES, SUBJECTS};

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let keys = keys();
    let mut g = c.benchmark_group("cache/hit");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for name in SUBJECTS {
        let mut subject = Subject::new(name, &rt).expect("a known subject");
        g.bench_function(BenchmarkId::new(name, ENTRIES), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                subject.hit(keys[i])
            })
        });
    }
    g.finish();
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, (t.tv_usec() as u32) * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

fn stampede_cpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache/stampede_cpu");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(10));
    for latency_ms in [50u64, 500] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let latency = Duration::from_millis(latency_ms);
        let backend = service_fn(move |id: u64| async move {
            tokio::time::sleep(latency).await;
            Ok::<_, std::io::Error>(value(id))
        });
        let svc = Cache::builder()
            .key(|id: &u64| Some(Key::from(*id)))
            .build(backend)
            .unwrap();
        let mut next_key = 0u64;
        g.bench_function(
            BenchmarkId::new("waiters_1000", format!("{latency_ms}ms")),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        next_key += 1;
                        let key = next_key;
                        let before = cpu_time();
                        rt.block_on(async {
                            let tasks: Vec<_> = (0..1000)
                                .map(|_| tokio::spawn(svc.clone().oneshot(key)))
                                .collect();
                            for t in tasks {
                                t.await.unwrap().unwrap();
                            }
                        });
                        total += cpu_time() - before;
                    }
                    total
                })
            },
        );
        assert_eq!(
            svc.handle().snapshot().coalesced,
            svc.handle().snapshot().misses - svc.handle().snapshot().loads
        );
    }
    g.finish();
}

/// A Zipf(1.0) sampler over `n` keys, by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for i in 1..=n {
            sum += 1.0 / i as f64;
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> u64 {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

fn hit_ratio() {
    const KEYS: usize = 1_000_000;
    const WARM: usize = 1_000_000;
    const MEASURED: usize = 2_000_000;
    let zipf = Zipf::new(KEYS);
    let mut rng = StdRng::seed_from_u64(42);
    let trace: Vec<u64> = (0..WARM + MEASURED)
        .map(|_| zipf.sample(&mut rng))
        .collect();
    // The best a cache of 10,000 can do: always hold the 10,000 most popular.
    let best = zipf.cdf[ENTRIES as usize - 1];

    let store = MemoryStore::<u64>::new(ENTRIES).unwrap();
    let at = tokio::time::Instant::now();
    let fresh = Freshness::ttl(Duration::from_secs(3600));
    let mut hits = 0usize;
    for (n, &k) in trace.iter().enumerate() {
        let bytes = k.to_le_bytes();
        match store.lookup(&bytes) {
            Lookup::Found(_) => hits += usize::from(n >= WARM),
            _ => {
                drop(store.insert(CacheKey::from(Key::from(k)), Entry::new(k, at, fresh)));
            }
        }
    }
    let ours = hits as f64 / MEASURED as f64;

    let mut lru =
        lru::LruCache::<u64, u64>::new(std::num::NonZeroUsize::new(ENTRIES as usize).unwrap());
    let mut hits = 0usize;
    for (n, &k) in trace.iter().enumerate() {
        if lru.get(&k).is_some() {
            hits += usize::from(n >= WARM);
        } else {
            lru.put(k, k);
        }
    }
    let lru_ratio = hits as f64 / MEASURED as f64;

    let moka = moka::sync::Cache::<u64, u64>::new(ENTRIES);
    let mut hits = 0usize;
    for (n, &k) in trace.iter().enumerate() {
        if moka.get(&k).is_some() {
            hits += usize::from(n >= WARM);
        } else {
            moka.insert(k, k);
        }
    }
    let moka_ratio = hits as f64 / MEASURED as f64;

    let report = format!(
        "cache/hit_ratio/zipf1.0/1000000 (10000 entries, {MEASURED} requests after {WARM} warm-up)\n\
         best possible (top 10,000 pinned): {best:.3}\n\
         default store (quick_cache, S3-FIFO): {ours:.3}\n\
         moka (W-TinyLFU): {moka_ratio:.3}\n\
         LRU (lru crate): {lru_ratio:.3}\n\
         default store - LRU: {:+.1} points\n",
        (ours - lru_ratio) * 100.0
    );
    println!("{report}");
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let _ = std::fs::create_dir_all(format!("{dir}/criterion"));
    let _ = std::fs::write(format!("{dir}/criterion/cache_hit_ratio.txt"), report);
}

fn hit_ratio_bench(_c: &mut Criterion) {
    hit_ratio();
}

criterion_group!(benches, hit, stampede_cpu, hit_ratio_bench);
criterion_main!(benches);
