//! What the balance benches share: a replica that costs nothing.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use tower::Service;

/// A replica that is always ready and answers at once.
#[derive(Clone, Copy)]
pub struct Noop;

impl Service<()> for Noop {
    type Response = ();
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: ()) -> Self::Future {
        ready(Ok(()))
    }
}
