//! What the breaker benches share: the no-op service, one call driven by
//! hand, and the configurations measured.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower::{Layer, Service};
use tower_fleet::breaker::{BreakerBuilder, CircuitBreaker};

/// A ready service that answers at once.
#[derive(Clone, Copy)]
pub struct Noop;

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

/// One call: ready, call, poll the response to completion, with a no-op
/// waker (no scheduler involved).
#[inline(always)]
pub fn one_call<S: Service<u64>>(svc: &mut S, req: u64) -> bool {
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

/// The count window of every configuration (resilience4j's default size).
pub const COUNT: u32 = 100;
const COARSE: Duration = Duration::from_millis(1);
const SLOW: Duration = Duration::from_secs(1);

/// Our configurations by name. The coarse ones need a tokio runtime.
pub fn fleet(name: &str) -> Option<BreakerBuilder> {
    let b = CircuitBreaker::builder();
    let time = |b: BreakerBuilder| b.time_window(Duration::from_secs(60), 60);
    Some(match name {
        "fleet-count" => b.count_window(COUNT),
        "fleet-count-slow" => b.count_window(COUNT).slow_call_duration(SLOW),
        "fleet-count-slow-coarse" => b
            .count_window(COUNT)
            .slow_call_duration(SLOW)
            .clock_resolution(COARSE),
        "fleet-time-coarse" => time(b).clock_resolution(COARSE),
        "fleet-time-slow-coarse" => time(b).slow_call_duration(SLOW).clock_resolution(COARSE),
        _ => return None,
    })
}

/// Every configuration of ours, in report order.
pub const FLEET: [&str; 5] = [
    "fleet-count",
    "fleet-count-slow",
    "fleet-count-slow-coarse",
    "fleet-time-coarse",
    "fleet-time-slow-coarse",
];

/// tower-resilience's circuit breaker with the same window and threshold.
pub fn resilience<S>(
    inner: S,
) -> tower_resilience_circuitbreaker::CircuitBreaker<
    S,
    tower_resilience_circuitbreaker::DefaultClassifier,
> {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(COUNT as usize)
        .build()
        .expect("a valid tower-resilience configuration")
        .layer(inner)
}
