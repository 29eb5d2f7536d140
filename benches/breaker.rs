//! Per-call overhead of the circuit breaker, closed state, on a ready no-op
//! service, against the bare service and tower-resilience's breaker in the
//! same run. `cargo bench --bench breaker`; ids are
//! `breaker/<subject>/call/<tasks>`.
//!
//! - `/1`: one task polls ready, calls and polls the response to completion
//!   with a no-op waker (no scheduler in the measurement).
//! - `/4`: four tasks on a two-worker tokio runtime share one breaker (clones),
//!   each awaiting `ready()` and the response; the time is wall-clock per call.

mod breaker_common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use breaker_common::{fleet, one_call, resilience, Noop, FLEET};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tower::{Service, ServiceExt};

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

/// Every subject, freshly made, in report order.
fn subjects() -> Vec<(&'static str, Box<dyn Subject>)> {
    let mut all: Vec<(&'static str, Box<dyn Subject>)> = vec![("bare", Box::new(Noop))];
    for name in FLEET {
        let breaker = fleet(name)
            .and_then(|b| b.build(Noop).ok())
            .expect("a valid configuration");
        all.push((name, Box::new(breaker)));
    }
    all.push(("resilience", Box::new(resilience(Noop))));
    all
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
    for (name, mut subject) in subjects() {
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new(format!("{name}/call"), 1), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(subject.call_once(black_box(i)))
            })
        });
    }
    for (name, subject) in subjects() {
        g.bench_function(BenchmarkId::new(format!("{name}/call"), 4), |b| {
            b.iter_custom(|iters| subject.run_tasks(&two_workers, 4, iters.max(4)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
