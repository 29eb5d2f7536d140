//! The in-flight slot of one request on one replica: counted from the pick
//! until the outcome is known (or the request is dropped), and the place
//! where the outcome reaches the latency estimate and outlier detection.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::core::Shared;
use super::outlier;
use super::replica::ReplicaState;
use crate::classify::{Classification, Outcome};
use crate::clock::Ticks;

/// Holds one in-flight count on a replica; dropping it releases the count.
pub(crate) struct InFlight {
    pub(crate) state: Arc<ReplicaState>,
    /// Held by timed strategies only, to charge a cancelled request.
    timer: Option<Arc<Shared>>,
    /// When the request was handed to the replica (timed strategies only).
    /// A request dropped while this is set was cancelled: its elapsed time is
    /// charged as a latency sample (it took at least that long).
    pub(crate) sent_at: Option<Ticks>,
}

impl InFlight {
    pub(crate) fn new(state: Arc<ReplicaState>, shared: &Arc<Shared>) -> InFlight {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            state,
            timer: shared.settings.timed().then(|| shared.clone()),
            sent_at: None,
        }
    }

    /// Folds a latency sample into the estimate: the time since the request
    /// was sent, or the failure penalty when that is longer and it failed.
    fn sample(&mut self, shared: &Shared, outcome: Outcome) {
        let Some(sent) = self.sent_at.take() else {
            return;
        };
        if outcome == Outcome::Ignore {
            return;
        }
        let s = &shared.settings;
        let now = shared.clock.ticks();
        let mut rtt = now.since(sent).as_nanos() as f64;
        if outcome == Outcome::Failure {
            rtt = rtt.max(s.penalty_ns);
        }
        self.state.ewma.observe(now, rtt, s.tau_ns);
    }

    /// The replica's readiness failed: a failure, with no latency.
    pub(crate) fn fail(self, shared: &Shared) {
        outlier::record(shared, &self.state, Outcome::Failure);
    }

    /// The response (or error) arrived and was classified.
    pub(crate) fn complete(mut self, shared: &Arc<Shared>, class: Classification) {
        match class {
            Classification::Now(outcome) => {
                self.sample(shared, outcome);
                outlier::record(shared, &self.state, outcome);
            }
            Classification::LongLived(outcome) => {
                // Judged by its head, never timed; the slot is released now.
                self.sent_at = None;
                outlier::record(shared, &self.state, outcome);
            }
            Classification::AtEnd(eos) => {
                // Latency is measured to the head; the outcome and the slot
                // wait for the end of the stream.
                self.sample(shared, Outcome::Success);
                let shared = shared.clone();
                eos.on_end(move |outcome| {
                    if outcome == Outcome::Failure && shared.settings.timed() {
                        let s = &shared.settings;
                        self.state
                            .ewma
                            .observe(shared.clock.ticks(), s.penalty_ns, s.tau_ns);
                    }
                    outlier::record(&shared, &self.state, outcome);
                    drop(self);
                });
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.sent_at.is_some() {
            // Cancelled after it was sent: it took at least this long.
            if let Some(shared) = self.timer.take() {
                self.sample(&shared, Outcome::Success);
            }
        }
    }
}
