//! The response future of a quorum call: drives the copies, fails over to
//! a spare replica when one fails, and decides as soon as the quorum is
//! reached or can no longer be.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::choose::QuorumKind;
use super::config::QuorumConfig;
use super::error::{QuorumError, QuorumFailure};
use super::leg::{Answer, Leg};
use super::merge::{Merge, Replies, Reply};
use super::response::{QuorumResponse, ReplicaFailure};
use super::run::{count, Run};
use crate::balance::core::Core;
use crate::balance::flight::InFlight;
use crate::balance::set::Now;
use crate::clock::Ticks;
use crate::signal::{wait_until, Carrier, DeadlineExceeded, Replay, Unavailable, UnavailableKind};
use crate::BoxError;

pin_project! {
    /// The response future of [`Quorum`](super::Quorum).
    pub struct QuorumFuture<S, C, M, P, Req>
    where
        S: Service<Req>,
    {
        // The quorum timeout (or the request's deadline); made when the
        // first poll does not decide.
        #[pin]
        sleep: Option<Sleep>,
        legs: FuturesUnordered<Leg<S, C, Req>>,
        run: Option<Run<S, C, M, P, Req>>,
        early: Option<QuorumError>,
    }
}

impl<S, C, M, P, Req> fmt::Debug for QuorumFuture<S, C, M, P, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.run.as_ref();
        f.debug_struct("QuorumFuture")
            .field("needed", &run.map(|r| r.needed))
            .field("replies", &run.map(|r| r.replies.len()))
            .field("in_flight", &self.legs.len())
            .finish_non_exhaustive()
    }
}

impl<S, C, M, P, Req> QuorumFuture<S, C, M, P, Req>
where
    S: Service<Req> + Clone,
    C: Clone,
    P: Replay<Req>,
    Req: Carrier,
{
    /// Picks the replicas and makes the copies (the work `Quorum::call` does).
    pub(crate) fn start(
        core: &Arc<Core<S>>,
        classify: &C,
        merge: M,
        replay: P,
        config: QuorumConfig,
        kind: QuorumKind,
        req: Req,
    ) -> Self {
        let shared = &core.shared;
        if let Some(e) = core.invalid.get() {
            return Self::failed(QuorumError::Membership(e.clone()));
        }
        let stats = &shared.stats.quorum;
        stats.calls.inc();
        let set = core.set.load();
        let needed = match kind.needed(&config, set.slots.len()) {
            Ok(q) => q,
            Err(e) => return Self::failed(e),
        };
        let now = shared.clock.now();
        let deadline = req.deadline();
        if deadline.is_some_and(|d| d <= now) {
            stats.deadline_exceeded.inc();
            return Self::failed(QuorumError::DeadlineExceeded {
                failure: QuorumFailure::new(count(needed)),
                source: DeadlineExceeded,
            });
        }
        let bound = wait_until(now, config.timeout, deadline);
        let ticks = Ticks::from_instant(now);
        let mut clock = Now::new(&shared.clock);
        clock.at = Some(ticks);
        let mut picks = Vec::with_capacity(set.slots.len());
        let hint = set.best(
            shared,
            &core.cursor,
            &[],
            config.n.of(set.slots.len()),
            &mut clock,
            &mut picks,
        );
        if picks.len() < needed {
            stats.failed.inc();
            let retry_after = hint.map(|t| t.saturating_duration_since(now));
            tracing::debug!(
                available = picks.len(),
                needed,
                "quorum call: too few replicas available"
            );
            return Self::failed(QuorumError::Failed {
                failure: QuorumFailure::new(count(needed)),
                signal: Unavailable::new(UnavailableKind::QuorumFailed)
                    .with_retry_after(retry_after),
            });
        }
        // Every copy first: a request that cannot be copied is refused
        // before anything is sent or counted against a replica.
        let mut copies = Vec::with_capacity(picks.len());
        for _ in 0..picks.len() {
            match replay.replay(&req) {
                Some(copy) => copies.push(copy),
                None => {
                    stats.not_replayable.inc();
                    return Self::failed(QuorumError::NotReplayable);
                }
            }
        }
        let ready_by = wait_until(now, shared.settings.ready_timeout, Some(bound));
        let picked_at = shared.settings.timed().then_some(ticks);
        let legs = FuturesUnordered::new();
        let sent = picks.len();
        for ((_, i), copy) in picks.into_iter().zip(copies) {
            let slot = &set.slots[i];
            legs.push(Leg::new(
                slot.service.clone(),
                InFlight::new(slot.state.clone(), shared),
                copy,
                shared.clone(),
                classify.clone(),
                ready_by,
                picked_at,
            ));
        }
        QuorumFuture {
            sleep: None,
            legs,
            run: Some(Run {
                core: core.clone(),
                classify: classify.clone(),
                merge,
                replay,
                req,
                needed,
                config,
                replies: Vec::with_capacity(sent),
                failed: Vec::new(),
                bound,
                bound_is_deadline: deadline == Some(bound),
            }),
            early: None,
        }
    }

    fn failed(err: QuorumError) -> Self {
        QuorumFuture {
            sleep: None,
            legs: FuturesUnordered::new(),
            run: None,
            early: Some(err),
        }
    }
}

impl<S, C, M, P, Req> Future for QuorumFuture<S, C, M, P, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: crate::classify::Classify<S::Response, S::Error> + Clone,
    M: Merge<S::Response>,
    P: Replay<Req>,
    Req: Carrier + Send + 'static,
    S: Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    C: Send + 'static,
{
    type Output = Result<QuorumResponse<S::Response, M::Output>, QuorumError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(e) = this.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(run) = this.run.as_mut() else {
            // Polled after it completed.
            return Poll::Ready(Err(QuorumError::Failed {
                failure: QuorumFailure::new(0),
                signal: Unavailable::new(UnavailableKind::QuorumFailed),
            }));
        };
        // Take every answer that is ready now: the more replies the merge
        // and the report see, the better, at no extra wait.
        while let Poll::Ready(Some(answer)) = this.legs.poll_next_unpin(cx) {
            let (replica, answer) = answer;
            match answer {
                Answer::Ok(response) => run.replies.push(Reply { replica, response }),
                Answer::Failed(error) => {
                    run.failed.push(ReplicaFailure { replica, error });
                    if run.replies.len() < run.needed {
                        run.failover(this.legs);
                    }
                }
                Answer::Abandoned => {}
            }
        }
        let merged = if run.replies.len() >= run.needed {
            Replies::new(&run.replies).map(|replies| run.merge.merge(replies))
        } else {
            None
        };
        if let Some(merged) = merged {
            let unanswered = run.release(this.legs);
            run.core.shared.stats.quorum.met.inc();
            let response = QuorumResponse {
                merged,
                replies: std::mem::take(&mut run.replies),
                failed: std::mem::take(&mut run.failed),
                unanswered,
                needed: count(run.needed),
            };
            *this.run = None;
            return Poll::Ready(Ok(response));
        }
        let lost = run.replies.len() + this.legs.len() < run.needed;
        let timed_out = !lost && {
            if this.sleep.is_none() {
                this.sleep.set(Some(tokio::time::sleep_until(run.bound)));
            }
            match this.sleep.as_mut().as_pin_mut() {
                Some(s) => s.poll(cx).is_ready(),
                None => false,
            }
        };
        if !lost && !timed_out {
            return Poll::Pending;
        }
        let unanswered = run.release(this.legs);
        let deadline = timed_out && run.bound_is_deadline;
        let retry_after = run.retry_after();
        let failure = run.failure(unanswered, timed_out);
        let stats = &run.core.shared.stats.quorum;
        if deadline {
            stats.deadline_exceeded.inc();
        } else {
            stats.failed.inc();
        }
        *this.run = None;
        tracing::debug!(%failure, "quorum not reached");
        if deadline {
            return Poll::Ready(Err(QuorumError::DeadlineExceeded {
                failure,
                source: DeadlineExceeded,
            }));
        }
        Poll::Ready(Err(QuorumError::Failed {
            failure,
            signal: Unavailable::new(UnavailableKind::QuorumFailed).with_retry_after(retry_after),
        }))
    }
}
