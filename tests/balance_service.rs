//! The `Balance` service's protocol: readiness, waits, errors, attempt marks,
//! weights, classification, membership and configuration.

mod balance_common;

use std::sync::Arc;
use std::time::Duration;

use balance_common::{calls, nodes, replicas, send, Node};
use tokio::time::Instant;
use tower::{service_fn, Layer, Service};
use tower_fleet::balance::{
    Balance, BalanceBuildError, BalanceConfig, BalanceError, BalanceLayer, MembershipError,
    Replica, Strategy,
};
use tower_fleet::classify::{Classification, EndOfStream, EosReporter, Outcome};
use tower_fleet::signal::{
    health, AttemptMark, Carrier, Envelope, ErrorSignals, HealthSource, UnavailableKind,
};
use tower_fleet::BoxError;

fn balance(nodes: &[Node], strategy: Strategy) -> Balance<Node> {
    Balance::builder()
        .strategy(strategy)
        .replicas(replicas(nodes))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_replica_set_and_its_counters() {
    let ns = nodes(&["a", "b"]);
    let mut one = balance(&ns, Strategy::RoundRobin {});
    let mut two = one.clone();
    let c = Node::new("c");
    one.handle().insert(c.replica()).unwrap();
    assert_eq!(two.handle().replicas().len(), 3);
    for _ in 0..3 {
        send(&mut one, ()).await.unwrap();
        send(&mut two, ()).await.unwrap();
    }
    assert_eq!(c.calls(), 2);
    let total: u64 = one
        .handle()
        .snapshot()
        .replicas
        .iter()
        .map(|r| r.requests)
        .sum();
    assert_eq!(total, 6);
}

#[tokio::test(start_paused = true)]
async fn an_empty_set_fails_at_once_with_the_unavailable_signal() {
    let mut b: Balance<Node> = Balance::builder().build().unwrap();
    let t0 = Instant::now();
    let err = send(&mut b, ()).await.unwrap_err();
    assert!(matches!(err, BalanceError::NoReplicas { .. }), "{err}");
    assert_eq!(
        err.unavailable().unwrap().kind(),
        UnavailableKind::NoneAvailable
    );
    assert_eq!(Instant::now(), t0);
    assert!(!b.health_signal().is_available(&Default::default()));
    b.handle().insert(Node::new("a").replica()).unwrap();
    assert!(b.health_signal().is_available(&Default::default()));
    assert_eq!(send(&mut b, ()).await.unwrap(), "a");
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_is_not_ready_does_not_stall_the_others() {
    let ns = nodes(&["a", "b", "c"]);
    ns[0].ready(false);
    let mut b = balance(&ns, Strategy::LeastRequest {});
    let t0 = Instant::now();
    for _ in 0..30 {
        assert_ne!(send(&mut b, ()).await.unwrap(), "a");
    }
    assert_eq!(Instant::now(), t0, "no request waited");
    assert_eq!(ns[0].calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn with_no_ready_replica_the_call_waits_the_bound_then_fails_with_the_signal() {
    let ns = nodes(&["a", "b"]);
    ns[0].ready(false);
    ns[1].ready(false);
    let mut b = Balance::builder()
        .ready_timeout(Duration::from_millis(300))
        .replicas(replicas(&ns))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut b, ()).await.unwrap_err();
    assert_eq!(Instant::now() - t0, Duration::from_millis(300));
    assert!(matches!(err, BalanceError::Unavailable { .. }), "{err}");
    assert_eq!(
        err.unavailable().unwrap().kind(),
        UnavailableKind::NoneAvailable
    );
    assert_eq!(b.handle().snapshot().unavailable, 1);
    assert_eq!(
        b.handle()
            .snapshot()
            .replicas
            .iter()
            .map(|r| r.in_flight)
            .sum::<u64>(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_ends_the_wait_first() {
    let a = Node::new("a");
    a.ready(false);
    let mut b = Balance::builder().replica(a.replica()).build().unwrap();
    let t0 = Instant::now();
    let err = send(
        &mut b,
        Envelope::new(()).with_timeout(Duration::from_millis(40)),
    )
    .await
    .unwrap_err();
    assert_eq!(Instant::now() - t0, Duration::from_millis(40));
    assert!(err.deadline_exceeded(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_is_sent_as_soon_as_its_replica_becomes_ready() {
    let a = Node::new("a");
    a.ready(false);
    let mut b = Balance::builder().replica(a.replica()).build().unwrap();
    let call = tokio::spawn(async move { send(&mut b, ()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.ready(true);
    assert_eq!(call.await.unwrap().unwrap(), "a");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_takes_a_replica_that_joins() {
    let mut b: Balance<Node> = Balance::builder().build().unwrap();
    let a = Node::new("a");
    a.ready(false);
    b.handle().insert(a.replica()).unwrap();
    let handle = b.handle();
    let call = tokio::spawn(async move { send(&mut b, ()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.insert(Node::new("z").replica()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), "z");
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_moves_the_request_to_another_replica() {
    let ns = nodes(&["a", "b"]);
    ns[0].broken(true);
    let mut b = balance(&ns, Strategy::RoundRobin {});
    for _ in 0..4 {
        assert_eq!(send(&mut b, ()).await.unwrap(), "b");
    }
    assert!(b.handle().snapshot().replica("a").unwrap().failures >= 1);
    ns[1].broken(true);
    let err = send(&mut b, ()).await.unwrap_err();
    assert!(
        matches!(
            err,
            BalanceError::Inner { .. } | BalanceError::Unavailable { .. }
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn inner_errors_are_wrapped_with_the_replica_and_keep_their_signals() {
    let svc = service_fn(|_: ()| async {
        let e = tower_fleet::signal::Unavailable::new(UnavailableKind::Server);
        Err::<(), BoxError>(Box::new(e))
    });
    let mut b = Balance::builder()
        .replica(Replica::new("a", svc))
        .build()
        .unwrap();
    let err = send(&mut b, ()).await.unwrap_err();
    assert_eq!(err.replica().map(|r| r.as_str()), Some("a"));
    assert_eq!(err.unavailable().unwrap().kind(), UnavailableKind::Server);
}

#[tokio::test(start_paused = true)]
async fn a_retry_avoids_the_replicas_its_earlier_attempts_used() {
    let ns = nodes(&["a", "b", "c"]);
    let mut b = balance(&ns, Strategy::peak_ewma());
    for _ in 0..50 {
        let mut first = Envelope::new(());
        first.set_attempt(AttemptMark::new());
        let mark = first.attempt().unwrap().clone();
        let used = send(&mut b, first).await.unwrap();
        let mut second = Envelope::new(());
        second.set_attempt(mark.next());
        let again = send(&mut b, second).await.unwrap();
        assert_ne!(used, again);
        assert_eq!(mark.tried().len(), 2);
    }
    // With one replica, the retry goes back to it.
    let solo = Node::new("solo");
    let mut one = Balance::builder().replica(solo.replica()).build().unwrap();
    let mark = AttemptMark::new();
    let mut req = Envelope::new(());
    req.set_attempt(mark.next());
    mark.record(solo.replica().spec().id.endpoint());
    assert_eq!(send(&mut one, req).await.unwrap(), "solo");
}

#[tokio::test(start_paused = true)]
async fn the_balancer_publishes_its_health_and_reports_the_retry_after() {
    let ns = nodes(&["a", "b"]);
    let (pa, sa) = health();
    let (pb, sb) = health();
    let mut b = Balance::builder()
        .replica(ns[0].replica().health(sa))
        .replica(ns[1].replica().health(sb))
        .build()
        .unwrap();
    let back = Instant::now() + Duration::from_secs(5);
    pa.set_unavailable_until(back);
    pb.set_unavailable_until(back);
    let err = send(&mut b, ()).await.unwrap_err();
    let retry = err.unavailable().unwrap().retry_after().unwrap();
    assert_eq!(retry, Duration::from_secs(4), "waited the 1s bound of 5s");
    assert!(!b.health_signal().is_available(&Default::default()));
    assert_eq!(
        calls(&ns),
        [0, 0],
        "unavailable replicas are never polled or called"
    );
    tokio::time::sleep_until(back).await;
    assert!(b.health_signal().is_available(&Default::default()));
    assert!(send(&mut b, ()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn weights_set_the_shares_of_round_robin_and_random() {
    let ns = nodes(&["a", "b"]);
    for strategy in [Strategy::RoundRobin {}, Strategy::Random {}] {
        let mut b = Balance::builder()
            .strategy(strategy.clone())
            .replica(ns[0].replica().weight(3))
            .replica(ns[1].replica())
            .build()
            .unwrap();
        let before = calls(&ns);
        for _ in 0..4000 {
            send(&mut b, ()).await.unwrap();
        }
        let a = ns[0].calls() - before[0];
        assert!((2850..=3150).contains(&a), "{strategy:?}: {a} of 4000");
    }
}

type Streamed = (EndOfStream, Option<EosReporter>);

#[tokio::test(start_paused = true)]
async fn outcomes_at_the_end_of_a_stream_hold_the_slot_until_then() {
    let svc = service_fn(|_: ()| async {
        let (eos, reporter) = EndOfStream::pair();
        Ok::<Streamed, BoxError>((eos, Some(reporter)))
    });
    let classify = |r: &Result<Streamed, BoxError>| match r {
        Ok((eos, _)) => Classification::AtEnd(eos.clone()),
        Err(_) => Classification::Now(Outcome::Failure),
    };
    let mut b = Balance::builder()
        .classify(classify)
        .replica(Replica::new("a", svc))
        .build()
        .unwrap();
    let (_eos, reporter) = send(&mut b, ()).await.unwrap();
    let snap = b.handle().snapshot();
    assert_eq!(
        (snap.replicas[0].in_flight, snap.replicas[0].failures),
        (1, 0)
    );
    reporter.unwrap().report(Outcome::Failure);
    let snap = b.handle().snapshot();
    assert_eq!(
        (snap.replicas[0].in_flight, snap.replicas[0].failures),
        (0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn long_lived_streams_release_their_slot_at_the_head() {
    let svc = service_fn(|_: ()| async { Ok::<_, BoxError>("watch") });
    let classify = |_: &Result<&str, BoxError>| Classification::LongLived(Outcome::Success);
    let mut b = Balance::builder()
        .classify(classify)
        .replica(Replica::new("a", svc))
        .build()
        .unwrap();
    send(&mut b, ()).await.unwrap();
    let snap = b.handle().snapshot();
    assert_eq!(
        (snap.replicas[0].in_flight, snap.replicas[0].successes),
        (0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn failures_are_charged_the_penalty_latency() {
    let ns = nodes(&["a"]);
    ns[0].failing(true).latency(1);
    let mut b = balance(&ns, Strategy::peak_ewma());
    let _ = send(&mut b, ()).await;
    let ewma = b.handle().snapshot().replicas[0].ewma.unwrap();
    assert!(ewma >= Duration::from_millis(999), "{ewma:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_request_releases_its_slot_and_charges_its_time() {
    let ns = nodes(&["a"]);
    ns[0].latency(500);
    let mut b = balance(&ns, Strategy::peak_ewma());
    let fut = b.call(());
    assert_eq!(b.handle().snapshot().replicas[0].in_flight, 1);
    assert!(tokio::time::timeout(Duration::from_millis(200), fut)
        .await
        .is_err());
    let r = &b.handle().snapshot().replicas[0];
    assert_eq!(r.in_flight, 0);
    assert!(
        r.ewma.unwrap() >= Duration::from_millis(199),
        "{:?}",
        r.ewma
    );
}

#[tokio::test]
async fn bad_replicas_and_configurations_are_refused() {
    let ns = nodes(&["a"]);
    let err = Balance::builder()
        .replica(ns[0].replica().weight(0))
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BalanceBuildError::Membership(MembershipError::ZeroWeight { .. })
    ));
    let err = Balance::builder()
        .replicas(replicas(&[ns[0].clone(), ns[0].clone()]))
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BalanceBuildError::Membership(MembershipError::DuplicateId { .. })
    ));
    let err = Balance::<Node>::builder()
        .ready_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BalanceBuildError::Config(ref e) if e.field() == "ready_timeout"));
    let b = balance(&ns, Strategy::RoundRobin {});
    assert!(b.handle().set_weight("a", 0).is_err());
    assert!(!b.handle().remove("nope"));
}

#[tokio::test(start_paused = true)]
async fn a_layer_over_an_invalid_set_fails_every_call() {
    let layer = BalanceLayer::new(BalanceConfig::default()).unwrap();
    let ns = nodes(&["a"]);
    let mut bad = layer.layer(vec![ns[0].replica(), ns[0].replica()]);
    let err = send(&mut bad, ()).await.unwrap_err();
    assert!(matches!(err, BalanceError::Membership(_)), "{err}");
    assert!(layer.try_layer(vec![ns[0].replica().weight(0)]).is_err());
    let mut good = layer.try_layer(replicas(&ns)).unwrap();
    assert_eq!(send(&mut good, ()).await.unwrap(), "a");
}

#[test]
fn the_balancer_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Balance<Node>>();
    let _ = Arc::new(());
}
