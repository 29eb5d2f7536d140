//! Retry over the crate's fail-fast `CircuitBreaker` over a failing service:
//! retries never reach the backend while the breaker is open, they wait
//! exactly for the open error's retry-after, and they give up at once when
//! that wait would pass the deadline.

mod retry_common;

use retry_common::{ms, Act, Scripted, ZERO};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_fleet::breaker::{BreakerConfig, BreakerHandle, CircuitBreaker, OpenMode};
use tower_fleet::retry::{Backoff, Jitter, Retry, RetryError};
use tower_fleet::signal::{ErrorSignals, Unavailable, UnavailableKind};

/// A breaker that opens on every failure, for exactly one second, and lets
/// one probe through when half-open.
fn stack(backend: &Scripted) -> (CircuitBreaker<Scripted>, BreakerHandle) {
    let config = BreakerConfig {
        consecutive_failures: Some(1),
        open_duration: ms(1000),
        open_duration_multiplier: 1.0,
        open_jitter: 0.0,
        half_open_calls: 1,
        open_mode: OpenMode::FailFast,
        ..BreakerConfig::default()
    };
    let breaker = CircuitBreaker::builder()
        .config(config)
        .build(backend.clone())
        .unwrap();
    let handle = breaker.handle();
    (breaker, handle)
}

fn backoff() -> Backoff {
    Backoff::new(ms(10), ms(1000), Jitter::None).unwrap()
}

async fn send<S>(svc: &mut S) -> Result<String, RetryError>
where
    S: Service<String, Response = String, Error = RetryError>,
{
    svc.ready().await?.call("x".to_string()).await
}

#[tokio::test(start_paused = true)]
async fn retries_never_reach_the_backend_while_the_breaker_is_open() {
    let backend = Scripted::always(Act::Fail(ZERO));
    let (breaker, handle) = stack(&backend);
    let mut svc = Retry::builder()
        .max_attempts(5)
        .backoff(backoff())
        .timeout(ms(10_000))
        .no_budget()
        .build(breaker)
        .unwrap();
    let t0 = Instant::now();
    send(&mut svc).await.unwrap_err();
    // Attempts: backend at 0 (opens until 1000); fast fail at 10, which says
    // "retry after 990ms"; backend at 1000 (opens until 2000); fast fail at
    // 1040; backend at 2000.
    // The backend is only reached when the breaker admits a probe, exactly
    // as each open second ends: never inside an open period.
    assert_eq!(backend.times_ms(t0), [0, 1000, 2000]);
    let snap = handle.snapshot();
    assert_eq!(
        snap.rejected, 2,
        "one fast failure per open period, not a storm of them"
    );
    assert_eq!(snap.trips, 3);
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_through_once_the_retry_after_has_passed() {
    let backend = Scripted::new(|n| {
        if n == 1 {
            Act::Fail(ZERO)
        } else {
            Act::Ok(ZERO)
        }
    });
    let (breaker, handle) = stack(&backend);
    let mut svc = Retry::builder()
        .backoff(backoff())
        .timeout(ms(5000))
        .build(breaker)
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap(), "ok 2");
    assert_eq!(
        Instant::now() - t0,
        ms(1000),
        "it waited exactly for the breaker"
    );
    assert_eq!(handle.snapshot().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_beyond_the_deadline_returns_its_error_at_once() {
    let backend = Scripted::always(Act::Fail(ZERO));
    let (breaker, _handle) = stack(&backend);
    let mut svc = Retry::builder()
        .backoff(backoff())
        .timeout(ms(500))
        .build(breaker)
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(
        Instant::now() - t0,
        ms(10),
        "no wait for a retry-after the deadline cannot reach"
    );
    assert_eq!(
        err.unavailable().map(Unavailable::kind),
        Some(UnavailableKind::CircuitOpen)
    );
    assert_eq!(backend.count(), 1);
}
