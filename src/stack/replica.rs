//! What the stack puts around each replica: tower's timeout (when configured)
//! and a circuit breaker in not-ready mode.

use std::time::Duration;

use tower::timeout::Timeout;
use tower::util::{Either, MapErr};
use tower::Layer;
use tower_service::Service;

use crate::breaker::{CircuitBreaker, CircuitBreakerLayer};
use crate::BoxError;

/// A replica's transport behind tower's `Timeout`, or as it is (its errors
/// boxed) when the stack has no `[timeout]` table.
pub type Timed<S, Req> = Either<Timeout<S>, MapErr<S, fn(<S as Service<Req>>::Error) -> BoxError>>;

/// A replica as its shard's balancer holds it: behind its breaker.
pub type Guarded<S, Req, C> = CircuitBreaker<Timed<S, Req>, C>;

/// The per-replica layer: the optional timeout, then the breaker.
pub(crate) struct ReplicaLayer<C> {
    pub(crate) timeout: Option<Duration>,
    pub(crate) breaker: CircuitBreakerLayer<C>,
}

fn boxed<E: Into<BoxError>>(e: E) -> BoxError {
    e.into()
}

impl<C: Clone> ReplicaLayer<C> {
    pub(crate) fn wrap<S, Req>(&self, service: S) -> Guarded<S, Req, C>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        let timed: Timed<S, Req> = match self.timeout {
            Some(t) => Either::Left(Timeout::new(service, t)),
            None => Either::Right(MapErr::new(service, boxed::<S::Error> as fn(_) -> _)),
        };
        self.breaker.layer(timed)
    }
}
