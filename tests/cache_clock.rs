//! How hits tell the time: the ticked bound (`clock_resolution`) that spares
//! them a clock read, and when the cache judges by the clock instead.
//!
//! The bound's staleness limit itself (no hit past its expiry while the tick
//! task is on time, and less than its lateness beyond two resolutions
//! otherwise) is pinned by unit tests of the judgement, which move the tick
//! and the clock by hand (`src/cache/judge.rs`).

mod cache_common;

use std::sync::Arc;
use std::time::Duration;

use cache_common::{get, key, Upstream};
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::cache::{Cache, CacheConfig, CacheError, CacheLayer};
use tower_fleet::key::Key;

const TTL: Duration = Duration::from_secs(30);

/// Loads `k`, hits it until a nanosecond before `TTL`, and misses it at
/// `TTL`: the expiry a clock read per hit gives, with no yield to a tick task
/// in between.
async fn expires_exactly<S>(svc: &S, up: &Upstream)
where
    S: Service<String, Response = String, Error = CacheError> + Clone,
{
    let calls = up.calls();
    let first = get(svc, "k").await.unwrap();
    tokio::time::advance(TTL - Duration::from_nanos(1)).await;
    assert_eq!(get(svc, "k").await.unwrap(), first);
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_ne!(get(svc, "k").await.unwrap(), first);
    assert_eq!(up.calls(), calls + 2);
}

/// With tokio's time paused, the cache judges every hit by the clock: a tick
/// task that has not run since `advance` must not vouch for an entry.
#[tokio::test(start_paused = true)]
async fn paused_time_judges_every_hit_by_the_clock() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .ttl(TTL)
        .clock_resolution(Duration::from_millis(10))
        .key(key)
        .build(up.clone())
        .unwrap();
    expires_exactly(&svc, &up).await;
}

/// Hits from many threads at once (the bound ticking, time running) are
/// all answered, and all counted: each thread counts on a line of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hits_from_many_threads_are_all_counted() {
    let backend = service_fn(|id: u64| async move { Ok::<_, std::io::Error>(Arc::new(id * 10)) });
    let cache = Cache::builder()
        .key(|id: &u64| Some(Key::from(*id)))
        .build(backend)
        .unwrap();
    for id in 0..8 {
        assert_eq!(*cache.clone().oneshot(id).await.unwrap(), id * 10);
    }
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let mut svc = cache.clone();
            tokio::spawn(async move {
                for n in 0..5_000u64 {
                    let id = (t + n) % 8;
                    let v = svc.ready().await.unwrap().call(id).await.unwrap();
                    assert_eq!(*v, id * 10);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let snap = cache.handle().snapshot();
    assert_eq!((snap.hits, snap.misses, snap.loads), (40_000, 8, 8));
}

/// Built outside a runtime, the cache has no tick task, and judges hits by
/// the clock.
#[test]
fn a_cache_built_outside_a_runtime_serves_hits() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .ttl(TTL)
        .key(key)
        .build(up.clone())
        .unwrap();
    let layer = CacheLayer::<String>::new(CacheConfig::default());
    assert!(layer.is_ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(expires_exactly(&svc, &up));
    let snap = svc.handle().snapshot();
    assert_eq!((snap.hits, snap.misses), (1, 2));
}

/// When the runtime whose task ticked the bound shuts down, the bound stops
/// vouching: hits in another runtime are judged by its clock.
#[test]
fn the_bound_stops_vouching_when_its_runtime_shuts_down() {
    let up = Upstream::new(Duration::ZERO);
    let ticking = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let svc = ticking.block_on(async {
        Cache::builder()
            .ttl(TTL)
            .key(key)
            .build(up.clone())
            .unwrap()
    });
    drop(ticking);
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    paused.block_on(expires_exactly(&svc, &up));
}
