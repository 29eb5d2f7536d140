//! The balancer with the crate's own circuit breaker on every replica, in
//! not-ready mode (`BalanceBuilder::replica_breakers`), on paused time.

mod balance_common;

use std::time::Duration;

use balance_common::{calls, nodes, replicas, send};
use tower_fleet::balance::{Balance, BalanceBuildError, BalanceConfig, OutlierConfig, Strategy};
use tower_fleet::breaker::BreakerConfig;

fn breaker_config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(3),
        open_duration: Duration::from_secs(10),
        open_jitter: 0.0,
        half_open_calls: 2,
        ..BreakerConfig::replica()
    }
}

fn balance_config() -> BalanceConfig {
    BalanceConfig {
        // Round robin, so that shares show the breaker's effect alone; and
        // the balancer's own ejection off, so that only the breaker acts.
        strategy: Strategy::RoundRobin {},
        outlier: OutlierConfig {
            enabled: false,
            ..OutlierConfig::default()
        },
        ..BalanceConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn traffic_leaves_a_replica_whose_breaker_opened_and_returns_after_it_closes() {
    let ns = nodes(&["a", "b", "c"]);
    let mut balance = Balance::builder()
        .config(balance_config())
        .replica_breakers(breaker_config())
        .replicas(replicas(&ns))
        .build()
        .unwrap();
    ns[0].failing(true);
    let mut failures = 0;
    for _ in 0..30 {
        if send(&mut balance, ()).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 3, "three failures open a's breaker; none after");
    assert_eq!(calls(&ns)[0], 3);

    // Open: a gets nothing, and no request waits for it.
    let start = tokio::time::Instant::now();
    for _ in 0..100 {
        assert!(send(&mut balance, ()).await.is_ok());
    }
    assert_eq!(
        tokio::time::Instant::now(),
        start,
        "nobody waited for the open replica"
    );
    assert_eq!(calls(&ns)[0], 3);

    // a recovers; once the open duration has passed, its probes go through
    // and the breaker closes, and a takes its share again.
    ns[0].failing(false);
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..60 {
        assert!(send(&mut balance, ()).await.is_ok());
    }
    let a = calls(&ns)[0] - 3;
    assert!(a >= 15, "a took {a} of 60 after its breaker closed");
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_fails_reopens_the_breaker_and_keeps_traffic_away() {
    let ns = nodes(&["a", "b"]);
    let mut balance = Balance::builder()
        .config(balance_config())
        .replica_breakers(breaker_config())
        .replicas(replicas(&ns))
        .build()
        .unwrap();
    ns[0].failing(true);
    for _ in 0..20 {
        let _ = send(&mut balance, ()).await;
    }
    assert_eq!(calls(&ns)[0], 3);
    tokio::time::advance(Duration::from_secs(10)).await;
    // Half-open: exactly `half_open_calls` probes reach a; they fail, the
    // breaker reopens, and a is skipped again.
    let mut failures = 0;
    for _ in 0..40 {
        if send(&mut balance, ()).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "two failed probes, then a is skipped again");
    assert_eq!(calls(&ns)[0], 5);
}

#[test]
fn an_invalid_breaker_configuration_is_reported_by_build() {
    let ns = nodes(&["a"]);
    let bad = BreakerConfig {
        half_open_calls: 0,
        ..BreakerConfig::replica()
    };
    let err = Balance::builder()
        .replica_breakers(bad)
        .replicas(replicas(&ns))
        .build()
        .unwrap_err();
    assert!(matches!(err, BalanceBuildError::ReplicaBreaker(_)), "{err}");
}
