//! The `Balance` service: spreads requests over a set of replicas.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::core::Core;
use super::error::BalanceError;
use super::future::ResponseFuture;
use super::handle::BalanceHandle;
use crate::classify::{Classify, ErrorIsFailure};
use crate::signal::{Carrier, HealthSignal, HealthSource};
use crate::BoxError;

/// Spreads requests over a set of replicas, routing around the slow and the
/// broken. Built with [`Balance::builder`] or [`BalanceLayer`](super::BalanceLayer);
/// see the [module docs](super) for the semantics. In short:
///
/// - `Clone`: all clones share one replica set, its load and health, so no
///   `Buffer` is needed in front of it.
/// - Always ready: a call picks a replica (skipping those whose health
///   signals say unavailable), clones its service and drives that clone's
///   readiness inside the response future, trying a second replica while the
///   first is not ready. With no replica available it waits up to
///   `ready_timeout` (or the request's deadline) and fails with the shared
///   unavailable signal; with an empty set it fails at once.
/// - Each outcome, judged by the classifier `C`, feeds the latency estimate
///   and outlier ejection.
pub struct Balance<S, C = ErrorIsFailure> {
    pub(crate) core: Arc<Core<S>>,
    pub(crate) classify: C,
}

impl<S, C: Clone> Clone for Balance<S, C> {
    fn clone(&self) -> Self {
        Balance {
            core: self.core.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S, C> fmt::Debug for Balance<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("replicas", &self.core.set.load().slots.len())
            .field("strategy", &self.core.shared.settings.kind)
            .finish_non_exhaustive()
    }
}

impl<S, C> Balance<S, C> {
    /// A handle on this balancer's replica set and counters (shared by all
    /// clones).
    pub fn handle(&self) -> BalanceHandle<S> {
        BalanceHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, C> HealthSource for Balance<S, C> {
    /// Unavailable while no replica is (the set is empty, or every replica
    /// is ejected, failing its health checks or reporting itself unavailable),
    /// so a router above can skip this balancer without calling it.
    fn health_signal(&self) -> HealthSignal {
        self.core.shared.signal.clone()
    }
}

impl<S, C, Req> Service<Req> for Balance<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
    Req: Carrier,
{
    type Response = S::Response;
    type Error = BalanceError;
    type Future = ResponseFuture<S, C, Req>;

    /// Always ready: the chosen replica's readiness is driven inside the
    /// response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::start(&self.core, self.classify.clone(), req)
    }
}
