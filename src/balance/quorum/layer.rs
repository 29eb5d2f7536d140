//! `QuorumLayer`: makes the quorum mode of a balancer over a set of
//! replicas, for code that builds services from layers.

use std::fmt;

use tower::Layer;

use super::service::Quorum;
use crate::balance::{BalanceLayer, Replica};

/// Applies the quorum mode to a set of replicas: made by
/// [`BalanceLayer::quorum`], it turns `Vec<Replica<S>>` into a [`Quorum`]
/// with the layer's configuration (its `quorum` table, or the defaults).
///
/// As with [`BalanceLayer`], a set that cannot be taken (a zero weight, a
/// duplicate id) makes a quorum view that fails every call with
/// [`QuorumError::Membership`](super::QuorumError::Membership).
///
/// ```
/// use tower::{service_fn, Layer};
/// use tower_fleet::balance::{BalanceConfig, BalanceLayer, FirstReply, QuorumKind, Replica};
///
/// let layer = BalanceLayer::new(BalanceConfig::default())
///     .unwrap()
///     .quorum(QuorumKind::Write, FirstReply);
/// let ack = service_fn(|_: String| async { Ok::<_, std::convert::Infallible>("ok") });
/// let writes = layer.layer(["a", "b", "c"].map(|id| Replica::new(id, ack.clone())).to_vec());
/// assert_eq!(writes.handle().replicas().len(), 3);
/// ```
#[derive(Clone)]
pub struct QuorumLayer<C, K, M> {
    balance: BalanceLayer<C>,
    choose: K,
    merge: M,
}

impl<C, K, M> fmt::Debug for QuorumLayer<C, K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuorumLayer")
            .field("balance", &self.balance)
            .finish_non_exhaustive()
    }
}

impl<C> BalanceLayer<C> {
    /// A layer that makes the quorum mode ([`Quorum`]) of the balancers this
    /// layer makes: each request's quorum chosen by `choose`, the successful
    /// replies merged by `merge`.
    pub fn quorum<K, M>(self, choose: K, merge: M) -> QuorumLayer<C, K, M> {
        QuorumLayer {
            balance: self,
            choose,
            merge,
        }
    }
}

impl<S, C, K, M> Layer<Vec<Replica<S>>> for QuorumLayer<C, K, M>
where
    S: Clone,
    C: Clone,
    K: Clone,
    M: Clone,
{
    type Service = Quorum<S, C, K, M>;

    fn layer(&self, replicas: Vec<Replica<S>>) -> Self::Service {
        self.balance
            .layer(replicas)
            .quorum(self.choose.clone(), self.merge.clone())
    }
}
