//! `StackBuilder`: a `StackConfig` and a connector in, the canonical stack out.

use std::fmt;
use std::sync::{Arc, Mutex};

use tower_service::Service;

use super::config::StackConfig;
use super::dns::{check_available, DnsSource};
use super::finish::Finished;
use super::handle::{BalanceOf, ReplicaBreaker, StackHandle};
use super::replica::{Guarded, ReplicaLayer};
use super::{CacheKey, Stack, StackError};
use crate::balance::{Balance, Quorum, Replica};
use crate::breaker::{BreakerConfig, CircuitBreaker, InitialState, OpenMode};
use crate::cache::{Cache, StoreEveryOk};
use crate::classify::ErrorIsFailure;
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};
use crate::key::{Identity, Key, KeyFn};
use crate::retry::{AllRequests, Retry, RetryConfig};
use crate::shard::{Member, Shard};
use crate::signal::{Carrier, CloneReplay, ErrorRetryAfter, HealthSource};
use crate::BoxError;

/// Builds the canonical stack from a [`StackConfig`] and a connector (a
/// function from a replica's address to the service that talks to it).
/// See the [module docs](super).
pub struct StackBuilder<
    Conn,
    K = Identity,
    C = ErrorIsFailure,
    F = AllRequests,
    A = ErrorRetryAfter,
    P = StoreEveryOk,
    R = CloneReplay,
> {
    config: StackConfig,
    connector: Conn,
    key_fn: K,
    classify: C,
    retryable: F,
    retry_after: A,
    cache_policy: P,
    replay: R,
    clock: Clock,
    dns: DnsSource,
}

impl<Conn, K, C, F, A, P, R> fmt::Debug for StackBuilder<Conn, K, C, F, A, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StackBuilder<()> {
    /// A builder for this configuration, with the defaults: the request is
    /// its own key, `Err` is a failure, every request may be retried, every
    /// `Ok` response may be cached. Give it a connector.
    pub fn new(config: StackConfig) -> StackBuilder<()> {
        StackBuilder {
            config,
            connector: (),
            key_fn: Identity,
            classify: ErrorIsFailure,
            retryable: AllRequests,
            retry_after: ErrorRetryAfter,
            cache_policy: StoreEveryOk,
            replay: CloneReplay,
            clock: Clock::default(),
            dns: DnsSource::default(),
        }
    }
}

impl<Conn, K, C, F, A, P, R> StackBuilder<Conn, K, C, F, A, P, R> {
    /// How to reach a replica: its address (as written in the configuration)
    /// in, the service that talks to it out (a hyper client bound to that
    /// address, a tonic channel, ...). Called once per replica.
    pub fn connector<S, Conn2>(self, connector: Conn2) -> StackBuilder<Conn2, K, C, F, A, P, R>
    where
        Conn2: Fn(&str) -> S,
    {
        StackBuilder {
            config: self.config,
            connector,
            key_fn: self.key_fn,
            classify: self.classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// The key of each request, for the shard and the cache layers, from a
    /// closure that may borrow it from the request.
    pub fn key<Req, K2>(self, key: K2) -> StackBuilder<Conn, K2, C, F, A, P, R>
    where
        K2: for<'r> Fn(&'r Req) -> Option<Key<'r>> + Clone,
    {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: key,
            classify: self.classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// The key of each request, from any [`KeyFn`] (the `http` feature's
    /// extractors, say).
    pub fn key_fn<K2: Clone>(self, key_fn: K2) -> StackBuilder<Conn, K2, C, F, A, P, R> {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn,
            classify: self.classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// What counts as a failure, for every layer at once.
    pub fn classify<C2: Clone>(self, classify: C2) -> StackBuilder<Conn, K, C2, F, A, P, R> {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: self.key_fn,
            classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// Which requests the retry layer may send more than once.
    pub fn retryable<F2>(self, retryable: F2) -> StackBuilder<Conn, K, C, F2, A, P, R> {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: self.key_fn,
            classify: self.classify,
            retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// Where the retry layer reads retry-after hints (errors' unavailable
    /// signal by default; the `http` feature adds `Retry-After` headers).
    pub fn retry_after<A2>(self, retry_after: A2) -> StackBuilder<Conn, K, C, F, A2, P, R> {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: self.key_fn,
            classify: self.classify,
            retryable: self.retryable,
            retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// The cache layer's policy (what is stored, for how long; the `http`
    /// feature's RFC 9111 policy, say).
    pub fn cache_policy<P2>(self, policy: P2) -> StackBuilder<Conn, K, C, F, A, P2, R> {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: self.key_fn,
            classify: self.classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: policy,
            replay: self.replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// How to copy a request: for retries, shard failover and quorum
    /// copies ([`CloneReplay`] for `Clone` requests by default; the `http`
    /// feature's `HttpReplay` for `http::Request`s, whose bodies it buffers).
    pub fn replay<R2>(self, replay: R2) -> StackBuilder<Conn, K, C, F, A, P, R2> {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: self.key_fn,
            classify: self.classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay,
            clock: self.clock,
            dns: self.dns,
        }
    }

    /// The clock every layer reads (tokio's by default; see
    /// [`Clock::coarse`] for hot paths). On tokio's clock the cache reads
    /// the clock only on hits its ticked time bound cannot prove fresh
    /// ([`CacheConfig::clock_resolution`](crate::cache::CacheConfig::clock_resolution)),
    /// as it does alone; any other clock is read on every hit.
    pub fn clock(self, clock: Clock) -> Self {
        StackBuilder {
            config: self.config,
            connector: self.connector,
            key_fn: self.key_fn,
            classify: self.classify,
            retryable: self.retryable,
            retry_after: self.retry_after,
            cache_policy: self.cache_policy,
            replay: self.replay,
            clock,
            dns: self.dns,
        }
    }

    /// How shards that name a DNS `discovery` are resolved: this overrides
    /// the document's `[dns]` table (default: [`DnsConfig::default`](crate::discover::DnsConfig)).
    #[cfg(feature = "dns")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
    #[must_use]
    pub fn dns(mut self, config: crate::discover::DnsConfig) -> Self {
        self.dns.config = Some(config);
        self
    }

    /// The resolver for shards that name a DNS `discovery` (the system's by
    /// default): another DNS client, or scripted answers in tests.
    #[cfg(feature = "dns")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
    #[must_use]
    pub fn dns_resolver(mut self, resolver: impl crate::discover::Resolve + 'static) -> Self {
        self.dns.resolver = Some(Arc::new(resolver));
        self
    }

    /// Builds the stack with one balancer per shard sending each request to
    /// one replica.
    ///
    /// Fails with a typed error on an invalid configuration or outside a
    /// tokio runtime.
    #[allow(clippy::type_complexity)]
    pub fn build<Req, S>(
        self,
    ) -> Result<
        (
            Stack<BalanceOf<S, Req, C>, Req, K, C, F, A, P, R>,
            StackHandle<BalanceOf<S, Req, C>, S::Response, Guarded<S, Req, C>>,
        ),
        StackError,
    >
    where
        Conn: Fn(&str) -> S + Send + Sync + 'static,
        S: Service<Req> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Response: Clone,
        Req: Carrier + Send + 'static,
        R: Clone + Send + Sync + 'static,
        K: KeyFn<Req> + Clone + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
        F: Send + Sync + 'static,
        A: Send + Sync + 'static,
        P: Send + Sync + 'static,
        S::Response: Send + Sync + 'static,
        BalanceOf<S, Req, C>: Service<Req, Response = S::Response>,
    {
        self.assemble(|balance| balance)
    }

    /// Builds the stack with each shard's balancer in quorum mode: every
    /// request is copied to the shard's replicas and answered once a quorum
    /// (`choose` picks R or W per request, from `[balance.quorum]`) has
    /// succeeded, its replies merged by `merge`. The responses are
    /// [`QuorumResponse`](crate::balance::QuorumResponse)s, which name the
    /// replicas that failed or lag behind, for repair.
    #[allow(clippy::type_complexity)]
    pub fn build_quorum<Req, S, Q, M>(
        self,
        choose: Q,
        merge: M,
    ) -> Result<
        (
            Stack<Quorum<Guarded<S, Req, C>, C, Q, M, R>, Req, K, C, F, A, P, R>,
            StackHandle<
                Quorum<Guarded<S, Req, C>, C, Q, M, R>,
                <Quorum<Guarded<S, Req, C>, C, Q, M, R> as Service<Req>>::Response,
                Guarded<S, Req, C>,
            >,
        ),
        StackError,
    >
    where
        Conn: Fn(&str) -> S + Send + Sync + 'static,
        S: Service<Req> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        Req: Carrier + Send + 'static,
        R: Clone + Send + Sync + 'static,
        K: KeyFn<Req> + Clone + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
        F: Send + Sync + 'static,
        A: Send + Sync + 'static,
        P: Send + Sync + 'static,
        Q: Clone,
        M: Clone,
        Quorum<Guarded<S, Req, C>, C, Q, M, R>: Service<Req>,
        <Quorum<Guarded<S, Req, C>, C, Q, M, R> as Service<Req>>::Response:
            Clone + Send + Sync + 'static,
    {
        let replay = self.replay.clone();
        self.assemble(move |balance| {
            balance
                .quorum(choose.clone(), merge.clone())
                .replay(replay.clone())
        })
    }

    /// Like [`build_quorum`](Self::build_quorum), with each shard's quorum
    /// answer passed through `finish` before the shard, retry and cache
    /// layers see it: `finish` acts on the repair report (starts a read
    /// repair of the lagging replicas, say) and returns the response the
    /// stack answers with, which must be `Clone` for the cache. See
    /// [`Finished`](super::Finished).
    #[allow(clippy::type_complexity)]
    pub fn build_quorum_with<Req, S, Q, M, Fin, T>(
        self,
        choose: Q,
        merge: M,
        finish: Fin,
    ) -> Result<
        (
            Stack<Finished<Quorum<Guarded<S, Req, C>, C, Q, M, R>, Fin>, Req, K, C, F, A, P, R>,
            StackHandle<
                Finished<Quorum<Guarded<S, Req, C>, C, Q, M, R>, Fin>,
                T,
                Guarded<S, Req, C>,
            >,
        ),
        StackError,
    >
    where
        Conn: Fn(&str) -> S + Send + Sync + 'static,
        S: Service<Req> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        Req: Carrier + Send + 'static,
        R: Clone + Send + Sync + 'static,
        K: KeyFn<Req> + Clone + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
        F: Send + Sync + 'static,
        A: Send + Sync + 'static,
        P: Send + Sync + 'static,
        Q: Clone,
        M: Clone,
        Fin:
            FnOnce(<Quorum<Guarded<S, Req, C>, C, Q, M, R> as Service<Req>>::Response) -> T + Clone,
        Quorum<Guarded<S, Req, C>, C, Q, M, R>: Service<Req>,
        T: Clone + Send + Sync + 'static,
    {
        let replay = self.replay.clone();
        self.assemble(move |balance| {
            Finished::new(
                balance
                    .quorum(choose.clone(), merge.clone())
                    .replay(replay.clone()),
                finish.clone(),
            )
        })
    }

    #[allow(clippy::type_complexity)]
    fn assemble<Req, S, Mem>(
        self,
        member: impl Fn(BalanceOf<S, Req, C>) -> Mem,
    ) -> Result<
        (
            Stack<Mem, Req, K, C, F, A, P, R>,
            StackHandle<Mem, Mem::Response, Guarded<S, Req, C>>,
        ),
        StackError,
    >
    where
        Conn: Fn(&str) -> S + Send + Sync + 'static,
        S: Service<Req> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        Req: Carrier + Send + 'static,
        R: Clone + Send + Sync + 'static,
        K: KeyFn<Req> + Clone + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
        F: Send + Sync + 'static,
        A: Send + Sync + 'static,
        P: Send + Sync + 'static,
        Mem: Service<Req> + Clone + HealthSource,
        Mem::Response: Clone + Send + Sync + 'static,
    {
        tokio::runtime::Handle::try_current()
            .map_err(|_| crate::NoRuntime::new("the stack builder"))?;
        let config = self.config;
        config.validate()?;

        // Per replica: the timeout, then a breaker in not-ready mode (or a
        // disabled one when the stack has none).
        let breaker_config = match &config.breaker {
            Some(b) => BreakerConfig {
                open_mode: OpenMode::NotReady,
                ..b.clone()
            },
            None => BreakerConfig {
                initial_state: InitialState::Disabled,
                open_mode: OpenMode::NotReady,
                ..BreakerConfig::default()
            },
        };
        let breaker_layer = CircuitBreaker::builder()
            .config(breaker_config)
            .classify(self.classify.clone())
            .clock(self.clock.clone())
            .layer()
            .map_err(|e| StackError::Breaker(Box::new(e)))?;
        let layer = Arc::new(ReplicaLayer {
            timeout: config.timeout.as_ref().map(|t| t.request),
            breaker: breaker_layer,
        });
        let connector = self.connector;
        let connect_layer = layer.clone();
        let connect: Arc<dyn Fn(&str) -> Guarded<S, Req, C> + Send + Sync> =
            Arc::new(move |address: &str| connect_layer.wrap(connector(address)));

        // Per shard: a balancer over its replicas, given or discovered.
        let mut members = Vec::with_capacity(config.shards.len());
        let mut balances = Vec::with_capacity(config.shards.len());
        let breakers = Arc::new(Mutex::new(Vec::new()));
        #[cfg(feature = "dns")]
        let mut dns_handles = Vec::new();
        #[cfg_attr(not(feature = "dns"), allow(unused_variables))]
        for (index, entry) in config.shards.iter().enumerate() {
            check_available(entry)?;
            let mut given = Vec::with_capacity(entry.replicas.len());
            for address in &entry.replicas {
                let guarded = connect(address);
                breakers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(ReplicaBreaker {
                        shard: entry.id.clone(),
                        replica: address.clone(),
                        handle: guarded.handle(),
                    });
                given.push(Replica::new(address.as_str(), guarded));
            }
            #[cfg_attr(not(feature = "dns"), allow(unused_mut))]
            let mut balance = Balance::builder()
                .config(config.balance.clone())
                .clock(self.clock.clone())
                .classify(self.classify.clone())
                .health_from_source()
                .replicas(given);
            #[cfg(feature = "dns")]
            if let Some(name) = &entry.discovery {
                let (discover, handle) = super::dns::discover(
                    &self.dns,
                    &config,
                    index,
                    entry,
                    name,
                    connect.clone(),
                    breakers.clone(),
                )?;
                dns_handles.push((entry.id.clone(), handle));
                balance = balance.discover(discover);
            }
            let balance = balance.build().map_err(|e| StackError::Balance {
                shard: entry.id.clone(),
                source: Box::new(e),
            })?;
            balances.push((entry.id.clone(), balance.handle()));
            members.push(Member::new(entry.id.clone(), member(balance)).weight(entry.weight));
        }

        let shard = Shard::builder()
            .config(config.shard.clone())
            .clock(self.clock.clone())
            .key_fn(self.key_fn.clone())
            .replay(self.replay.clone())
            .health_from_source()
            .members(members)
            .build()
            .map_err(|e| StackError::Shard(Box::new(e)))?;
        let shard_handle = shard.handle();

        let retry_config = config.retry.clone().unwrap_or(RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        });
        let retry = Retry::builder()
            .config(retry_config)
            .clock(self.clock.clone())
            .classify(self.classify.clone())
            .retryable(self.retryable)
            .retry_after(self.retry_after)
            .replay(self.replay)
            .build(shard)
            .map_err(|e| e.within("retry"))?;
        let retry_handle = config.retry.as_ref().map(|_| retry.handle());

        // On tokio's clock (the default) the cache keeps its ticked time
        // bound, which spares most hits a clock read.
        let cache = Cache::builder()
            .config(config.cache.clone().unwrap_or_default())
            .clock(self.clock.clone())
            .key_fn(CacheKey {
                key: config.cache.is_some().then_some(self.key_fn),
            })
            .policy(self.cache_policy)
            .classify(self.classify)
            .build(retry)
            .map_err(|e| e.within("cache"))?;
        let cache_handle = config.cache.as_ref().map(|_| cache.handle());

        let handle = StackHandle {
            cache: cache_handle,
            retry: retry_handle,
            shard: shard_handle,
            balances: Arc::new(balances),
            breakers,
            connect,
            #[cfg(feature = "dns")]
            dns: Arc::new(dns_handles),
        };
        Ok((cache, handle))
    }
}

impl From<ConfigError> for StackError {
    fn from(e: ConfigError) -> Self {
        StackError::Config(e)
    }
}
