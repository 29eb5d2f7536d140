//! Retry over a fail-fast circuit breaker over a failing service.
//!
//! The breaker here is a small stand-in written for this test: it follows
//! the contract of the crate's `CircuitBreaker` in fail-fast mode (always
//! ready; while open, calls fail at once with an error whose source is
//! `signal::Unavailable { kind: CircuitOpen, retry_after }`; after the open
//! period one probe goes through). It keeps a log of when it was open, so
//! the test can check that the backend was never called inside that time.

mod retry_common;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use retry_common::{ms, Act, Scripted, ZERO};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_fleet::retry::{Backoff, Jitter, Retry, RetryError};
use tower_fleet::signal::{find_unavailable, ErrorSignals, Unavailable, UnavailableKind};
use tower_fleet::BoxError;

#[derive(Debug, thiserror::Error)]
enum BreakerError {
    #[error("circuit breaker open")]
    Open(#[source] Unavailable),
    #[error("{0}")]
    Inner(BoxError),
}

impl ErrorSignals for BreakerError {
    fn unavailable(&self) -> Option<&Unavailable> {
        match self {
            BreakerError::Open(u) => Some(u),
            BreakerError::Inner(e) => find_unavailable(&**e),
        }
    }
}

#[derive(Default)]
struct BreakerState {
    open_until: Option<Instant>,
    /// Every open period, as [from, until).
    opened: Vec<(Instant, Instant)>,
    rejected: usize,
}

/// Opens on every failure, for `open_for`; fails fast while open.
#[derive(Clone)]
struct FailFastBreaker<S> {
    inner: S,
    open_for: Duration,
    state: Arc<Mutex<BreakerState>>,
}

impl<S, Req> Service<Req> for FailFastBreaker<S>
where
    S: Service<Req, Response = String, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = String;
    type Error = BreakerError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, BreakerError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BreakerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let now = Instant::now();
        {
            let mut st = self.state.lock().unwrap();
            if let Some(until) = st.open_until.filter(|u| now < *u) {
                st.rejected += 1;
                let signal = Unavailable::new(UnavailableKind::CircuitOpen)
                    .with_retry_after(Some(until - now));
                return Box::pin(std::future::ready(Err(BreakerError::Open(signal))));
            }
        }
        let fut = self.inner.call(req);
        let (state, open_for) = (self.state.clone(), self.open_for);
        Box::pin(async move {
            let result = fut.await;
            let mut st = state.lock().unwrap();
            match result {
                Ok(r) => {
                    st.open_until = None;
                    Ok(r)
                }
                Err(e) => {
                    let now = Instant::now();
                    st.open_until = Some(now + open_for);
                    st.opened.push((now, now + open_for));
                    Err(BreakerError::Inner(e))
                }
            }
        })
    }
}

fn stack(backend: &Scripted) -> (FailFastBreaker<Scripted>, Arc<Mutex<BreakerState>>) {
    let state = Arc::new(Mutex::new(BreakerState::default()));
    let breaker = FailFastBreaker {
        inner: backend.clone(),
        open_for: ms(1000),
        state: state.clone(),
    };
    (breaker, state)
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
    let (breaker, state) = stack(&backend);
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
    assert_eq!(backend.times_ms(t0), [0, 1000, 2000]);
    let st = state.lock().unwrap();
    assert_eq!(
        st.rejected, 2,
        "one fast failure per open period, not a storm of them"
    );
    for call in backend.calls() {
        for &(from, until) in &st.opened {
            assert!(
                !(from < call.at && call.at < until),
                "backend called while the breaker was open"
            );
        }
    }
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
    let (breaker, state) = stack(&backend);
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
    assert_eq!(state.lock().unwrap().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_beyond_the_deadline_returns_its_error_at_once() {
    let backend = Scripted::always(Act::Fail(ZERO));
    let (breaker, _state) = stack(&backend);
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
