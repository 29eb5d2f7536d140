//! Not-ready mode inside `tower::balance::p2c::Balance`: traffic moves off a
//! replica whose breaker opened and comes back after it closes, and a ready
//! but unused probe reservation does not block probing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::Constant;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::breaker::{BreakerHandle, BreakerState, CircuitBreaker, OpenMode};
use tower_fleet::BoxError;

/// One replica: counts its calls, fails while unhealthy.
#[derive(Clone, Default)]
struct Replica {
    healthy: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Replica {
    fn healthy() -> Replica {
        let r = Replica::default();
        r.healthy.store(true, Ordering::SeqCst);
        r
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn breaker(
        &self,
    ) -> CircuitBreaker<
        impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone,
    > {
        let (healthy, calls) = (self.healthy.clone(), self.calls.clone());
        let svc = service_fn(move |req: u32| {
            calls.fetch_add(1, Ordering::SeqCst);
            let ok = healthy.load(Ordering::SeqCst);
            async move {
                if ok {
                    Ok(req)
                } else {
                    Err(std::io::Error::other("replica down"))
                }
            }
        });
        CircuitBreaker::builder()
            .open_mode(OpenMode::NotReady)
            .consecutive_failures(3)
            .open_duration(Duration::from_secs(10))
            .half_open_calls(1)
            .max_half_open_duration(Duration::from_secs(5))
            .build(svc)
            .unwrap()
    }
}

async fn send_many<S>(bal: &mut S, n: u32) -> usize
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    let mut ok = 0;
    for i in 0..n {
        if bal.ready().await.unwrap().call(i).await.is_ok() {
            ok += 1;
        }
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn traffic_moves_off_an_open_replica_and_comes_back_after_it_closes() {
    let (a, b, c) = (Replica::default(), Replica::healthy(), Replica::healthy());
    let breaker_a = a.breaker();
    let handle_a = breaker_a.handle();
    let replicas = vec![
        Constant::new(breaker_a, 0u32),
        Constant::new(b.breaker(), 0),
        Constant::new(c.breaker(), 0),
    ];
    let mut bal = Balance::new(ServiceList::new(replicas));

    // A fails until its breaker opens after three failures in a row.
    send_many(&mut bal, 200).await;
    assert_eq!(handle_a.state(), BreakerState::Open);
    assert_eq!(a.calls(), 3);

    // Open: the balancer skips A; every request succeeds elsewhere.
    assert_eq!(send_many(&mut bal, 200).await, 200);
    assert_eq!(a.calls(), 3);

    // A recovers. After the open duration, its breaker wakes the balancer,
    // the probe succeeds, and A takes traffic again.
    a.healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send_many(&mut bal, 300).await, 300);
    assert_eq!(handle_a.state(), BreakerState::Closed);
    assert!(a.calls() > 3 + 30, "A got {} calls", a.calls() - 3);
}

/// A balancer over replica A and a healthy B: A failed until its breaker
/// opened, has recovered, and its open duration is over. `hog` is another
/// holder of A's breaker (a second balancer, say), outside this one.
async fn a_recovered_behind_its_open_breaker() -> (
    Replica,
    BreakerHandle,
    CircuitBreaker<impl Service<u32, Response = u32, Error = std::io::Error, Future: Send> + Clone>,
    impl Service<u32, Response = u32, Error = BoxError>,
) {
    let (a, b) = (Replica::default(), Replica::healthy());
    let breaker_a = a.breaker();
    let handle_a = breaker_a.handle();
    let hog = breaker_a.clone();
    let mut bal = Balance::new(ServiceList::new(vec![
        Constant::new(breaker_a, 0u32),
        Constant::new(b.breaker(), 0),
    ]));
    send_many(&mut bal, 100).await;
    assert_eq!(handle_a.state(), BreakerState::Open);
    a.healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    (a, handle_a, hog, bal)
}

#[tokio::test(start_paused = true)]
async fn an_unused_reservation_does_not_block_probing() {
    let (a, handle_a, mut hog, mut bal) = a_recovered_behind_its_open_breaker().await;
    hog.ready().await.unwrap(); // takes the only probe slot, never calls
    assert_eq!(handle_a.snapshot().probes_taken, 1);
    let before = a.calls();
    assert_eq!(send_many(&mut bal, 100).await, 100);
    assert_eq!(a.calls(), before, "the slot is reserved");

    // Half-open gives up on the reservation after max_half_open_duration and
    // reopens; in the next half-open epoch the reservation is void, and the
    // balancer's own probe goes through.
    tokio::time::advance(Duration::from_secs(5)).await;
    send_many(&mut bal, 10).await;
    assert_eq!(handle_a.state(), BreakerState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send_many(&mut bal, 200).await, 200);
    assert_eq!(handle_a.state(), BreakerState::Closed);
    assert!(a.calls() > before, "A was probed and took traffic");
    drop(hog);
}

#[tokio::test(start_paused = true)]
async fn a_reservation_dropped_unused_lets_the_balancer_probe_at_once() {
    let (_a, handle_a, mut hog, mut bal) = a_recovered_behind_its_open_breaker().await;
    hog.ready().await.unwrap();
    send_many(&mut bal, 20).await;
    assert_eq!(handle_a.state(), BreakerState::HalfOpen);
    drop(hog); // frees the slot and wakes the balancer's waiting replica
    assert_eq!(send_many(&mut bal, 200).await, 200);
    assert_eq!(handle_a.state(), BreakerState::Closed);
}
