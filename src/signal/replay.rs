//! Replay: another copy of a request, or none.

use std::time::Duration;

use tokio::time::Instant;

/// How to get another copy of a request: for a retry, a hedge, a failover to
/// another shard or a fan-out to several replicas.
///
/// `None` means the request cannot be copied (a streamed body, say); layers
/// then send it once and return that outcome, never drop it, and count it.
/// Implemented for closures `Fn(&Req) -> Option<Req>`.
pub trait Replay<Req> {
    /// A copy of `req` to send again, or `None`.
    fn replay(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneReplay;

impl<Req: Clone> Replay<Req> for CloneReplay {
    #[inline]
    fn replay(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Never copies requests: each is sent once.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<Req> Replay<Req> for NoReplay {
    #[inline]
    fn replay(&self, _req: &Req) -> Option<Req> {
        None
    }
}

impl<Req, F> Replay<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    fn replay(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// The earlier of an optional deadline and `bound` from `now`.
pub fn wait_until(now: Instant, bound: Duration, deadline: Option<Instant>) -> Instant {
    let by_bound = now
        .checked_add(bound)
        .unwrap_or(now + Duration::from_secs(86_400 * 365));
    match deadline {
        Some(d) if d < by_bound => d,
        _ => by_bound,
    }
}
