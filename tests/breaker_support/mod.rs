//! Plumbing shared by the breaker's integration tests: a backend whose every
//! request says how it should go.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower::{Service, ServiceExt};
use tower_fleet::breaker::BreakerError;

/// A request that says how the backend answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Req {
    pub fail: bool,
    pub delay: Duration,
}

pub const OK: Req = Req {
    fail: false,
    delay: Duration::ZERO,
};
pub const FAIL: Req = Req {
    fail: true,
    delay: Duration::ZERO,
};

pub fn slow(delay: Duration) -> Req {
    Req { fail: false, delay }
}

pub fn slow_fail(delay: Duration) -> Req {
    Req { fail: true, delay }
}

/// A backend that counts the calls it receives and answers as told.
#[derive(Clone, Default)]
pub struct Backend {
    pub calls: Arc<AtomicUsize>,
}

impl Backend {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Req> for Backend {
    type Response = ();
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if !req.delay.is_zero() {
                tokio::time::sleep(req.delay).await;
            }
            if req.fail {
                Err(std::io::Error::other("backend failed"))
            } else {
                Ok(())
            }
        })
    }
}

/// Polls ready, then calls.
pub async fn send<S>(svc: &mut S, req: Req) -> Result<(), BreakerError>
where
    S: Service<Req, Response = (), Error = BreakerError>,
{
    svc.ready().await?.call(req).await
}

/// Sends each request in turn, ignoring the answers.
pub async fn send_all<S>(svc: &mut S, reqs: impl IntoIterator<Item = Req>)
where
    S: Service<Req, Response = (), Error = BreakerError>,
{
    for r in reqs {
        let _ = send(svc, r).await;
    }
}
