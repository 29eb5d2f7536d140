//! `BalanceBuilder`: the way to make a `Balance` in code.

use std::fmt;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::time::Duration;

use tower::discover::Discover;
use tower::Layer;
use tower_service::Service;

use super::config::{BalanceConfig, OutlierConfig, SlowStartConfig, Strategy};
use super::core::{Core, HealthOf, Settings};
use super::discover::{self, BoxDiscover, Wrap};
use super::error::BalanceBuildError;
use super::handle::BalanceHandle;
use super::health_check::{self, Probe};
use super::quorum::QuorumConfig;
use super::replica::{Replica, ReplicaSpec};
use super::service::Balance;
use crate::breaker::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer, OpenMode};
use crate::classify::{Classification, Classify, ErrorIsFailure, Outcome};
use crate::clock::Clock;
use crate::config::Validate;
use crate::signal::{HealthSignal, HealthSource};
use crate::{BoxError, NoRuntime};

/// Builds a [`Balance`]. Start with [`Balance::builder`].
///
/// `In` is the type of the services handed in, `S` the type of the members
/// after the per-replica layer ([`replica_layer`](Self::replica_layer)), `C`
/// the classifier. Methods that look at members (`health_from`,
/// `health_from_source`, `health_check`) take the type the members have
/// when they are called: call `replica_layer` first, since it changes that
/// type and so resets them.
///
/// ```
/// use std::time::Duration;
/// use tower::{service_fn, Service, ServiceExt};
/// use tower_fleet::balance::{Balance, Replica, Strategy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
/// let node = |name: &'static str| service_fn(move |req: String| async move {
///     Ok::<_, std::convert::Infallible>(format!("{name}: {req}"))
/// });
/// let mut balance = Balance::builder()
///     .strategy(Strategy::LeastRequest {})
///     .ready_timeout(Duration::from_millis(200))
///     .replica(Replica::new("a", node("a")))
///     .replica(Replica::new("b", node("b")).weight(2))
///     .build()?;
/// let answer = balance.ready().await?.call("ping".to_string()).await?;
/// assert!(answer.ends_with(": ping"));
/// # Ok(()) }
/// ```
pub struct BalanceBuilder<In, S = In, C = ErrorIsFailure> {
    /// An error found while building (an invalid replica breaker
    /// configuration), reported by `build`.
    deferred: Option<BalanceBuildError>,
    config: BalanceConfig,
    clock: Clock,
    classify: C,
    replicas: Vec<Replica<In>>,
    wrap: Wrap<In, S>,
    health_of: Option<HealthOf<S>>,
    discover: Option<BoxDiscover<In>>,
    probe: Option<Probe<S>>,
}

impl<In, S, C> fmt::Debug for BalanceBuilder<In, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceBuilder")
            .field("config", &self.config)
            .field("replicas", &self.replicas)
            .field("discover", &self.discover.is_some())
            .field("health_check", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> Balance<S> {
    /// A builder with the default configuration: P2C over peak-EWMA latency,
    /// outlier ejection on, no health checks, no slow start, `Err` is a failure.
    pub fn builder() -> BalanceBuilder<S> {
        BalanceBuilder {
            deferred: None,
            config: BalanceConfig::default(),
            clock: Clock::default(),
            classify: ErrorIsFailure,
            replicas: Vec::new(),
            wrap: Arc::new(|s| s),
            health_of: None,
            discover: None,
            probe: None,
        }
    }
}

impl<In, S, C> BalanceBuilder<In, S, C> {
    /// Takes every setting of a [`BalanceConfig`]; validated by [`build`](Self::build).
    #[must_use]
    pub fn config(mut self, config: BalanceConfig) -> Self {
        self.config = config;
        self
    }

    /// The strategy (see [`BalanceConfig::strategy`]).
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.config.strategy = strategy;
        self
    }

    /// How long a request waits for an available, ready replica.
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.config.ready_timeout = timeout;
        self
    }

    /// The panic threshold, in percent (see [`BalanceConfig::panic_threshold`]).
    #[must_use]
    pub fn panic_threshold(mut self, percent: u32) -> Self {
        self.config.panic_threshold = percent;
        self
    }

    /// Outlier ejection settings.
    #[must_use]
    pub fn outlier(mut self, outlier: OutlierConfig) -> Self {
        self.config.outlier = outlier;
        self
    }

    /// Slow-start settings.
    #[must_use]
    pub fn slow_start(mut self, slow_start: SlowStartConfig) -> Self {
        self.config.slow_start = slow_start;
        self
    }

    /// The quorum mode's settings, used by [`build_quorum`](Self::build_quorum)
    /// and by every [`Balance::quorum`] view of the balancer built.
    #[must_use]
    pub fn quorum(mut self, quorum: QuorumConfig) -> Self {
        self.config.quorum = Some(quorum);
        self
    }

    /// The clock for latencies, ejections and waits (tokio's by default; a
    /// [`Clock::coarse`] clock makes timing cheaper on hot paths).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// What counts as a failure, for the latency penalty and outlier
    /// ejection. Cloned once per call: make it cheap to clone.
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> BalanceBuilder<In, S, C2> {
        BalanceBuilder {
            deferred: self.deferred,
            config: self.config,
            clock: self.clock,
            classify,
            replicas: self.replicas,
            wrap: self.wrap,
            health_of: self.health_of,
            discover: self.discover,
            probe: self.probe,
        }
    }

    /// Adds a replica.
    #[must_use]
    pub fn replica(mut self, replica: Replica<In>) -> Self {
        self.replicas.push(replica);
        self
    }

    /// Adds replicas.
    #[must_use]
    pub fn replicas(mut self, replicas: impl IntoIterator<Item = Replica<In>>) -> Self {
        self.replicas.extend(replicas);
        self
    }

    /// Wraps every replica (given here or discovered) in `layer` before it
    /// joins the set: a per-replica circuit breaker, timeout or concurrency
    /// limit. Layers stack: the last one given is outermost. Resets
    /// `health_from`, `health_from_source` and `health_check`, which look at
    /// the wrapped type: call them after this.
    #[must_use]
    pub fn replica_layer<L>(self, layer: L) -> BalanceBuilder<In, L::Service, C>
    where
        L: Layer<S> + Send + Sync + 'static,
        In: 'static,
        S: 'static,
    {
        let inner = self.wrap;
        BalanceBuilder {
            deferred: self.deferred,
            config: self.config,
            clock: self.clock,
            classify: self.classify,
            replicas: self.replicas,
            wrap: Arc::new(move |s| layer.layer(inner(s))),
            health_of: None,
            discover: self.discover,
            probe: None,
        }
    }

    /// Gives every replica (given here or discovered) its own
    /// [`CircuitBreaker`] in not-ready mode, judging outcomes with this
    /// balancer's classifier, and reads each breaker's health: a replica whose
    /// breaker opened drops out of the picks without being polled, and comes
    /// back on its own once its probes succeed.
    ///
    /// `config.open_mode` is set to [`OpenMode::NotReady`] (a fail-fast
    /// breaker would answer errors instead of letting the balancer skip it);
    /// [`BreakerConfig::replica`] is a good start. An invalid configuration is
    /// reported by [`build`](Self::build). Like
    /// [`replica_layer`](Self::replica_layer), this resets `health_from` and
    /// `health_check`.
    #[must_use]
    pub fn replica_breakers(
        self,
        config: BreakerConfig,
    ) -> BalanceBuilder<In, CircuitBreaker<S, C>, C>
    where
        C: Clone + Send + Sync + 'static,
        In: 'static,
        S: 'static,
    {
        let config = BreakerConfig {
            open_mode: OpenMode::NotReady,
            ..config
        };
        let (layer, error) = match CircuitBreaker::builder()
            .classify(self.classify.clone())
            .config(config)
            .layer()
        {
            Ok(layer) => (layer, None),
            // build() reports `e`; the layer only keeps the types in line.
            Err(e) => (
                CircuitBreakerLayer::unvalidated(BreakerConfig::replica(), self.classify.clone()),
                Some(e),
            ),
        };
        let mut builder = self.replica_layer(layer).health_from_source();
        if let Some(e) = error {
            builder
                .deferred
                .get_or_insert(BalanceBuildError::ReplicaBreaker(e));
        }
        builder
    }

    /// How to find the health signal of a replica's service, for replicas
    /// given without one (discovered ones, say).
    #[must_use]
    pub fn health_from(
        mut self,
        f: impl Fn(&S) -> Option<HealthSignal> + Send + Sync + 'static,
    ) -> Self {
        self.health_of = Some(Arc::new(f));
        self
    }

    /// Reads each replica's health from its service, for services that
    /// publish one (a circuit breaker in not-ready mode): replicas that say
    /// unavailable are skipped without being polled.
    #[must_use]
    pub fn health_from_source(self) -> Self
    where
        S: HealthSource,
    {
        self.health_from(|s: &S| Some(s.health_signal()))
    }

    /// Feeds the set from a discovery stream, driven by a background task
    /// that [`build`](Self::build) starts on the current tokio runtime. Each
    /// key converts into the replica's id and weight. The task stops when the
    /// stream ends or the last clone of the balancer (and its handles) is
    /// dropped. The set may start empty.
    #[must_use]
    pub fn discover<D>(mut self, discover: D) -> Self
    where
        D: Discover<Service = In> + Send + 'static,
        D::Key: Into<ReplicaSpec>,
        D::Error: Into<BoxError>,
    {
        self.discover = Some(discover::boxed(discover));
        self
    }

    /// Probes every replica with `probe` (given a clone of its service; it
    /// resolves to whether the replica is healthy) at the configured
    /// interval, in a background task that [`build`](Self::build) starts.
    #[must_use]
    pub fn health_check<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn(S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.probe = Some(Arc::new(move |s| Box::pin(probe(s))));
        self
    }

    /// Probes every replica by sending it the request `make` returns; it
    /// passes unless the classifier given so far calls the outcome a failure.
    #[must_use]
    pub fn health_check_request<Req, F>(self, make: F) -> Self
    where
        F: Fn() -> Req + Send + Sync + 'static,
        Req: Send + 'static,
        S: Service<Req> + Send + 'static,
        S::Future: Send,
        S::Error: Send,
        C: Classify<S::Response, S::Error> + Clone + Send + Sync + 'static,
    {
        let classify = self.classify.clone();
        self.health_check(move |mut svc: S| {
            let req = make();
            let classify = classify.clone();
            async move {
                let ready = poll_fn(|cx| svc.poll_ready(cx)).await;
                let result = match ready {
                    Ok(()) => svc.call(req).await,
                    Err(e) => Err(e),
                };
                match classify.classify(&result) {
                    Classification::Now(o) | Classification::LongLived(o) => o != Outcome::Failure,
                    Classification::AtEnd(_) => result.is_ok(),
                }
            }
        })
    }

    /// Builds the balancer: validates the configuration, wraps and adds the
    /// replicas, and starts discovery and health checks if asked for.
    ///
    /// Fails on an invalid configuration, an invalid replica (zero weight,
    /// duplicate id), or when discovery or health checks are asked for
    /// outside a tokio runtime. An empty set is allowed: calls fail at once
    /// until replicas join.
    pub fn build(self) -> Result<Balance<S, C>, BalanceBuildError>
    where
        In: Send + 'static,
        S: Clone + Send + Sync + 'static,
    {
        if let Some(e) = self.deferred {
            return Err(e);
        }
        self.config.validate()?;
        let rt = match (&self.discover, &self.probe) {
            (None, None) => None,
            _ => Some(
                tokio::runtime::Handle::try_current()
                    .map_err(|_| NoRuntime::new("balance discovery and health checks"))?,
            ),
        };
        let core = Arc::new(Core::new(
            Settings::new(&self.config),
            self.clock,
            self.health_of,
        ));
        if !self.replicas.is_empty() {
            let wrap = &self.wrap;
            let replicas = self.replicas.into_iter().map(|r| Replica {
                spec: r.spec,
                service: wrap(r.service),
                health: r.health,
            });
            BalanceHandle { core: core.clone() }.set_replicas(replicas)?;
        }
        if let Some(rt) = rt {
            if let Some(d) = self.discover {
                discover::spawn(&rt, &core, d, self.wrap.clone());
            }
            if let Some(p) = self.probe {
                health_check::spawn(&rt, &core, p, self.config.health_check.clone());
            }
        }
        Ok(Balance {
            core,
            classify: self.classify,
        })
    }
}
