//! Many tasks calling through clones of one breaker on a multi-thread
//! runtime: counts add up exactly, half-open admits exactly its probes, and a
//! trip happens once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Barrier, Semaphore};
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::breaker::{BreakerBuilder, BreakerError, BreakerState, CircuitBreaker};
use tower_fleet::classify::Outcome;
use tower_fleet::clock::Clock;

const TASKS: usize = 8;
const CALLS: usize = 2_000;

/// An instant backend; request `n` fails when `n % 3 == 0` and is ignored
/// when `n % 7 == 0` (and not a failure).
fn instant(
) -> impl Service<usize, Response = usize, Error = std::io::Error, Future: Send> + Clone + Send + 'static
{
    service_fn(|n: usize| async move {
        if n % 3 == 0 {
            Err(std::io::Error::other("failed"))
        } else {
            Ok(n)
        }
    })
}

fn classify(r: &Result<usize, std::io::Error>) -> Outcome {
    match r {
        Ok(n) if n % 7 == 0 => Outcome::Ignore,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

async fn hammer(builder: BreakerBuilder) {
    let b = builder
        .minimum_calls(1_000_000)
        .classify(classify)
        .build(instant())
        .unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let mut b = b.clone();
            tokio::spawn(async move {
                for i in 0..CALLS {
                    let _ = b.ready().await.unwrap().call(t * CALLS + i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = 0..TASKS * CALLS;
    let failures = all.clone().filter(|n| n % 3 == 0).count() as u64;
    let ignored = all.clone().filter(|n| n % 3 != 0 && n % 7 == 0).count() as u64;
    let calls = (TASKS * CALLS) as u64 - ignored;
    let snap = b.handle().snapshot();
    assert_eq!(snap.state, BreakerState::Closed);
    assert_eq!(
        (snap.calls, snap.failures, snap.ignored),
        (calls, failures, ignored)
    );
    assert_eq!((snap.window_calls, snap.window_failures), (calls, failures));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_add_up_exactly_in_a_count_window() {
    hammer(CircuitBreaker::builder().count_window(1_000_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_add_up_exactly_in_a_time_window() {
    hammer(CircuitBreaker::builder().time_window(Duration::from_secs(3600), 4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_add_up_exactly_with_a_coarse_clock_and_slow_call_detection() {
    hammer(
        CircuitBreaker::builder()
            .time_window(Duration::from_secs(3600), 4)
            .slow_call_duration(Duration::from_secs(60))
            .clock_resolution(Duration::from_millis(1)),
    )
    .await;
}

/// Races `tasks` callers at a half-open breaker whose probes wait until
/// released; returns how many were admitted.
async fn race_probes(
    b: &CircuitBreaker<
        impl Service<u32, Response = (), Error = std::io::Error, Future: Send> + Clone + Send + 'static,
    >,
    tasks: usize,
    gate: &Semaphore,
) -> usize {
    let decided = Arc::new(Barrier::new(tasks + 1));
    let joins: Vec<_> = (0..tasks)
        .map(|_| {
            let mut b = b.clone();
            let decided = decided.clone();
            tokio::spawn(async move {
                let fut = b.ready().await.unwrap().call(0);
                decided.wait().await;
                fut.await
            })
        })
        .collect();
    decided.wait().await;
    gate.add_permits(tasks);
    let mut admitted = 0;
    for j in joins {
        match j.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(BreakerError::Open { state, .. }) => assert_eq!(state, BreakerState::HalfOpen),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    admitted
}

fn gated(
    gate: Arc<Semaphore>,
    seen: Arc<AtomicUsize>,
) -> impl Service<u32, Response = (), Error = std::io::Error, Future: Send> + Clone + Send + 'static
{
    service_fn(move |_: u32| {
        let gate = gate.clone();
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            gate.acquire()
                .await
                .map_err(std::io::Error::other)?
                .forget();
            Ok(())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_admits_exactly_its_probes_under_a_race() {
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let b = CircuitBreaker::builder()
        .half_open_calls(5)
        .build(gated(gate.clone(), seen.clone()))
        .unwrap();
    for round in 1..=20 {
        b.handle().half_open();
        assert_eq!(race_probes(&b, 16, &gate).await, 5, "round {round}");
        assert_eq!(seen.load(Ordering::SeqCst), 5 * round);
        assert_eq!(b.handle().state(), BreakerState::Closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_racing_out_of_open_admit_exactly_the_probes() {
    let manual = Clock::manual();
    let gate = Arc::new(Semaphore::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let b = CircuitBreaker::builder()
        .clock(manual.clock())
        .half_open_calls(3)
        .open_duration(Duration::from_secs(10))
        .build(gated(gate.clone(), seen.clone()))
        .unwrap();
    for round in 1..=20 {
        b.handle().open();
        manual.advance(Duration::from_secs(10));
        // Every caller finds the open duration over; one moves to half-open.
        assert_eq!(race_probes(&b, 12, &gate).await, 3, "round {round}");
        assert_eq!(seen.load(Ordering::SeqCst), 3 * round);
    }
    assert_eq!(b.handle().snapshot().trips, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_trip_the_breaker_once() {
    let b = CircuitBreaker::builder()
        .count_window(50)
        .minimum_calls(50)
        .build(service_fn(|_: u32| async {
            Err::<(), _>(std::io::Error::other("down"))
        }))
        .unwrap();
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let mut b = b.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                for _ in 0..100 {
                    let _ = b.ready().await.unwrap().call(0).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let snap = b.handle().snapshot();
    assert_eq!(snap.state, BreakerState::Open);
    assert_eq!((snap.trips, snap.transitions), (1, 1));
    assert_eq!(snap.calls + snap.rejected, (TASKS * 100) as u64);
}
