//! `CacheBuilder`: the way to make a `Cache` (or a `CacheLayer`) in code.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::config::CacheConfig;
use super::core::{Core, Settings};
use super::horizon::Horizon;
use super::layer::CacheLayer;
use super::load::Rules;
use super::make_store::{DefaultStore, GivenStore, MakeStore};
use super::policy::DefaultPolicy;
use super::service::Cache;
use super::store::Store;
use crate::classify::ErrorIsFailure;
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};
use crate::key::{Identity, Key};

/// What a built cache is made of.
type Parts<T, St, K, P, C> = (Arc<Core<T, St>>, Arc<K>, Arc<Rules<P, C>>);

/// The cache a builder builds around `S`.
type Built<S, T, K, M, P, C> = Cache<S, T, K, <M as MakeStore<T>>::Store, P, C>;

/// Builds a [`Cache`] (or a [`CacheLayer`]). Start with [`Cache::builder`].
///
/// Reads like a sentence, and validates like [`CacheConfig::validate`]:
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use tower::{service_fn, Service, ServiceExt};
/// use tower_fleet::cache::Cache;
/// use tower_fleet::key::Key;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
/// let backend = service_fn(|id: u64| async move { Ok::<_, std::io::Error>(Bytes::from(format!("user {id}"))) });
/// let mut users = Cache::builder()
///     .max_entries(10_000)
///     .ttl(Duration::from_secs(30))
///     .stale_while_revalidate(Duration::from_secs(5))
///     .key(|id: &u64| Some(Key::from(*id)))
///     .cache_if(|body: &Bytes| !body.is_empty())
///     .build(backend)?;
/// assert_eq!(users.ready().await?.call(7).await?, "user 7");
/// # Ok(()) }
/// ```
pub struct CacheBuilder<
    T,
    K = Identity,
    M = DefaultStore<T>,
    P = DefaultPolicy<T>,
    C = ErrorIsFailure,
> {
    config: CacheConfig,
    clock: Option<Clock>,
    key_fn: K,
    store: M,
    policy: P,
    classify: C,
    _value: PhantomData<fn() -> T>,
}

impl<T, K, M: fmt::Debug, P, C> fmt::Debug for CacheBuilder<T, K, M, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<T> CacheBuilder<T> {
    /// A builder with the default configuration ([`CacheConfig::default`]),
    /// the request itself as its key, and every `Ok` response cached.
    pub fn new() -> CacheBuilder<T> {
        CacheBuilder {
            config: CacheConfig::default(),
            clock: None,
            key_fn: Identity,
            store: DefaultStore::new(),
            policy: DefaultPolicy::new(),
            classify: ErrorIsFailure,
            _value: PhantomData,
        }
    }
}

impl<T> Default for CacheBuilder<T> {
    fn default() -> Self {
        CacheBuilder::new()
    }
}

impl<T> Cache<(), T> {
    /// A [`CacheBuilder`] with the default configuration; the inner service
    /// is given to [`CacheBuilder::build`].
    pub fn builder() -> CacheBuilder<T> {
        CacheBuilder::new()
    }
}

impl<T, K, M, P, C> CacheBuilder<T, K, M, P, C> {
    /// Takes every setting of a [`CacheConfig`]. It is validated by
    /// [`build`](Self::build).
    #[must_use]
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
        self
    }

    /// The most entries the default store holds ([`CacheConfig::max_entries`]).
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.config.max_entries = n;
        self
    }

    /// How long a stored response is fresh ([`CacheConfig::ttl`]).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Entries not read for this long are dead ([`CacheConfig::time_to_idle`]).
    #[must_use]
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.config.time_to_idle = Some(tti);
        self
    }

    /// The stale-while-revalidate window ([`CacheConfig::stale_while_revalidate`]).
    #[must_use]
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config.stale_while_revalidate = window;
        self
    }

    /// The stale-if-error window ([`CacheConfig::stale_if_error`]).
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = window;
        self
    }

    /// Caches errors this long ([`CacheConfig::negative_ttl`]).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = Some(ttl);
        self
    }

    /// How long a miss waits for the inner service to be ready
    /// ([`CacheConfig::ready_timeout`]).
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.config.ready_timeout = timeout;
        self
    }

    /// How long a miss waits for another's load before calling upstream
    /// itself ([`CacheConfig::coalesce_timeout`]).
    #[must_use]
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.config.coalesce_timeout = Some(timeout);
        self
    }

    /// Probabilistic early refresh with this `beta` ([`CacheConfig::early_refresh`]).
    #[must_use]
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.config.early_refresh = Some(beta);
        self
    }

    /// The clock that ages entries. By default the cache reads tokio's
    /// clock, and only on the hits that its ticked time bound cannot prove
    /// fresh ([`CacheConfig::clock_resolution`]); [`Clock::tokio`] given
    /// here is that default, bound included. Any other clock is read as it
    /// is on every hit (the bound is off). A [`Clock::coarse`] clock
    /// costs one atomic load per hit, and its resolution then bounds how
    /// precisely entries expire; a [`Clock::manual`] one is for tests on a
    /// multi-threaded runtime.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How often the time bound that spares hits a clock read is ticked
    /// ([`CacheConfig::clock_resolution`]); zero turns it off.
    #[must_use]
    pub fn clock_resolution(mut self, resolution: Duration) -> Self {
        self.config.clock_resolution = resolution;
        self
    }

    /// The key of each request, from a closure that may borrow it from the
    /// request. A request whose key is `None` passes through uncached.
    #[must_use]
    pub fn key<Req, F>(self, f: F) -> CacheBuilder<T, F, M, P, C>
    where
        F: for<'r> Fn(&'r Req) -> Option<Key<'r>>,
    {
        self.key_fn(f)
    }

    /// The key of each request, from any [`KeyFn`](crate::key::KeyFn).
    #[must_use]
    pub fn key_fn<K2>(self, key_fn: K2) -> CacheBuilder<T, K2, M, P, C> {
        CacheBuilder {
            config: self.config,
            clock: self.clock,
            key_fn,
            store: self.store,
            policy: self.policy,
            classify: self.classify,
            _value: PhantomData,
        }
    }

    /// Another store (a remote tier, a store shared by several caches).
    #[must_use]
    pub fn store<St2: Store<T>>(self, store: St2) -> CacheBuilder<T, K, GivenStore<St2>, P, C> {
        CacheBuilder {
            config: self.config,
            clock: self.clock,
            key_fn: self.key_fn,
            store: GivenStore::new(store),
            policy: self.policy,
            classify: self.classify,
            _value: PhantomData,
        }
    }

    /// Another policy: what is stored, for how long, under which variant,
    /// and how stale entries are revalidated (see [`Policy`](super::Policy)).
    #[must_use]
    pub fn policy<P2>(self, policy: P2) -> CacheBuilder<T, K, M, P2, C> {
        CacheBuilder {
            config: self.config,
            clock: self.clock,
            key_fn: self.key_fn,
            store: self.store,
            policy,
            classify: self.classify,
            _value: PhantomData,
        }
    }

    /// What counts as a failed load, for stale-if-error (by default every
    /// error). A response the classifier calls a failure is never stored.
    #[must_use]
    pub fn classify<C2>(self, classify: C2) -> CacheBuilder<T, K, M, P, C2> {
        CacheBuilder {
            config: self.config,
            clock: self.clock,
            key_fn: self.key_fn,
            store: self.store,
            policy: self.policy,
            classify,
            _value: PhantomData,
        }
    }

    fn parts(self) -> Result<Parts<T, M::Store, K, P, C>, ConfigError>
    where
        T: Clone,
        M: MakeStore<T>,
    {
        self.config.validate()?;
        let store = self.store.make(&self.config)?;
        let freshness = self.config.freshness();
        let settings = Settings {
            freshness,
            tti: self.config.time_to_idle,
            early_refresh: self.config.early_refresh,
            coalesce_timeout: self.config.coalesce_timeout,
        };
        let res = self.config.clock_resolution;
        let (clock, horizon) = match self.clock {
            Some(clock) if !clock.is_tokio() => (clock, None),
            _ if res.is_zero() || self.config.early_refresh.is_some() => (Clock::tokio(), None),
            _ => (Clock::tokio(), Horizon::start(res)),
        };
        let core = Arc::new(Core::new(store, clock.clone(), horizon, settings));
        let rules = Arc::new(Rules {
            policy: self.policy,
            classify: self.classify,
            freshness,
            negative_ttl: self.config.negative_ttl,
            ready_timeout: self.config.ready_timeout,
            clock,
        });
        Ok((core, Arc::new(self.key_fn), rules))
    }

    /// Builds the cache around `inner`. Fails on an invalid configuration.
    pub fn build<S>(self, inner: S) -> Result<Built<S, T, K, M, P, C>, ConfigError>
    where
        T: Clone,
        M: MakeStore<T>,
    {
        let (core, key_fn, rules) = self.parts()?;
        Ok(Cache {
            inner,
            core,
            key_fn,
            rules,
        })
    }

    /// A layer whose services all share one store (and one handle). Fails on
    /// an invalid configuration.
    pub fn layer(self) -> Result<CacheLayer<T, K, M::Store, P, C>, ConfigError>
    where
        T: Clone,
        M: MakeStore<T>,
    {
        let (core, key_fn, rules) = self.parts()?;
        Ok(CacheLayer {
            core,
            key_fn,
            rules,
        })
    }
}

impl<T, K, P, C> CacheBuilder<T, K, DefaultStore<T>, P, C> {
    /// Bounds the default store by weight rather than entry count: each
    /// entry weighs `weigh(key, value)` (at least 1) and the total stays at
    /// most `max_weight` (bytes of bodies, say). `max_entries` then only
    /// sizes the tables up front.
    #[must_use]
    pub fn weigher(
        mut self,
        max_weight: u64,
        weigh: impl Fn(&[u8], &T) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.store.set_weigher(max_weight, Box::new(weigh));
        self
    }
}

impl<T, K, M, C> CacheBuilder<T, K, M, DefaultPolicy<T>, C> {
    /// Stores only the `Ok` responses for which `f` returns `true` (by
    /// default every `Ok` response is stored).
    #[must_use]
    pub fn cache_if(mut self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.policy = DefaultPolicy::cache_if(f);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn horizon_of(builder: CacheBuilder<u32>) -> bool {
        let (core, _, _) = builder
            .key(|k: &u32| Some(crate::key::Key::from(k.to_string())))
            .parts()
            .unwrap();
        core.horizon.is_some()
    }

    #[tokio::test]
    async fn tokio_s_clock_given_keeps_the_ticked_bound_and_others_turn_it_off() {
        assert!(horizon_of(Cache::builder()));
        assert!(horizon_of(Cache::builder().clock(Clock::tokio())));
        assert!(!horizon_of(
            Cache::builder().clock(Clock::coarse(Duration::from_millis(1)).unwrap())
        ));
        assert!(!horizon_of(
            Cache::builder()
                .clock(Clock::tokio())
                .clock_resolution(Duration::ZERO)
        ));
    }
}
