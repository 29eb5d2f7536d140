//! Traffic shares in virtual time: a slow replica and a fast-failing replica,
//! our strategies against round robin and tower's peak-EWMA p2c.
//!
//! The fleet: 10 replicas, each serving 2 requests at a time; nine answer in
//! 10ms on average (200 requests/s each), the odd one is 10x slower (20/s) or
//! fails in 1ms. The client sends 1,000 requests/s for 20s: about 55% of the
//! slow-replica fleet's 1,820/s capacity.

#[path = "../examples/common/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use sim::{Backend, Behaviour, Server};
use tower::balance::p2c;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower_fleet::balance::{Balance, OutlierConfig, Replica, Strategy};

const RATE: u64 = 1000;
const RUN: Duration = Duration::from_secs(20);

fn fleet(odd: Behaviour) -> Vec<Arc<Backend>> {
    let mut v = vec![Backend::new(2, move |_| odd)];
    v.extend((1..10).map(|_| {
        Backend::new(2, |_| Behaviour::Serve {
            mean: Duration::from_millis(10),
        })
    }));
    v
}

/// The odd replica's share under one of our strategies.
async fn ours(odd: Behaviour, strategy: Strategy, eject: bool) -> f64 {
    let backends = fleet(odd);
    let b = Balance::builder()
        .strategy(strategy)
        .outlier(OutlierConfig {
            enabled: eject,
            ..OutlierConfig::default()
        })
        .replicas(
            backends
                .iter()
                .enumerate()
                .map(|(i, b)| Replica::new(format!("r{i}"), Server(b.clone()))),
        )
        .build()
        .unwrap();
    let report = sim::run(b, RATE, RUN).await;
    sim::share(&backends[0], &report)
}

/// The odd replica's share under tower's p2c over peak-EWMA.
async fn towers(odd: Behaviour) -> f64 {
    let backends = fleet(odd);
    let services = backends.iter().map(|b| {
        PeakEwma::new(
            Server(b.clone()),
            Duration::from_millis(30),
            10e9,
            CompleteOnResponse::default(),
        )
    });
    let balance = p2c::Balance::new(ServiceList::new(services.collect::<Vec<_>>()));
    let report = sim::run(balance, RATE, RUN).await;
    sim::share(&backends[0], &report)
}

#[tokio::test(start_paused = true)]
async fn a_ten_times_slower_replica_gets_a_small_fraction_of_its_round_robin_share() {
    let slow = Behaviour::Serve {
        mean: Duration::from_millis(100),
    };
    let rr = ours(slow, Strategy::RoundRobin {}, false).await;
    let ewma = ours(slow, Strategy::peak_ewma(), true).await;
    let lr = ours(slow, Strategy::LeastRequest {}, true).await;
    assert!((rr - 0.1).abs() < 0.005, "round robin: {rr}");
    assert!(ewma <= rr / 5.0, "peak-EWMA {ewma} vs round robin {rr}");
    assert!(lr <= rr / 3.0, "least request {lr} vs round robin {rr}");
}

#[tokio::test(start_paused = true)]
async fn a_fast_failing_replica_gets_less_than_under_round_robin_and_half_of_towers() {
    let failing = Behaviour::Fail {
        after: Duration::from_millis(1),
    };
    let rr = ours(failing, Strategy::RoundRobin {}, false).await;
    let tower = towers(failing).await;
    let default = ours(failing, Strategy::peak_ewma(), true).await;
    // Without ejection, the failure penalty alone keeps it out.
    let no_eject = ours(failing, Strategy::peak_ewma(), false).await;
    assert!(default < rr, "ours {default} vs round robin {rr}");
    assert!(
        default <= tower / 2.0,
        "ours {default} vs tower's peak-EWMA {tower}"
    );
    assert!(
        no_eject <= tower / 2.0,
        "penalty only {no_eject} vs tower's {tower}"
    );
}
