//! Outlier ejection, its limits and panic mode, on tokio's paused clock.

mod balance_common;

use std::time::Duration;

use balance_common::{calls, nodes, replicas, send, Node};
use tokio::time::Instant;
use tower_fleet::balance::{Balance, OutlierConfig, Strategy};

fn outlier(consecutive: u32, max_percent: u32) -> OutlierConfig {
    OutlierConfig {
        consecutive_failures: consecutive,
        failure_rate_threshold: 1.0,
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_percent: max_percent,
        ..OutlierConfig::default()
    }
}

fn build(nodes: &[Node], outlier: OutlierConfig, panic_threshold: u32) -> Balance<Node> {
    Balance::builder()
        .strategy(Strategy::RoundRobin {})
        .outlier(outlier)
        .panic_threshold(panic_threshold)
        .replicas(replicas(nodes))
        .build()
        .unwrap()
}

/// Sends requests until `id` is ejected (at most `limit`); returns how long
/// the ejection lasts.
async fn until_ejected(b: &mut Balance<Node>, id: &str, limit: usize) -> Duration {
    for _ in 0..limit {
        let _ = send(b, ()).await;
        if let Some(until) = b.handle().snapshot().replica(id).unwrap().ejected_until {
            return until - Instant::now();
        }
    }
    panic!("{id} was not ejected after {limit} requests");
}

#[tokio::test(start_paused = true)]
async fn ejection_time_grows_with_each_ejection_and_decays_after_healthy_intervals() {
    let ns = nodes(&["a", "b"]);
    ns[0].failing(true);
    let mut b = build(&ns, outlier(5, 50), 0);
    let base = Duration::from_secs(30);
    for times in 1..=3u32 {
        assert_eq!(
            until_ejected(&mut b, "a", 20).await,
            base * times,
            "ejection {times}"
        );
        // While ejected, a gets nothing.
        let before = ns[0].calls();
        for _ in 0..20 {
            assert_eq!(send(&mut b, ()).await.unwrap(), "b");
        }
        assert_eq!(ns[0].calls(), before);
        tokio::time::sleep(base * times).await;
        assert!(
            b.handle().snapshot().replica("a").unwrap().available,
            "readmitted after {times}x"
        );
    }
    // Two healthy intervals step the multiplier down from 3 to 1: the next
    // ejection is the second in a row again.
    ns[0].failing(false);
    for _ in 0..20 {
        send(&mut b, ()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    ns[0].failing(true);
    assert_eq!(until_ejected(&mut b, "a", 20).await, base * 2);
    assert_eq!(b.handle().snapshot().replica("a").unwrap().ejections, 4);
}

#[tokio::test(start_paused = true)]
async fn ejection_time_is_capped() {
    let ns = nodes(&["a", "b"]);
    ns[0].failing(true);
    let cfg = OutlierConfig {
        max_ejection_time: Duration::from_secs(45),
        ..outlier(2, 50)
    };
    let mut b = build(&ns, cfg, 0);
    assert_eq!(
        until_ejected(&mut b, "a", 10).await,
        Duration::from_secs(30)
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        until_ejected(&mut b, "a", 10).await,
        Duration::from_secs(45)
    );
}

#[tokio::test(start_paused = true)]
async fn max_ejection_percent_bounds_how_much_of_the_set_is_ejected() {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let ns = nodes(&names);
    for n in &ns[..3] {
        n.failing(true);
    }
    let mut b = build(&ns, outlier(3, 10), 0);
    for _ in 0..300 {
        let _ = send(&mut b, ()).await;
    }
    let snap = b.handle().snapshot();
    let ejected = snap
        .replicas
        .iter()
        .filter(|r| r.ejected_until.is_some())
        .count();
    assert_eq!(ejected, 1, "10% of 10 replicas");
    assert!(snap.ejections_refused > 0);
    // At least one replica is always ejectable, even when 10% is less than one.
    let two = nodes(&["x", "y"]);
    two[0].failing(true);
    let mut small = build(&two, outlier(3, 10), 0);
    until_ejected(&mut small, "x", 20).await;
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_over_an_interval_ejects() {
    let ns = nodes(&["a", "b"]);
    let cfg = OutlierConfig {
        consecutive_failures: 0,
        failure_rate_threshold: 0.5,
        failure_rate_min_requests: 20,
        ..outlier(0, 50)
    };
    let mut b = build(&ns, cfg, 0);
    // Round robin sends a the even requests; b fails 2 in 5 of its calls
    // and a 3 in 5: only a is above half.
    for i in 0..100 {
        let own = (i / 2) % 5;
        ns[0].failing(own < 3);
        ns[1].failing(own < 2);
        let _ = send(&mut b, ()).await;
    }
    ns[1].failing(false);
    assert!(
        b.handle()
            .snapshot()
            .replica("a")
            .unwrap()
            .ejected_until
            .is_none(),
        "judged when the interval ends"
    );
    // The window is judged at the replica's first failure after it ends.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for _ in 0..4 {
        let _ = send(&mut b, ()).await;
    }
    assert!(b
        .handle()
        .snapshot()
        .replica("a")
        .unwrap()
        .ejected_until
        .is_none());
    ns[0].failing(true);
    let _ = send(&mut b, ()).await;
    let _ = send(&mut b, ()).await;
    assert!(b
        .handle()
        .snapshot()
        .replica("a")
        .unwrap()
        .ejected_until
        .is_some());
    assert!(b
        .handle()
        .snapshot()
        .replica("b")
        .unwrap()
        .ejected_until
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn below_the_panic_threshold_traffic_goes_to_every_replica() {
    let ns = nodes(&["a", "b", "c", "d"]);
    for n in &ns[..3] {
        n.failing(true);
    }
    let mut b = build(&ns, outlier(2, 100), 50);
    for _ in 0..100 {
        let _ = send(&mut b, ()).await;
    }
    let snap = b.handle().snapshot();
    assert_eq!(
        snap.replicas
            .iter()
            .filter(|r| r.ejected_until.is_some())
            .count(),
        3
    );
    assert!(snap.panic, "1 healthy of 4 is below 50%");
    let before = calls(&ns);
    for _ in 0..400 {
        let _ = send(&mut b, ()).await;
    }
    for (n, was) in ns.iter().zip(before) {
        assert!(
            n.calls() - was > 60,
            "{} got {} of 400 in panic mode",
            n.name,
            n.calls() - was
        );
    }
    // After the ejections end, panic mode ends too.
    for n in &ns {
        n.failing(false);
    }
    tokio::time::sleep(Duration::from_secs(61)).await;
    let _ = send(&mut b, ()).await;
    assert!(!b.handle().snapshot().panic);

    // With panic mode off, everything goes to the one healthy replica.
    let ns = nodes(&["a", "b", "c", "d"]);
    for n in &ns[..3] {
        n.failing(true);
    }
    let mut strict = build(&ns, outlier(2, 100), 0);
    for _ in 0..100 {
        let _ = send(&mut strict, ()).await;
    }
    let before = calls(&ns);
    for _ in 0..100 {
        assert_eq!(send(&mut strict, ()).await.unwrap(), "d");
    }
    assert_eq!(calls(&ns)[..3], before[..3]);
}

#[tokio::test(start_paused = true)]
async fn with_every_replica_ejected_requests_wait_for_the_first_readmission() {
    let ns = nodes(&["a", "b"]);
    for n in &ns {
        n.failing(true);
    }
    let mut b = build(&ns, outlier(2, 100), 0);
    for _ in 0..10 {
        let _ = send(&mut b, ()).await;
    }
    let snap = b.handle().snapshot();
    assert!(snap.replicas.iter().all(|r| r.ejected_until.is_some()));
    assert!(
        !snap.available,
        "the balancer publishes that nothing is available"
    );
    let err = send(&mut b, ()).await.unwrap_err();
    let retry = tower_fleet::signal::ErrorSignals::unavailable(&err)
        .unwrap()
        .retry_after()
        .unwrap();
    assert!(
        retry <= Duration::from_secs(29) && retry > Duration::ZERO,
        "{retry:?}"
    );
}
