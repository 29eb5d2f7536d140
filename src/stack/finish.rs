//! `Finished`: a shard's quorum view whose answer is mapped to the stack's
//! response before the shard, retry and cache layers see it.

use std::task::{Context, Poll};

use futures_util::future::{MapOk, TryFutureExt};
use tower_service::Service;

use crate::signal::{HealthSignal, HealthSource};

/// A shard's member (its quorum view) with each answer passed through
/// `finish`, from [`StackBuilder::build_quorum_with`](super::StackBuilder::build_quorum_with).
///
/// A [`QuorumResponse`](crate::balance::QuorumResponse) names the replicas
/// that failed or lag behind, for repair; it is not `Clone`, which the cache
/// needs. `finish` acts on that report (starts a read repair, say) and turns
/// it into the response the layers above keep. It runs once per quorum
/// call, on the calling task, so it must not block. Health passes through
/// unchanged.
#[derive(Clone, Debug)]
pub struct Finished<Q, F> {
    inner: Q,
    finish: F,
}

impl<Q, F> Finished<Q, F> {
    pub(crate) fn new(inner: Q, finish: F) -> Self {
        Finished { inner, finish }
    }

    /// The quorum view.
    pub fn get_ref(&self) -> &Q {
        &self.inner
    }
}

impl<Q, F, Req, T> Service<Req> for Finished<Q, F>
where
    Q: Service<Req>,
    F: FnOnce(Q::Response) -> T + Clone,
{
    type Response = T;
    type Error = Q::Error;
    type Future = MapOk<Q::Future, F>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.inner.call(req).map_ok(self.finish.clone())
    }
}

impl<Q: HealthSource, F> HealthSource for Finished<Q, F> {
    fn health_signal(&self) -> HealthSignal {
        self.inner.health_signal()
    }
}
