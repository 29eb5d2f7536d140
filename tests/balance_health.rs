//! Active health checks, slow start, and per-replica layers that publish
//! their health (a circuit breaker in not-ready mode), on paused time.

mod balance_common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use balance_common::{calls, nodes, replicas, send, Node};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};
use tower_fleet::balance::{
    Balance, BalanceBuildError, HealthCheckConfig, SlowStartConfig, Strategy,
};
use tower_fleet::signal::{health, HealthPublisher, HealthSignal, HealthSource};

fn checks() -> HealthCheckConfig {
    HealthCheckConfig {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(100),
        unhealthy_threshold: 3,
        healthy_threshold: 2,
    }
}

async fn share_of(b: &mut Balance<Node>, ns: &[Node], n: usize) -> Vec<u64> {
    let before = calls(ns);
    for _ in 0..n {
        send(b, ()).await.unwrap();
    }
    calls(ns)
        .iter()
        .zip(before)
        .map(|(now, was)| now - was)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn health_checks_take_a_failing_replica_out_and_bring_it_back() {
    let ns = nodes(&["a", "b"]);
    let mut b = Balance::builder()
        .config(tower_fleet::BalanceConfig {
            health_check: checks(),
            ..Default::default()
        })
        .strategy(Strategy::RoundRobin {})
        .replicas(replicas(&ns))
        .health_check(|n: Node| async move { !n.state.fail.load(Ordering::SeqCst) })
        .build()
        .unwrap();
    ns[0].failing(true);
    // Probes at 0s, 1s, 2s fail: out after the third.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !b.handle()
            .snapshot()
            .replica("a")
            .unwrap()
            .health_check_failed
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        b.handle()
            .snapshot()
            .replica("a")
            .unwrap()
            .health_check_failed
    );
    ns[0].failing(false);
    assert_eq!(share_of(&mut b, &ns, 50).await, [0, 50]);
    // Two passing probes (3s, 4s) bring it back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !b.handle()
            .snapshot()
            .replica("a")
            .unwrap()
            .health_check_failed
    );
    assert_eq!(share_of(&mut b, &ns, 50).await, [25, 25]);
}

#[tokio::test(start_paused = true)]
async fn a_probe_request_is_judged_by_the_classifier_and_a_slow_probe_fails() {
    let ns = nodes(&["a", "b"]);
    let b = Balance::builder()
        .config(tower_fleet::BalanceConfig {
            health_check: checks(),
            ..Default::default()
        })
        .replicas(replicas(&ns))
        .health_check_request(|| ())
        .build()
        .unwrap();
    ns[0].failing(true);
    ns[1].latency(500);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let snap = b.handle().snapshot();
    assert!(
        snap.replica("a").unwrap().health_check_failed,
        "errors fail"
    );
    assert!(
        snap.replica("b").unwrap().health_check_failed,
        "timeouts fail"
    );
    // Below the panic threshold, both still take traffic.
    assert!(snap.panic);
}

#[test]
fn health_checks_need_a_runtime() {
    let err = Balance::builder()
        .replicas(replicas(&nodes(&["a"])))
        .health_check(|_: Node| async { true })
        .build()
        .unwrap_err();
    assert!(matches!(err, BalanceBuildError::NoRuntime(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_joining_replica_ramps_its_share_up_over_the_slow_start_window() {
    let mut ns = nodes(&["a", "b", "c", "d"]);
    let mut b = Balance::builder()
        .strategy(Strategy::RoundRobin {})
        .slow_start(SlowStartConfig {
            window: Some(Duration::from_secs(10)),
            ..Default::default()
        })
        .replicas(replicas(&ns))
        .build()
        .unwrap();
    let e = Node::new("e");
    b.handle().insert(e.replica()).unwrap();
    ns.push(e);
    let mut shares = Vec::new();
    for _ in 0..5 {
        let got = share_of(&mut b, &ns, 2000).await;
        shares.push(got[4] as f64 / 2000.0);
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    // Full share is 1/5. It starts near 10% of that and grows to it.
    assert!(shares[0] < 0.04, "{shares:?}");
    assert!(shares.windows(2).all(|w| w[1] > w[0] - 0.01), "{shares:?}");
    assert!(shares[2] > 0.07 && shares[2] < 0.16, "{shares:?}");
    assert!((shares[4] - 0.2).abs() < 0.02, "{shares:?}");
    assert!(b
        .handle()
        .snapshot()
        .replica("e")
        .unwrap()
        .slow_start
        .is_none());
}

// A stand-in for the crate's circuit breaker: open for a while on command,
// publishing its health and reporting Pending from poll_ready while open.

#[derive(Clone, Default)]
struct Breakers(Arc<Mutex<Vec<Arc<BreakerState>>>>);

struct BreakerState {
    open_until: Mutex<Option<Instant>>,
    publisher: HealthPublisher,
    signal: HealthSignal,
}

impl BreakerState {
    fn open_for(&self, d: Duration) {
        let until = Instant::now() + d;
        *self.open_until.lock().unwrap() = Some(until);
        self.publisher.set_unavailable_until(until);
    }
}

struct ToyBreaker<S> {
    inner: S,
    state: Arc<BreakerState>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone> Clone for ToyBreaker<S> {
    fn clone(&self) -> Self {
        ToyBreaker {
            inner: self.inner.clone(),
            state: self.state.clone(),
            sleep: None,
        }
    }
}

impl<S> Layer<S> for Breakers {
    type Service = ToyBreaker<S>;
    fn layer(&self, inner: S) -> ToyBreaker<S> {
        let (publisher, signal) = health();
        let state = Arc::new(BreakerState {
            open_until: Mutex::new(None),
            publisher,
            signal,
        });
        self.0.lock().unwrap().push(state.clone());
        ToyBreaker {
            inner,
            state,
            sleep: None,
        }
    }
}

impl<S> HealthSource for ToyBreaker<S> {
    fn health_signal(&self) -> HealthSignal {
        self.state.signal.clone()
    }
}

impl<S: Service<R>, R> Service<R> for ToyBreaker<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        let until = *self.state.open_until.lock().unwrap();
        if let Some(until) = until.filter(|u| Instant::now() < *u) {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn traffic_moves_off_a_replica_whose_breaker_opened_and_comes_back_after_it_closes() {
    for from_source in [true, false] {
        let ns = nodes(&["a", "b", "c"]);
        let breakers = Breakers::default();
        let builder = Balance::builder()
            .strategy(Strategy::LeastRequest {})
            .replicas(replicas(&ns))
            .replica_layer(breakers.clone());
        let mut b = if from_source {
            builder.health_from_source().build().unwrap()
        } else {
            builder.build().unwrap()
        };
        let a = breakers.0.lock().unwrap()[0].clone();
        a.open_for(Duration::from_secs(10));
        let t0 = Instant::now();
        let before = calls(&ns);
        for _ in 0..300 {
            send(&mut b, ()).await.unwrap();
        }
        assert_eq!(Instant::now(), t0, "no request waited for the open breaker");
        assert_eq!(ns[0].calls(), before[0], "from_source = {from_source}");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = ns[0].calls();
        for _ in 0..300 {
            send(&mut b, ()).await.unwrap();
        }
        assert!(
            ns[0].calls() - before > 50,
            "a is back (from_source = {from_source})"
        );
    }
}
