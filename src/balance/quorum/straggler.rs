//! Stragglers: copies still in flight when a quorum call's outcome is
//! decided. The caller stops waiting for them; they finish in the
//! background, so that their outcomes still reach the replicas' health and
//! a write still lands, bounded in number (`max_stragglers` per balancer)
//! and in time (`straggler_timeout`).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::balance::core::Shared;

/// Copies running in the background; dropping it cancels those left and
/// takes them off the balancer's count.
struct Stragglers<F> {
    legs: FuturesUnordered<F>,
    shared: Arc<Shared>,
}

impl<F> Drop for Stragglers<F> {
    fn drop(&mut self) {
        let left = self.legs.len() as u64;
        if left > 0 {
            let q = &self.shared.stats.quorum;
            q.stragglers.fetch_sub(left, Ordering::Relaxed);
            q.stragglers_cancelled.add(left);
            tracing::debug!(left, "quorum stragglers cancelled at straggler_timeout");
        }
    }
}

/// Lets `legs` (of which `sent` were handed to their replicas; the others
/// were abandoned and end at their first poll) finish in the background for
/// up to `timeout`, if the balancer's bound of `max` stragglers allows and a
/// tokio runtime is there to run them; cancels them otherwise.
pub(crate) fn release<F>(
    shared: &Arc<Shared>,
    legs: FuturesUnordered<F>,
    sent: u64,
    timeout: Duration,
    max: u32,
) where
    F: Future + Send + 'static,
    F::Output: Send,
{
    let n = legs.len() as u64;
    if n == 0 {
        return;
    }
    let q = &shared.stats.quorum;
    let admitted = q
        .stragglers
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |running| {
            (running + n <= u64::from(max)).then_some(running + n)
        })
        .is_ok();
    let runtime = tokio::runtime::Handle::try_current();
    let rt = match (admitted, runtime) {
        (true, Ok(rt)) => rt,
        (admitted, _) => {
            if admitted {
                q.stragglers.fetch_sub(n, Ordering::Relaxed);
            }
            q.stragglers_cancelled.add(sent);
            tracing::debug!(
                stragglers = sent,
                max,
                "quorum stragglers cancelled: over max_stragglers or no runtime"
            );
            return;
        }
    };
    let mut stragglers = Stragglers {
        legs,
        shared: shared.clone(),
    };
    rt.spawn(async move {
        let finish = async {
            while stragglers.legs.next().await.is_some() {
                stragglers
                    .shared
                    .stats
                    .quorum
                    .stragglers
                    .fetch_sub(1, Ordering::Relaxed);
            }
        };
        let _ = tokio::time::timeout(timeout, finish).await;
    });
}
