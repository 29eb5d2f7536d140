//! The shared signals through which the layers meet.
//!
//! tower-fleet's layers work alone, and they work better together because
//! they share a few small types rather than knowing each other:
//!
//! - **Health** ([`HealthSignal`], [`HealthPublisher`]): whether an endpoint
//!   can take requests now, or is unavailable until some instant. Breakers,
//!   outlier ejection and balancers publish it; routers read it to skip an
//!   endpoint without polling it.
//! - **Unavailable, retry after** ([`Unavailable`]): the error every "nothing
//!   available" path returns (an open breaker, a shard that is not ready, a
//!   balancer with no replica, an HTTP 503 with `Retry-After`), carrying the
//!   time after which trying again makes sense. Retry and stale-if-error find
//!   it in any error through [`ErrorSignals`], however deeply it is wrapped.
//! - **Deadline** ([`Carrier::deadline`], [`DeadlineExceeded`]): the instant
//!   after which nobody waits for the response. Every wait in every layer ends
//!   by it.
//! - **Attempt mark** ([`AttemptMark`]): which attempt this is, and a cell,
//!   shared by all copies of one request, to which balancers append the
//!   endpoints they used, so that a retry can avoid the one that just failed.
//! - **Replay** ([`Replay`]): how to get another copy of a request for a
//!   retry, a hedge, a failover or a fan-out, or `None` when it cannot be
//!   copied (then it is sent once, never lost).
//!
//! Requests carry the deadline and the attempt mark through the [`Carrier`]
//! trait. It has default methods, so a request type that carries nothing
//! implements it with one line; [`Envelope`] carries both for any payload,
//! and the `http` feature implements it for `http::Request` (in extensions).
//!
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use tower_fleet::signal::{Carrier, Envelope};
//!
//! struct Lookup { id: u64 }
//! impl Carrier for Lookup {} // carries nothing: no deadline, no attempt mark
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let req = Envelope::new(Lookup { id: 7 }).with_deadline(Instant::now() + Duration::from_secs(1));
//! assert!(req.deadline().is_some());
//! assert_eq!(req.payload.id, 7);
//! # }
//! ```

mod attempt;
mod carrier;
mod health;
mod replay;
mod retry_after;
mod unavailable;

pub use attempt::*;
pub use carrier::*;
pub use health::*;
pub use replay::*;
pub use retry_after::*;
pub use unavailable::*;

#[cfg(test)]
mod tests;
