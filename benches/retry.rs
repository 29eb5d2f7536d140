//! Retry layer benches, each against its anchor in the same run:
//!
//! - `*/call-ok/u64`: a first-try success through the layer (budget off, on
//!   with tokio's clock, on with the coarse clock; hedging fixed and p95),
//!   against the bare no-op service, `tower::retry::Retry` with a trivial
//!   policy and with `TpsBudget`, and `tower::hedge::Hedge`.
//! - `*/deposit-withdraw/1`: one deposit and one withdrawal, ours against
//!   `tower::retry::budget::TpsBudget`.
//!
//! Futures are polled once by hand with a no-op waker (every service here
//! answers at once), inside an entered tokio runtime, so no executor cost is
//! measured. Requests are `u64`, so copying one costs nothing and the tables
//! show the layers' own overhead.

use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::Criterion;
use tower::retry::budget::{Budget, TpsBudget};
use tower::Service;
use tower_fleet::clock::Clock;
use tower_fleet::retry::{BudgetConfig, HedgeConfig, Retry, RetryBudget};
use tower_fleet::BoxError;

/// Answers every request at once.
#[derive(Clone, Copy)]
struct Noop;

impl Service<u64> for Noop {
    type Response = u64;
    type Error = BoxError;
    type Future = Ready<Result<u64, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

impl Service<String> for Noop {
    type Response = usize;
    type Error = BoxError;
    type Future = Ready<Result<usize, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: String) -> Self::Future {
        ready(Ok(req.len()))
    }
}

/// Retries errors, copies requests; nothing else.
#[derive(Clone, Copy)]
struct Trivial;

impl<Req: Clone, Res> tower::retry::Policy<Req, Res, BoxError> for Trivial {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, BoxError>) -> Option<Ready<()>> {
        result.is_err().then(|| ready(()))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// tower's documented budget policy: deposit on success, withdraw to retry.
#[derive(Clone)]
struct Budgeted(Arc<TpsBudget>);

impl tower::retry::Policy<u64, u64, BoxError> for Budgeted {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, BoxError>) -> Option<Ready<()>> {
        match result {
            Ok(_) => {
                self.0.deposit();
                None
            }
            Err(_) => self.0.withdraw().then(|| ready(())),
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

#[derive(Clone, Copy)]
struct HedgeAll;

impl tower::hedge::Policy<u64> for HedgeAll {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }

    fn can_retry(&self, _req: &u64) -> bool {
        true
    }
}

/// One request: ready, call, and one poll of the response future.
#[inline]
fn once<S>(svc: &mut S, req: u64) -> u64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    once_with(svc, req)
}

#[inline]
fn once_with<S, Req>(svc: &mut S, req: Req) -> S::Response
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = std::pin::pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("a no-op service answers at once"),
    }
}

/// Where the cases run: criterion's timing, or (`RETRY_BENCH_COUNT=name:n`)
/// exactly `n` iterations of one case inside `count_loop`, for instruction
/// counts under `valgrind --tool=callgrind --toggle-collect='*count_loop*'`,
/// which are repeatable where the timings on a shared VM are not.
enum Mode<'a> {
    Time(criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>),
    Count { only: String, iterations: u64 },
}

impl Mode<'_> {
    fn run(&mut self, name: &str, mut f: impl FnMut()) {
        match self {
            Mode::Time(g) => {
                g.bench_function(name, |b| b.iter(&mut f));
            }
            Mode::Count { only, iterations } if only == name => count_loop(*iterations, &mut f),
            Mode::Count { .. } => {}
        }
    }

    fn service<S>(&mut self, name: &str, mut svc: S)
    where
        S: Service<u64, Response = u64>,
        S::Error: std::fmt::Debug,
    {
        let mut i = 0u64;
        self.run(name, || {
            i = i.wrapping_add(1);
            black_box(once(&mut svc, black_box(i)));
        });
    }

    fn string_service<S>(&mut self, name: &str, mut svc: S)
    where
        S: Service<String, Response = usize>,
        S::Error: std::fmt::Debug,
    {
        let req = "GET /users/42/profile?fields=all".to_string();
        self.run(name, || {
            black_box(once_with(&mut svc, black_box(req.clone())));
        });
    }
}

#[inline(never)]
fn count_loop(iterations: u64, f: &mut impl FnMut()) {
    for _ in 0..iterations {
        f();
    }
}

fn benches(mode: &mut Mode<'_>) {
    // One worker, so that the coarse clock ticks in the background as it would in a server.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let coarse = Clock::coarse(Duration::from_millis(1)).unwrap();

    // First-try success.
    mode.service("bare/call-ok/u64", Noop);
    mode.service(
        "tower-retry/call-ok/u64",
        tower::retry::Retry::new(Trivial, Noop),
    );
    let tps = Budgeted(Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)));
    mode.service(
        "tower-retry-tps/call-ok/u64",
        tower::retry::Retry::new(tps, Noop),
    );
    let ours = Retry::builder().no_budget().build(Noop).unwrap();
    mode.service("ours-no-budget/call-ok/u64", ours);
    mode.service(
        "ours-budget/call-ok/u64",
        Retry::builder().build(Noop).unwrap(),
    );
    let ours_coarse = Retry::builder().clock(coarse.clone()).build(Noop).unwrap();
    mode.service("ours-budget-coarse/call-ok/u64", ours_coarse);

    // The same with a request that allocates to be copied (a 32-byte string).
    mode.string_service("bare/call-ok/string", Noop);
    let tower_trivial = tower::retry::Retry::new(Trivial, Noop);
    mode.string_service("tower-retry/call-ok/string", tower_trivial);
    let ours = Retry::builder().no_budget().build(Noop).unwrap();
    mode.string_service("ours-no-budget/call-ok/string", ours);

    // Hedging machinery on a service that answers at once (no hedge is sent).
    let tower_hedge =
        tower::hedge::Hedge::new::<u64>(Noop, HedgeAll, 10, 0.95, Duration::from_secs(1));
    mode.service("tower-hedge/call-ok/u64", tower_hedge);
    let fixed = || {
        Retry::builder()
            .no_budget()
            .hedge(HedgeConfig::after(Duration::from_millis(50)))
    };
    mode.service("ours-hedge-fixed/call-ok/u64", fixed().build(Noop).unwrap());
    let fixed_coarse = fixed().clock(coarse.clone()).build(Noop).unwrap();
    mode.service("ours-hedge-fixed-coarse/call-ok/u64", fixed_coarse);
    let p95 = HedgeConfig::at_percentile(0.95, Duration::from_millis(1));
    let pct = Retry::builder()
        .no_budget()
        .clock(coarse.clone())
        .hedge(p95);
    mode.service(
        "ours-hedge-p95-coarse/call-ok/u64",
        pct.build(Noop).unwrap(),
    );

    // The budget alone: one deposit and one withdrawal.
    let tps = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    mode.run("tps-budget/deposit-withdraw/1", || {
        tps.deposit();
        black_box(tps.withdraw());
    });
    let ours = RetryBudget::new(Duration::from_secs(10), 10, 0.2).unwrap();
    mode.run("ours-budget/deposit-withdraw/1", || {
        ours.deposit();
        black_box(ours.withdraw());
    });
    let ours = RetryBudget::from_config(&BudgetConfig::default(), coarse).unwrap();
    mode.run("ours-budget-coarse/deposit-withdraw/1", || {
        ours.deposit();
        black_box(ours.withdraw());
    });
}

fn main() {
    if let Ok(spec) = std::env::var("RETRY_BENCH_COUNT") {
        let (name, n) = spec
            .rsplit_once(':')
            .expect("RETRY_BENCH_COUNT=name:iterations");
        let iterations = n.parse().expect("iterations");
        benches(&mut Mode::Count {
            only: name.to_string(),
            iterations,
        });
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("retry");
        g.sample_size(60)
            .warm_up_time(Duration::from_millis(700))
            .measurement_time(Duration::from_secs(2));
        let mut mode = Mode::Time(g);
        benches(&mut mode);
        if let Mode::Time(g) = mode {
            g.finish();
        }
    }
    c.final_summary();
}
