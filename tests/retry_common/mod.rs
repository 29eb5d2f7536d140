//! A scripted inner service for the retry tests: each call does what the
//! script says for its call number, and the service logs when each call
//! arrived, which attempt mark it carried, and which calls were dropped
//! before they finished.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;
use tower_fleet::signal::{Carrier, Unavailable, UnavailableKind};
use tower_fleet::BoxError;

/// What one call does.
#[derive(Clone, Copy, Debug)]
pub enum Act {
    /// Answers `Ok("ok <n>")` after the delay.
    Ok(Duration),
    /// Fails with a plain error after the delay.
    Fail(Duration),
    /// Fails at once with the unavailable signal and this retry-after.
    Unavailable(Option<Duration>),
    /// Never answers.
    Hang,
}

/// One call as the service saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub at: Instant,
    pub attempt: Option<u32>,
    pub deadline: Option<Instant>,
}

#[derive(Clone)]
pub struct Scripted {
    script: Arc<dyn Fn(usize) -> Act + Send + Sync>,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub dropped: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn new(script: impl Fn(usize) -> Act + Send + Sync + 'static) -> Scripted {
        Scripted {
            script: Arc::new(script),
            calls: Arc::new(Mutex::new(Vec::new())),
            dropped: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn always(act: Act) -> Scripted {
        Scripted::new(move |_| act)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// When each call arrived, in milliseconds after `t0`.
    pub fn times_ms(&self, t0: Instant) -> Vec<u128> {
        self.calls()
            .iter()
            .map(|c| (c.at - t0).as_millis())
            .collect()
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Counts the futures dropped before they finished.
struct DropGuard {
    dropped: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.done {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pub fn unavailable(after: Option<Duration>) -> BoxError {
    Box::new(Unavailable::new(UnavailableKind::Server).with_retry_after(after))
}

impl<R: Carrier> Service<R> for Scripted {
    type Response = String;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                at: Instant::now(),
                attempt: req.attempt().map(|m| m.attempt()),
                deadline: req.deadline(),
            });
            calls.len()
        };
        let act = (self.script)(n);
        let guard = DropGuard {
            dropped: self.dropped.clone(),
            done: false,
        };
        Box::pin(async move {
            let mut guard = guard;
            let out = match act {
                Act::Ok(d) => {
                    tokio::time::sleep(d).await;
                    Ok(format!("ok {n}"))
                }
                Act::Fail(d) => {
                    tokio::time::sleep(d).await;
                    Err(BoxError::from(format!("fail {n}")))
                }
                Act::Unavailable(after) => Err(unavailable(after)),
                Act::Hang => std::future::pending().await,
            };
            guard.done = true;
            out
        })
    }
}

pub const ZERO: Duration = Duration::ZERO;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
