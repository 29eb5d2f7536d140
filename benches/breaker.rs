//! Per-call overhead of the circuit breaker, closed state, on a ready no-op
//! service, against the bare service and tower-resilience's breaker in the
//! same run. `cargo bench --bench breaker`; ids are
//! `breaker/<subject>/call/<tasks>`.
//!
//! - `/1`: one task polls ready, calls and polls the response to completion
//!   with a no-op waker (no scheduler in the measurement).
//! - `/4`: four tasks on a two-worker tokio runtime share one breaker (clones),
//!   each awaiting `ready()` and the response; the time is wall-clock per call.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tower::{Layer, Service, ServiceExt};
use tower_fleet::breaker::CircuitBreaker;

/// A ready service that answers at once.
#[derive(Clone, Copy)]
struct Noop;

impl Service<u64> for Noop {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// One call: ready, call, poll the response to completion.
#[inline]
fn one_call<S: Service<u64>>(svc: &mut S, req: u64) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = pin!(svc.call(req));
    loop {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r.is_ok();
        }
    }
}

const COUNT: u32 = 100;
const COARSE: Duration = Duration::from_millis(1);

/// Makes a fresh subject.
type Make = Box<dyn Fn() -> Box<dyn Subject>>;

fn subjects() -> Vec<(&'static str, Make)> {
    fn ours(b: tower_fleet::breaker::BreakerBuilder) -> Box<dyn Subject> {
        Box::new(b.build(Noop).unwrap())
    }
    vec![
        ("bare", Box::new(|| Box::new(Noop) as Box<dyn Subject>)),
        (
            "fleet-count",
            Box::new(|| ours(CircuitBreaker::builder().count_window(COUNT))),
        ),
        (
            "fleet-count-slow",
            Box::new(|| {
                ours(
                    CircuitBreaker::builder()
                        .count_window(COUNT)
                        .slow_call_duration(Duration::from_secs(1)),
                )
            }),
        ),
        (
            "fleet-count-slow-coarse",
            Box::new(|| {
                ours(
                    CircuitBreaker::builder()
                        .count_window(COUNT)
                        .slow_call_duration(Duration::from_secs(1))
                        .clock_resolution(COARSE),
                )
            }),
        ),
        (
            "fleet-time-coarse",
            Box::new(|| {
                ours(
                    CircuitBreaker::builder()
                        .time_window(Duration::from_secs(60), 60)
                        .clock_resolution(COARSE),
                )
            }),
        ),
        (
            "fleet-time-slow-coarse",
            Box::new(|| {
                ours(
                    CircuitBreaker::builder()
                        .time_window(Duration::from_secs(60), 60)
                        .slow_call_duration(Duration::from_secs(1))
                        .clock_resolution(COARSE),
                )
            }),
        ),
        (
            "resilience",
            Box::new(|| {
                let layer = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
                    .failure_rate_threshold(0.5)
                    .sliding_window_size(COUNT as usize)
                    .build()
                    .unwrap();
                Box::new(layer.layer(Noop)) as Box<dyn Subject>
            }),
        ),
    ]
}

/// A subject under test, erased so one loop drives them all.
trait Subject: Send {
    fn call_once(&mut self, req: u64) -> bool;
    fn run_tasks(&self, rt: &tokio::runtime::Runtime, tasks: usize, calls: u64) -> Duration;
}

impl<S> Subject for S
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    #[inline]
    fn call_once(&mut self, req: u64) -> bool {
        one_call(self, req)
    }

    fn run_tasks(&self, rt: &tokio::runtime::Runtime, tasks: usize, calls: u64) -> Duration {
        let per_task = calls.div_ceil(tasks as u64);
        rt.block_on(async {
            let start = Instant::now();
            let joins: Vec<_> = (0..tasks)
                .map(|_| {
                    let mut svc = self.clone();
                    tokio::spawn(async move {
                        for i in 0..per_task {
                            let svc = svc.ready().await.unwrap();
                            black_box(svc.call(i).await.unwrap());
                        }
                    })
                })
                .collect();
            for j in joins {
                j.await.unwrap();
            }
            start
                .elapsed()
                .mul_f64(calls as f64 / (per_task * tasks as u64) as f64)
        })
    }
}

fn bench(c: &mut Criterion) {
    // The coarse clock ticks on this runtime's worker while the bench thread calls.
    let clock_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let two_workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = clock_rt.enter();
    let mut g = c.benchmark_group("breaker");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    for (name, make) in subjects() {
        let mut subject = make();
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new(format!("{name}/call"), 1), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(subject.call_once(black_box(i)))
            })
        });
    }
    for (name, make) in subjects() {
        let subject = make();
        g.bench_function(BenchmarkId::new(format!("{name}/call"), 4), |b| {
            b.iter_custom(|iters| subject.run_tasks(&two_workers, 4, iters.max(4)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
