//! Power of two choices over in-flight requests (Envoy's least request).
//!
//! Of two replicas drawn at random, the one with the lower
//! `(in-flight + 1) / weight` takes the request. In-flight counts requests
//! from the moment they are assigned (while they wait for the replica's
//! readiness too) until their outcome is known. Comparing two is nearly as
//! good as scanning all and costs the same at any set size; the randomness
//! keeps many balancers from herding onto the same idle replica.

use super::replica::ReplicaState;

/// The load of a replica for the least-request comparison.
#[inline]
pub(crate) fn cost(state: &ReplicaState) -> f64 {
    (state.in_flight() + 1) as f64 / f64::from(state.weight())
}
