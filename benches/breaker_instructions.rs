//! Instruction counts of one closed-state call, for callgrind: numbers that
//! do not move with machine noise. See BENCHMARKS.md for the command:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*measured*' BIN SUBJECT CALLS
//! ```
//!
//! `SUBJECT` is `bare`, `fleet-count`, `fleet-count-slow-coarse`,
//! `fleet-time-coarse` or `resilience`; only the `measured` function (CALLS
//! calls after a warm-up) is counted, so the total divided by CALLS is the
//! cost of one call. Run without arguments (as `cargo bench` does) it makes a
//! few calls of each subject and exits.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower::{Layer, Service};
use tower_fleet::breaker::CircuitBreaker;

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

#[inline(always)]
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

#[inline(never)]
fn measured<S: Service<u64>>(svc: &mut S, calls: u64) -> u64 {
    let mut ok = 0;
    for i in 0..calls {
        ok += u64::from(one_call(svc, black_box(i)));
    }
    ok
}

fn run<S: Service<u64>>(mut svc: S, calls: u64) {
    // Warm up: fill the window, touch every line.
    for i in 0..1_000 {
        one_call(&mut svc, i);
    }
    let ok = measured(&mut svc, calls);
    assert_eq!(ok, calls, "every call should succeed");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let calls: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let subjects: Vec<&str> = match args.first() {
        Some(s) => vec![s.as_str()],
        None => vec![
            "bare",
            "fleet-count",
            "fleet-count-slow-coarse",
            "fleet-time-coarse",
            "resilience",
        ],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let coarse = Duration::from_millis(1);
    for subject in subjects {
        match subject {
            "bare" => run(Noop, calls),
            "fleet-count" => run(
                CircuitBreaker::builder()
                    .count_window(100)
                    .build(Noop)
                    .unwrap(),
                calls,
            ),
            "fleet-count-slow-coarse" => run(
                CircuitBreaker::builder()
                    .count_window(100)
                    .slow_call_duration(Duration::from_secs(1))
                    .clock_resolution(coarse)
                    .build(Noop)
                    .unwrap(),
                calls,
            ),
            "fleet-time-coarse" => run(
                CircuitBreaker::builder()
                    .time_window(Duration::from_secs(60), 60)
                    .clock_resolution(coarse)
                    .build(Noop)
                    .unwrap(),
                calls,
            ),
            "resilience" => {
                let layer = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
                    .failure_rate_threshold(0.5)
                    .sliding_window_size(100)
                    .build()
                    .unwrap();
                run(layer.layer(Noop), calls)
            }
            other => {
                eprintln!("unknown subject {other}");
                std::process::exit(2);
            }
        }
    }
}
