//! `Quorum`: the quorum mode of a balancer, a view on its replica set.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::choose::ChooseQuorum;
use super::config::QuorumConfig;
use super::error::QuorumError;
use super::future::QuorumFuture;
use super::merge::Merge;
use super::response::QuorumResponse;
use crate::balance::core::Core;
use crate::balance::{Balance, BalanceBuildError, BalanceBuilder, BalanceHandle};
use crate::classify::Classify;
use crate::config::{ConfigError, Validate};
use crate::signal::{Carrier, CloneReplay, HealthSignal, HealthSource, Replay};
use crate::BoxError;

/// The quorum mode of a [`Balance`]: sends a copy of each request to several
/// replicas and answers once a quorum of them succeeded, merging their
/// responses. Made by [`Balance::quorum`] or
/// [`BalanceBuilder::build_quorum`](crate::balance::BalanceBuilder::build_quorum);
/// see the [module docs](crate::balance#quorum-fan-out) for the model.
///
/// - `Clone`, and a view on its balancer: it shares the replica set, the
///   load metric, ejections and breakers with the balancer and its other
///   views, so single calls and quorum calls over one set stay consistent.
/// - Always ready; the copies' readiness is driven in the response future.
/// - `K` chooses each request's quorum ([`ChooseQuorum`]), `M` merges the
///   successful replies ([`Merge`]), `P` copies the request
///   ([`Replay`], by `Clone` by default).
pub struct Quorum<S, C, K, M, P = CloneReplay> {
    core: Arc<Core<S>>,
    classify: C,
    choose: K,
    merge: M,
    replay: P,
    config: QuorumConfig,
}

impl<S, C: Clone, K: Clone, M: Clone, P: Clone> Clone for Quorum<S, C, K, M, P> {
    fn clone(&self) -> Self {
        Quorum {
            core: self.core.clone(),
            classify: self.classify.clone(),
            choose: self.choose.clone(),
            merge: self.merge.clone(),
            replay: self.replay.clone(),
            config: self.config,
        }
    }
}

impl<S, C, K, M, P> fmt::Debug for Quorum<S, C, K, M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quorum")
            .field("replicas", &self.core.set.load().slots.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Balance<S, C> {
    /// The quorum mode of this balancer, over the same replica set: each
    /// request's quorum is chosen by `choose` (a [`QuorumKind`](super::QuorumKind)
    /// for all, or a closure `Fn(&Req) -> QuorumKind`), and the successful
    /// replies are merged by `merge` (such as [`newest`](super::newest)).
    /// Uses the `quorum` table of the balancer's configuration, or
    /// [`QuorumConfig::default`] when it has none.
    pub fn quorum<K, M>(&self, choose: K, merge: M) -> Quorum<S, C, K, M> {
        Quorum {
            core: self.core.clone(),
            classify: self.classify.clone(),
            choose,
            merge,
            replay: CloneReplay,
            config: self.core.shared.settings.quorum,
        }
    }
}

impl<In, S, C> BalanceBuilder<In, S, C> {
    /// Builds the balancer (as [`build`](BalanceBuilder::build) does) and returns its
    /// quorum mode ([`Balance::quorum`]): each request's quorum chosen by
    /// `choose`, the successful replies merged by `merge`, with the settings
    /// given to [`quorum`](BalanceBuilder::quorum) (or the defaults).
    ///
    /// ```
    /// use tower::{service_fn, Service, ServiceExt};
    /// use tower_fleet::balance::{newest, Balance, QuorumConfig, QuorumKind, Replica};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
    /// // Replicas answering (version, value); one is behind.
    /// let replica = |version: u64| service_fn(move |_key: String| async move {
    ///     Ok::<_, std::convert::Infallible>((version, format!("v{version}")))
    /// });
    /// let mut reads = Balance::builder()
    ///     .quorum(QuorumConfig { read: 3, ..QuorumConfig::default() })
    ///     .replicas([("a", 7), ("b", 7), ("c", 6)].map(|(id, v)| Replica::new(id, replica(v))))
    ///     .build_quorum(QuorumKind::Read, newest(|r: &(u64, String)| r.0))?;
    /// let answer = reads.ready().await?.call("user:1".to_string()).await?;
    /// assert_eq!(answer.merged.1, "v7");
    /// assert_eq!(answer.lagging(|r| r.0), ["c".into()]);
    /// # Ok(()) }
    /// ```
    pub fn build_quorum<K, M>(
        self,
        choose: K,
        merge: M,
    ) -> Result<Quorum<S, C, K, M>, BalanceBuildError>
    where
        In: Send + 'static,
        S: Clone + Send + Sync + 'static,
        C: Clone,
    {
        Ok(self.build()?.quorum(choose, merge))
    }
}

impl<S, C, K, M, P> Quorum<S, C, K, M, P> {
    /// The same view with another way to copy requests (for requests that
    /// are not `Clone`, or whose body must be buffered to be sent again).
    pub fn replay<P2>(self, replay: P2) -> Quorum<S, C, K, M, P2> {
        Quorum {
            core: self.core,
            classify: self.classify,
            choose: self.choose,
            merge: self.merge,
            replay,
            config: self.config,
        }
    }

    /// The same view with other quorum settings (validated); the replica set
    /// and its health stay shared. All views of a balancer share one count
    /// of stragglers, and each admits its own only while that count stays
    /// within its `max_stragglers`.
    pub fn with_config(mut self, config: QuorumConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    /// The quorum settings of this view.
    pub fn config(&self) -> &QuorumConfig {
        &self.config
    }

    /// A handle on the balancer's replica set and counters (the quorum
    /// counters are in [`BalanceSnapshot::quorum`](crate::balance::BalanceSnapshot::quorum)).
    pub fn handle(&self) -> BalanceHandle<S> {
        BalanceHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, C: Clone, K, M, P> Quorum<S, C, K, M, P> {
    /// The single-call balancer over the same replica set.
    pub fn balance(&self) -> Balance<S, C> {
        Balance {
            core: self.core.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S, C, K, M, P> HealthSource for Quorum<S, C, K, M, P> {
    /// The balancer's health: unavailable while no replica is.
    fn health_signal(&self) -> HealthSignal {
        self.core.shared.signal.clone()
    }
}

impl<S, C, K, M, P, Req> Service<Req> for Quorum<S, C, K, M, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone + Send + 'static,
    K: ChooseQuorum<Req>,
    M: Merge<S::Response> + Clone,
    P: Replay<Req> + Clone,
    Req: Carrier + Send + 'static,
{
    type Response = QuorumResponse<S::Response, M::Output>;
    type Error = QuorumError;
    type Future = QuorumFuture<S, C, M, P, Req>;

    /// Always ready: the copies' readiness is driven in the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let kind = self.choose.choose(&req);
        QuorumFuture::start(
            &self.core,
            &self.classify,
            self.merge.clone(),
            self.replay.clone(),
            self.config,
            kind,
            req,
        )
    }
}
