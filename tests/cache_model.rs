//! A model test: random gets, inserts, invalidations, failures and time steps
//! against a small reference model, on paused time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;
use tower::{service_fn, ServiceExt};
use tower_fleet::cache::Cache;
use tower_fleet::key::Key;

const TTL: Duration = Duration::from_secs(10);
const KEYS: u64 = 4;

#[derive(Clone, Debug)]
enum Op {
    Get(u64),
    Insert(u64),
    Invalidate(u64),
    InvalidateAll,
    Advance(u64),
    Failing(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS).prop_map(Op::Get),
        1 => (0..KEYS).prop_map(Op::Insert),
        1 => (0..KEYS).prop_map(Op::Invalidate),
        1 => Just(Op::InvalidateAll),
        3 => (0..15_000u64).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Failing),
    ]
}

/// Values are `(key, version)`; every version is produced once, by the
/// upstream or by an insert, and its production time is recorded.
#[derive(Default)]
struct World {
    next: AtomicU64,
    produced: Mutex<HashMap<u64, Instant>>,
}

impl World {
    /// A new version, read now (a load reads its version when it starts).
    fn read(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Records that version `v` reached the cache now (when its load ends).
    fn arrived(&self, v: u64) {
        self.produced.lock().unwrap().insert(v, Instant::now());
    }

    fn produce(&self) -> u64 {
        let v = self.read();
        self.arrived(v);
        v
    }
}

async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// Checks one answer of a request for `k` that started when the key's floor
/// was `floor`, and ended at `end`.
fn check(
    world: &World,
    k: u64,
    floor: u64,
    got: &Result<(u64, u64), tower_fleet::cache::CacheError>,
    end: Instant,
    window: Duration,
) -> Result<(), TestCaseError> {
    if let Ok((key, v)) = got {
        prop_assert_eq!(*key, k);
        prop_assert!(
            *v >= floor,
            "key {} served v{} below its floor v{}",
            k,
            v,
            floor
        );
        let at = world.produced.lock().unwrap()[v];
        prop_assert!(
            end - at <= window,
            "v{} served {:?} after it was produced",
            v,
            end - at
        );
    }
    Ok(())
}

/// With `latency`, gets run concurrently (spawned) and overlap invalidations
/// and time steps; their answers are checked when they end. Without it, each
/// get is awaited and, when there are no stale windows, compared with the
/// model exactly.
fn run(ops: Vec<Op>, swr: Duration, sie: Duration, latency: Duration) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let world = Arc::new(World::default());
        let failing = Arc::new(AtomicBool::new(false));
        let (w, f) = (world.clone(), failing.clone());
        let upstream = service_fn(move |k: u64| {
            let (w, f) = (w.clone(), f.clone());
            let v = w.read();
            async move {
                tokio::time::sleep(latency).await;
                if f.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("down"))
                } else {
                    w.arrived(v);
                    Ok((k, v))
                }
            }
        });
        let svc = Cache::builder()
            .ttl(TTL)
            .stale_while_revalidate(swr)
            .stale_if_error(sie)
            .max_entries(1000)
            .key(|k: &u64| Some(Key::from(*k)))
            .build(upstream)
            .unwrap();
        let handle = svc.handle();
        // Per key: the newest version that an invalidation or insert has made
        // the floor (served versions must be at least this), and in the
        // simple configuration the exact version the model expects stored.
        let mut floor = [0u64; KEYS as usize];
        let mut stored: [Option<(u64, Instant)>; KEYS as usize] = [None; KEYS as usize];
        let exact = swr.is_zero() && sie.is_zero() && latency.is_zero();
        let window = TTL + swr.max(sie);
        let mut running = Vec::new();
        for op in ops {
            match op {
                Op::Get(k) if !latency.is_zero() => {
                    let svc = svc.clone();
                    let task = tokio::spawn(async move {
                        let got = svc.oneshot(k).await;
                        (got, Instant::now())
                    });
                    running.push((k, floor[k as usize], task));
                    settle().await;
                }
                Op::Get(k) => {
                    let now = Instant::now();
                    let before = world.next.load(Ordering::SeqCst);
                    let got = svc.clone().oneshot(k).await;
                    settle().await;
                    match got.as_ref().map(|(_, v)| *v) {
                        Ok(v) => {
                            check(&world, k, floor[k as usize], &got, now, window)?;
                            if exact {
                                match stored[k as usize] {
                                    Some((sv, sat)) if now - sat < TTL => {
                                        prop_assert_eq!(v, sv, "a fresh entry must be hit")
                                    }
                                    _ => {
                                        prop_assert!(v > before, "a miss must load a new version");
                                        stored[k as usize] = Some((v, now));
                                    }
                                }
                            }
                        }
                        Err(_) => {
                            prop_assert!(
                                failing.load(Ordering::SeqCst),
                                "errors only while upstream fails"
                            );
                            if exact {
                                let fresh =
                                    stored[k as usize].is_some_and(|(_, sat)| now - sat < TTL);
                                prop_assert!(
                                    !fresh,
                                    "a fresh entry must be hit even while upstream fails"
                                );
                            }
                        }
                    }
                }
                Op::Insert(k) => {
                    let v = world.produce();
                    handle.insert(Key::from(k), (k, v)).await;
                    floor[k as usize] = v;
                    stored[k as usize] = Some((v, Instant::now()));
                }
                Op::Invalidate(k) => {
                    handle.invalidate(Key::from(k)).await;
                    floor[k as usize] = world.next.load(Ordering::SeqCst) + 1;
                    stored[k as usize] = None;
                }
                Op::InvalidateAll => {
                    handle.invalidate_all().await;
                    let next = world.next.load(Ordering::SeqCst) + 1;
                    floor = [next; KEYS as usize];
                    stored = [None; KEYS as usize];
                }
                Op::Advance(ms) => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    settle().await;
                }
                Op::Failing(on) => failing.store(on, Ordering::SeqCst),
            }
        }
        tokio::time::advance(latency * 4).await;
        settle().await;
        for (k, floor, task) in running {
            let (got, end) = task.await.unwrap();
            check(&world, k, floor, &got, end, window)?;
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn without_stale_windows_the_cache_matches_the_model_exactly(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, Duration::ZERO, Duration::ZERO, Duration::ZERO)?;
    }

    #[test]
    fn nothing_is_served_past_its_ttl_and_windows_nor_after_an_invalidation(
        ops in prop::collection::vec(op(), 1..60),
        swr in 0..20u64,
        sie in 0..40u64,
    ) {
        run(ops, Duration::from_secs(swr), Duration::from_secs(sie), Duration::ZERO)?;
    }

    #[test]
    fn loads_in_flight_across_invalidations_never_serve_invalidated_values_later(
        ops in prop::collection::vec(op(), 1..60),
        swr in 0..20u64,
        sie in 0..40u64,
    ) {
        run(ops, Duration::from_secs(swr), Duration::from_secs(sie), Duration::from_millis(1500))?;
    }
}
