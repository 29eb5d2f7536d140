//! Benches of the balance layer: pick + call overhead over always-ready
//! replicas at 10, 100 and 1,000 replicas, against tower's p2c balancer with
//! `PendingRequests` and with `PeakEwma` in the same run; the pick alone;
//! and a quorum call (W = 2 of 3) against a single call over the same set.

mod balance_common;

use std::hint::black_box;
use std::time::Duration;

use balance_common::Noop;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures_util::FutureExt;
use tower::balance::p2c;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma, PendingRequests};
use tower::{Service, ServiceExt};
use tower_fleet::balance::{Balance, FirstReply, QuorumKind, Replica, Strategy};
use tower_fleet::clock::Clock;

const SIZES: [usize; 3] = [10, 100, 1000];

fn ours(strategy: Strategy, n: usize) -> Balance<Noop> {
    Balance::builder()
        .strategy(strategy)
        .replicas((0..n).map(|i| Replica::new(format!("10.0.{}.{}:80", i / 256, i % 256), Noop)))
        .build()
        .expect("a valid balancer")
}

fn strategies() -> [(&'static str, Strategy); 4] {
    [
        ("least_request", Strategy::LeastRequest {}),
        ("peak_ewma", Strategy::peak_ewma()),
        ("round_robin", Strategy::RoundRobin {}),
        ("random", Strategy::Random {}),
    ]
}

/// One request the tower way: wait for readiness, call, await the answer.
fn one<S: Service<()>>(svc: &mut S) {
    let ready = svc.ready().now_or_never();
    assert!(matches!(ready, Some(Ok(_))), "always ready");
    black_box(svc.call(()).now_or_never());
}

fn pick_and_call(c: &mut Criterion) {
    for n in SIZES {
        let mut g = c.benchmark_group(format!("balance/call/{n}"));
        let pending: Vec<_> = (0..n)
            .map(|_| PendingRequests::new(Noop, CompleteOnResponse::default()))
            .collect();
        let mut tower_pending = p2c::Balance::new(ServiceList::new(pending));
        g.bench_function("tower_p2c_pending", |b| b.iter(|| one(&mut tower_pending)));
        let ewma: Vec<_> = (0..n)
            .map(|_| {
                PeakEwma::new(
                    Noop,
                    Duration::from_millis(30),
                    10e9,
                    CompleteOnResponse::default(),
                )
            })
            .collect();
        let mut tower_ewma = p2c::Balance::new(ServiceList::new(ewma));
        g.bench_function("tower_p2c_peak_ewma", |b| b.iter(|| one(&mut tower_ewma)));
        for (name, strategy) in strategies() {
            let mut balance = ours(strategy, n);
            g.bench_function(name, |b| b.iter(|| one(&mut balance)));
        }
        // Peak-EWMA timed by the coarse clock (an atomic tick kept by a
        // background task), as a hot path would run it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let clock = {
            let _in = rt.enter();
            Clock::coarse(Duration::from_millis(1)).unwrap()
        };
        let mut coarse = Balance::builder()
            .clock(clock)
            .replicas((0..n).map(|i| Replica::new(format!("r{i}"), Noop)))
            .build()
            .unwrap();
        g.bench_function("peak_ewma_coarse_clock", |b| b.iter(|| one(&mut coarse)));
        g.finish();
    }
}

fn pick_alone(c: &mut Criterion) {
    for (name, strategy) in strategies() {
        let mut g = c.benchmark_group(format!("balance/pick/{name}"));
        for n in SIZES {
            let handle = ours(strategy.clone(), n).handle();
            g.bench_with_input(BenchmarkId::from_parameter(n), &handle, |b, h| {
                b.iter(|| black_box(h.pick()))
            });
        }
        g.finish();
    }
}

/// The quorum mode's own cost: a write of 2 of 3 over ready replicas that
/// answer at once (every copy answers in the first poll, so no straggler
/// task is spawned), against one single call over the same set; one group
/// per strategy, so that each has its own anchor.
fn quorum_call(c: &mut Criterion) {
    for (name, strategy) in [
        ("peak_ewma", Strategy::peak_ewma()),
        ("least_request", Strategy::LeastRequest {}),
    ] {
        let mut g = c.benchmark_group(format!("balance/quorum_{name}/3"));
        let balance = ours(strategy, 3);
        let mut single = balance.clone();
        g.bench_function("single_call", |b| b.iter(|| one(&mut single)));
        let mut write = balance.quorum(QuorumKind::Write, FirstReply);
        let answer = write.call(()).now_or_never();
        assert!(
            matches!(&answer, Some(Ok(a)) if a.replies.len() == 3),
            "decided in the first poll, with every reply"
        );
        g.bench_function("write_2_of_3", |b| b.iter(|| one(&mut write)));
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = pick_and_call, pick_alone, quorum_call
}
criterion_main!(benches);
