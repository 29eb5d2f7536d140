//! Small upstream services for the cache tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};
use tower_fleet::cache::CacheError;
use tower_fleet::key::Key;

/// An upstream that counts its calls, answers `"{req}#{n}"` (n = the call's
/// number, from 1) after `latency`, or fails while told to, or waits for a
/// gate permit per call.
#[derive(Clone)]
pub struct Upstream {
    pub calls: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    pub latency: Duration,
    pub gate: Option<Arc<Semaphore>>,
    /// Wakes itself this many times before answering (to show waiters are
    /// not woken by the leader's wake-ups).
    pub spins: usize,
}

impl Upstream {
    pub fn new(latency: Duration) -> Upstream {
        Upstream {
            calls: Arc::new(AtomicUsize::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
            latency,
            gate: None,
            spins: 0,
        }
    }

    /// An upstream whose calls each wait for a permit of the returned gate.
    pub fn gated() -> (Upstream, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let mut up = Upstream::new(Duration::ZERO);
        up.gate = Some(gate.clone());
        (up, gate)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("upstream failed on call {0}")]
pub struct UpstreamError(pub usize);

/// The key of a `String` request: the string.
#[allow(clippy::ptr_arg)] // the cache's request type is `String`
pub fn key(req: &String) -> Option<Key<'_>> {
    Some(Key::from(req.as_str()))
}

/// One request for `k` through a clone of `svc`.
pub async fn get<S>(svc: &S, k: &str) -> Result<String, CacheError>
where
    S: Service<String, Response = String, Error = CacheError> + Clone,
{
    svc.clone().oneshot(k.to_string()).await
}

/// Requests the upstream can name in its answers.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for String {
    fn name(&self) -> &str {
        self
    }
}

impl Named for &'static str {
    fn name(&self) -> &str {
        self
    }
}

impl Named for u64 {
    fn name(&self) -> &str {
        "n"
    }
}

impl<T: Named> Named for tower_fleet::signal::Envelope<T> {
    fn name(&self) -> &str {
        self.payload.name()
    }
}

impl<R: Named + Send + 'static> Service<R> for Upstream {
    type Response = String;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<String, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let failing = self.failing.clone();
        let latency = self.latency;
        let gate = self.gate.clone();
        let spins = self.spins;
        Box::pin(async move {
            for _ in 0..spins {
                tokio::task::yield_now().await;
            }
            if let Some(gate) = gate {
                gate.acquire().await.expect("gate closed").forget();
            }
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if failing.load(Ordering::SeqCst) {
                Err(UpstreamError(n))
            } else {
                Ok(format!("{}#{n}", req.name()))
            }
        })
    }
}

/// Polls `fut` to completion, counting its polls.
pub async fn count_polls<F: Future>(fut: F) -> (F::Output, usize) {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0;
    let out = std::future::poll_fn(|cx| {
        polls += 1;
        fut.as_mut().poll(cx)
    })
    .await;
    (out, polls)
}

/// Lets every other task on a current-thread runtime run until it waits.
pub async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Polls `fut` once.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}
