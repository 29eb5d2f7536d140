//! A hit allocates nothing: `Res = Bytes` or `Arc<_>`, with a borrowed or an
//! integer key, through `ready` + `call` + `.await`.
//!
//! Its own test binary, because it installs a counting global allocator; and
//! one test function, because the count is process-wide and tests of one
//! binary run in parallel.

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::cache::Cache;
use tower_fleet::key::Key;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) made by `hits` hits after a warm-up: the
/// fewest of three rounds. The allocator's count is process-wide, so a rare
/// allocation by something else (the test harness, a lazily initialised
/// global) can land in one round; an allocation per hit lands in every round
/// `hits` times over.
async fn allocations_of_hits<S, Req>(svc: &mut S, req: impl Fn() -> Req, hits: usize) -> usize
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        svc.ready().await.unwrap().call(req()).await.unwrap();
    }
    let mut fewest = usize::MAX;
    for _round in 0..3 {
        let region = Region::new(GLOBAL);
        for _ in 0..hits {
            svc.ready().await.unwrap().call(req()).await.unwrap();
        }
        let change = region.change();
        fewest = fewest.min(change.allocations + change.reallocations);
    }
    fewest
}

#[test]
fn hits_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A key borrowed from the request, a `Bytes` response.
        let backend = service_fn(|req: &'static str| async move {
            Ok::<_, std::io::Error>(Bytes::from(req.repeat(8)))
        });
        let mut cache = Cache::builder()
            .key(|req: &&'static str| Some(Key::from(*req)))
            .build(backend)
            .unwrap();
        assert_eq!(allocations_of_hits(&mut cache, || "user:42", 1000).await, 0);
        assert_eq!(cache.handle().snapshot().loads, 1);

        // An integer key, an `Arc` response.
        let backend = service_fn(|id: u64| async move {
            Ok::<_, std::io::Error>(Arc::<str>::from(format!("user {id}")))
        });
        let mut cache = Cache::builder()
            .key(|id: &u64| Some(Key::from(*id)))
            .build(backend)
            .unwrap();
        assert_eq!(allocations_of_hits(&mut cache, || 42u64, 1000).await, 0);
        assert_eq!(cache.handle().snapshot().hits, 3099);

        // Hits judged by the clock (no ticked bound) allocate nothing either.
        let backend = service_fn(|id: u64| async move { Ok::<_, std::io::Error>(Arc::new(id)) });
        let mut by_clock = Cache::builder()
            .clock_resolution(Duration::ZERO)
            .key(|id: &u64| Some(Key::from(*id)))
            .build(backend)
            .unwrap();
        assert_eq!(allocations_of_hits(&mut by_clock, || 42u64, 1000).await, 0);

        // The counter does count: a miss allocates (its key, its flight, its load).
        let region = Region::new(GLOBAL);
        cache.ready().await.unwrap().call(7).await.unwrap();
        assert!(region.change().allocations > 0);
    });
}
