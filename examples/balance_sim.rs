//! The scenario Linkerd published in 2016 ("Beyond Round Robin: Load
//! Balancing for Latency"), simulated in virtual time: 11 replicas at 1,000
//! requests/s, one of them answering in 2s for 30s, every call bounded by a
//! 1s timeout; then the same with that replica failing fast instead.
//!
//! It prints, side by side, the success rate, latency quantiles and the bad
//! replica's traffic share for round robin, tower's p2c (least pending and
//! peak-EWMA) and each of tower-fleet's strategies. Time is tokio's paused
//! clock, so the two 45-second runs per line take a few seconds:
//!
//! ```text
//! cargo run --release --example balance_sim
//! ```

#[path = "common/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use sim::{Backend, Behaviour, Report, Server};
use tower::balance::p2c;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};
use tower::timeout::Timeout;
use tower_fleet::balance::{Balance, OutlierConfig, Replica, Strategy};

const REPLICAS: usize = 11;
const RATE: u64 = 1000;
const RUN: Duration = Duration::from_secs(45);
/// The bad replica misbehaves from 5s to 35s (its share is counted then).
const BAD_FROM: Duration = Duration::from_secs(5);
const BAD_UNTIL: Duration = Duration::from_secs(35);
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
enum Scenario {
    Slow,
    FailFast,
}

/// Replica 0 is the bad one; the others answer in 10-30ms, 8 at a time.
fn fleet(scenario: Scenario) -> Vec<Arc<Backend>> {
    let normal = Behaviour::Serve {
        mean: Duration::from_millis(20),
    };
    let bad = match scenario {
        Scenario::Slow => Behaviour::Slow {
            latency: Duration::from_secs(2),
        },
        Scenario::FailFast => Behaviour::Fail {
            after: Duration::from_millis(1),
        },
    };
    let mut v = vec![Backend::new(8, move |t| {
        if (BAD_FROM..BAD_UNTIL).contains(&t) {
            bad
        } else {
            normal
        }
    })];
    v.extend((1..REPLICAS).map(|_| Backend::new(8, move |_| normal)));
    v
}

fn replica(b: &Arc<Backend>) -> Timeout<Server> {
    Timeout::new(Server(b.clone()), TIMEOUT)
}

#[derive(Clone, Copy, Debug)]
enum Line {
    RoundRobin,
    TowerPending,
    TowerEwma,
    Ours(&'static str),
}

impl Line {
    fn label(self) -> String {
        match self {
            Line::RoundRobin => "round robin (no ejection)".into(),
            Line::TowerPending => "tower p2c least-pending".into(),
            Line::TowerEwma => "tower p2c peak-EWMA".into(),
            Line::Ours(s) => format!("tower-fleet {s}"),
        }
    }
}

async fn run(line: Line, scenario: Scenario) -> (Report, f64) {
    let backends = fleet(scenario);
    let report = match line {
        Line::TowerPending => {
            let services: Vec<_> = backends
                .iter()
                .map(|b| PendingRequests::new(replica(b), CompleteOnResponse::default()))
                .collect();
            sim::run(p2c::Balance::new(ServiceList::new(services)), RATE, RUN).await
        }
        Line::TowerEwma => {
            let services: Vec<_> = backends
                .iter()
                .map(|b| {
                    PeakEwma::new(
                        replica(b),
                        Duration::from_millis(30),
                        10e9,
                        CompleteOnResponse::default(),
                    )
                })
                .collect();
            sim::run(p2c::Balance::new(ServiceList::new(services)), RATE, RUN).await
        }
        Line::RoundRobin | Line::Ours(_) => {
            let (strategy, eject) = match line {
                Line::Ours("peak-EWMA (default)") => (Strategy::peak_ewma(), true),
                Line::Ours("least request") => (Strategy::LeastRequest {}, true),
                Line::Ours("round robin") => (Strategy::RoundRobin {}, true),
                Line::Ours(_) => (Strategy::Random {}, true),
                _ => (Strategy::RoundRobin {}, false),
            };
            let balance = Balance::builder()
                .strategy(strategy)
                .outlier(OutlierConfig {
                    enabled: eject,
                    ..OutlierConfig::default()
                })
                .replicas(
                    backends
                        .iter()
                        .enumerate()
                        .map(|(i, b)| Replica::new(format!("r{i}"), replica(b))),
                )
                .build()
                .expect("a valid balancer");
            sim::run(balance, RATE, RUN).await
        }
    };
    // The bad replica's share while it is bad.
    let window = (BAD_UNTIL - BAD_FROM).as_secs() * RATE;
    let share = backends[0].received_between(BAD_FROM, BAD_UNTIL) as f64 / window as f64;
    (report, share)
}

fn ms(d: Duration) -> String {
    format!("{:.0}ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let lines = [
        Line::RoundRobin,
        Line::TowerPending,
        Line::TowerEwma,
        Line::Ours("peak-EWMA (default)"),
        Line::Ours("least request"),
        Line::Ours("round robin"),
        Line::Ours("random"),
    ];
    let started = std::time::Instant::now();
    for (scenario, title) in [
        (
            Scenario::Slow,
            "one replica answers in 2s for 30s (1s timeout)",
        ),
        (Scenario::FailFast, "one replica fails in 1ms for 30s"),
    ] {
        println!(
            "\n{REPLICAS} replicas, {RATE} requests/s for {}s; {title}\n",
            RUN.as_secs()
        );
        println!(
            "| balancer | failed | success | p50 | p99 | p99.9 | bad replica's share while bad |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for line in lines {
            let (r, share) = run(line, scenario).await;
            println!(
                "| {} | {} | {:.2}% | {} | {} | {} | {:.2}% |",
                line.label(),
                r.sent - r.ok,
                r.success_rate() * 100.0,
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                ms(r.quantile(0.999)),
                share * 100.0
            );
        }
    }
    println!(
        "\n(simulated in {:.1}s of real time)",
        started.elapsed().as_secs_f64()
    );
}
