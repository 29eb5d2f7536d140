//! Small hand-written replicas for the balance tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower::Service;
use tower_fleet::balance::Replica;
use tower_fleet::BoxError;

/// A replica whose latency, failures and readiness the test controls.
#[derive(Clone)]
pub struct Node {
    pub name: &'static str,
    pub state: Arc<NodeState>,
}

#[derive(Default)]
pub struct NodeState {
    pub calls: AtomicU64,
    pub fail: AtomicBool,
    pub latency_ms: AtomicU64,
    pub not_ready: AtomicBool,
    pub broken: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Node {
    pub fn new(name: &'static str) -> Node {
        Node {
            name,
            state: Arc::default(),
        }
    }

    pub fn failing(&self, fail: bool) -> &Self {
        self.state.fail.store(fail, Ordering::SeqCst);
        self
    }

    pub fn latency(&self, ms: u64) -> &Self {
        self.state.latency_ms.store(ms, Ordering::SeqCst);
        self
    }

    pub fn broken(&self, broken: bool) -> &Self {
        self.state.broken.store(broken, Ordering::SeqCst);
        self
    }

    /// Makes `poll_ready` return `Pending` (`false`) or ready (`true`, waking waiters).
    pub fn ready(&self, ready: bool) -> &Self {
        self.state.not_ready.store(!ready, Ordering::SeqCst);
        if ready {
            for w in self.state.wakers.lock().unwrap().drain(..) {
                w.wake();
            }
        }
        self
    }

    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn replica(&self) -> Replica<Node> {
        Replica::new(self.name, self.clone())
    }
}

pub fn nodes(names: &[&'static str]) -> Vec<Node> {
    names.iter().map(|n| Node::new(n)).collect()
}

pub fn replicas(nodes: &[Node]) -> Vec<Replica<Node>> {
    nodes.iter().map(Node::replica).collect()
}

impl<Req> Service<Req> for Node {
    type Response = &'static str;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.state.broken.load(Ordering::SeqCst) {
            return Poll::Ready(Err("broken".into()));
        }
        if self.state.not_ready.load(Ordering::SeqCst) {
            self.state.wakers.lock().unwrap().push(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Req) -> Self::Future {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        let state = self.state.clone();
        let name = self.name;
        Box::pin(async move {
            let ms = state.latency_ms.load(Ordering::SeqCst);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if state.fail.load(Ordering::SeqCst) {
                Err("boom".into())
            } else {
                Ok(name)
            }
        })
    }
}

/// Sends one request through `svc` the tower way.
pub async fn send<S, Req>(svc: &mut S, req: Req) -> Result<S::Response, S::Error>
where
    S: Service<Req>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// How many calls each node got.
pub fn calls(nodes: &[Node]) -> Vec<u64> {
    nodes.iter().map(Node::calls).collect()
}
