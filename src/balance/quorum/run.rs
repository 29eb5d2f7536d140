//! The state of a quorum call whose copies are out, and what it does on
//! the rare paths: fail over to a spare replica, let stragglers go, and
//! write the report of a call that failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use tower_service::Service;

use super::config::QuorumConfig;
use super::error::QuorumFailure;
use super::leg::Leg;
use super::merge::Reply;
use super::response::ReplicaFailure;
use super::straggler;
use crate::balance::core::Core;
use crate::balance::flight::InFlight;
use crate::balance::set::Now;
use crate::balance::ReplicaId;
use crate::signal::{find_unavailable, wait_until, Carrier, EndpointId, Replay, Unavailable};

/// The state of a call whose copies are out.
pub(crate) struct Run<S, C, M, P, Req>
where
    S: Service<Req>,
{
    pub(crate) core: Arc<Core<S>>,
    pub(crate) classify: C,
    pub(crate) merge: M,
    pub(crate) replay: P,
    // The original, kept to copy for failovers.
    pub(crate) req: Req,
    pub(crate) needed: usize,
    pub(crate) config: QuorumConfig,
    pub(crate) replies: Vec<Reply<S::Response>>,
    pub(crate) failed: Vec<ReplicaFailure>,
    pub(crate) bound: Instant,
    // Whether `bound` is the request's deadline rather than the timeout.
    pub(crate) bound_is_deadline: bool,
}

impl<S, C, M, P, Req> Run<S, C, M, P, Req>
where
    S: Service<Req> + Clone,
    C: Clone,
    P: Replay<Req>,
    Req: Carrier,
{
    /// Sends a copy to the best replica not contacted yet, if one is
    /// available and the request can be copied again.
    pub(crate) fn failover(&mut self, legs: &mut FuturesUnordered<Leg<S, C, Req>>) {
        let shared = &self.core.shared;
        // Every replica given a copy so far (a rare path: hashing the ids is fine).
        let contacted: Vec<EndpointId> = Pin::new(&*legs)
            .iter_pin_ref()
            .map(|l| l.replica.endpoint())
            .chain(self.replies.iter().map(|r| r.replica.endpoint()))
            .chain(self.failed.iter().map(|f| f.replica.endpoint()))
            .collect();
        let set = self.core.set.load();
        let mut pick = Vec::new();
        let mut now = Now::new(&shared.clock);
        set.best(
            shared,
            &self.core.cursor,
            &contacted,
            1,
            &mut now,
            &mut pick,
        );
        let Some(&(_, i)) = pick.first() else {
            return;
        };
        let Some(copy) = self.replay.replay(&self.req) else {
            tracing::debug!("quorum call: no failover, the request could not be copied again");
            return;
        };
        let slot = &set.slots[i];
        shared.stats.quorum.failovers.inc();
        tracing::debug!(replica = %slot.state.id, "quorum call: a copy failed; sending one to a spare replica");
        let now = shared.clock.now();
        legs.push(Leg::new(
            slot.service.clone(),
            InFlight::new(slot.state.clone(), shared),
            copy,
            shared.clone(),
            self.classify.clone(),
            wait_until(now, shared.settings.ready_timeout, Some(self.bound)),
            None,
        ));
    }
}

impl<S, C, M, P, Req> Run<S, C, M, P, Req>
where
    S: Service<Req>,
{
    /// Stops waiting for the copies left: those not sent are dropped, those
    /// sent become stragglers. Returns the replicas that had not answered.
    pub(crate) fn release(&self, legs: &mut FuturesUnordered<Leg<S, C, Req>>) -> Vec<ReplicaId>
    where
        Leg<S, C, Req>: Future + Send + 'static,
        <Leg<S, C, Req> as Future>::Output: Send,
    {
        let unanswered = Pin::new(&*legs)
            .iter_pin_ref()
            .map(|l| l.replica.clone())
            .collect();
        let mut sent = 0u64;
        for leg in Pin::new(&mut *legs).iter_pin_mut() {
            if leg.as_ref().sent() {
                sent += 1;
            } else {
                leg.abandon();
            }
        }
        let legs = std::mem::take(legs);
        if sent > 0 {
            let cfg = &self.config;
            straggler::release(
                &self.core.shared,
                legs,
                sent,
                cfg.straggler_timeout,
                cfg.max_stragglers,
            );
        }
        unanswered
    }

    /// The report of a call that failed.
    pub(crate) fn failure(&mut self, unanswered: Vec<ReplicaId>, timed_out: bool) -> QuorumFailure {
        QuorumFailure {
            needed: count(self.needed),
            succeeded: self.replies.drain(..).map(|r| r.replica).collect(),
            failed: std::mem::take(&mut self.failed),
            unanswered,
            timed_out,
        }
    }

    /// The earliest retry-after the failed replicas gave, if any did.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.failed
            .iter()
            .filter_map(|f| find_unavailable(&*f.error).and_then(Unavailable::retry_after))
            .min()
    }
}

pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
