//! `ShardBuilder` and `ShardLayer`: the ways to make a `Shard`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tower::discover::Discover;
use tower::Layer;

use super::config::{PlacementConfig, ShardConfig};
use super::error::{PlacementError, ShardBuildError};
use super::handle::{Member, ShardHandle};
use super::placement::ShardSpec;
use super::service::{Core, CoreStats, HealthOf, Shard, Snapshot};
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};
use crate::key::{Identity, Key, KeyHasher};
use crate::signal::{HealthSignal, HealthSource, NoReplay};
use crate::{BoxError, NoRuntime};

type StartDiscovery<S> = Box<dyn FnOnce(&Arc<Core<S>>) -> Result<(), NoRuntime> + Send>;

/// Builds a [`Shard`]. Start with [`Shard::builder`].
///
/// ```
/// use tower::{service_fn, Service, ServiceExt};
/// use tower_fleet::key::{self, Key};
/// use tower_fleet::shard::{Member, PlacementConfig, Shard};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
/// let node = |name: &'static str| service_fn(move |req: String| async move {
///     Ok::<_, std::convert::Infallible>(format!("{name} has {req}"))
/// });
/// let mut shard = Shard::builder()
///     .placement(PlacementConfig::ring(160))
///     .key(|req: &String| Some(Key::from(req.as_str())))
///     .member(Member::new("a", node("a")))
///     .member(Member::new("b", node("b")))
///     .build()?;
/// let answer = shard.ready().await?.call("user:42".to_string()).await?;
/// let owner = shard.handle().route(b"user:42").unwrap();
/// assert_eq!(answer, format!("{owner} has user:42"));
/// # Ok(()) }
/// ```
pub struct ShardBuilder<S, K = Identity, R = NoReplay> {
    config: ShardConfig,
    hasher: Option<KeyHasher>,
    clock: Clock,
    key_fn: K,
    replay: R,
    members: Vec<Member<S>>,
    health_of: Option<HealthOf<S>>,
    discover: Option<StartDiscovery<S>>,
}

impl<S, K, R> fmt::Debug for ShardBuilder<S, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardBuilder")
            .field("config", &self.config)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl<S> Shard<S> {
    /// A builder with the default configuration: Maglev placement, xxh3 keys,
    /// strict ownership (`hops = 0`), the request itself as its key.
    pub fn builder() -> ShardBuilder<S> {
        ShardBuilder {
            config: ShardConfig::default(),
            hasher: None,
            clock: Clock::default(),
            key_fn: Identity,
            replay: NoReplay,
            members: Vec::new(),
            health_of: None,
            discover: None,
        }
    }
}

impl<S, K, R> Shard<S, K, R> {
    /// A handle on this shard's membership and counters (shared by all clones).
    pub fn handle(&self) -> ShardHandle<S> {
        ShardHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, K, R> ShardBuilder<S, K, R> {
    /// Takes every setting of a [`ShardConfig`] (placement, hasher, hops,
    /// ready timeout). It is validated by [`build`](Self::build).
    #[must_use]
    pub fn config(mut self, config: ShardConfig) -> Self {
        self.config = config;
        self
    }

    /// The placement algorithm.
    #[must_use]
    pub fn placement(mut self, placement: PlacementConfig) -> Self {
        self.config.placement = placement;
        self
    }

    /// The key hasher, instead of the one the configuration describes.
    #[must_use]
    pub fn hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// How many shards after the owner a request may move on to (see
    /// [`ShardConfig::hops`]).
    #[must_use]
    pub fn hops(mut self, hops: u32) -> Self {
        self.config.hops = hops;
        self
    }

    /// How long a request waits for its shard to become ready.
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.config.ready_timeout = timeout;
        self
    }

    /// The clock for health checks and waits (tokio's by default).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The key of each request, from a closure that may borrow it from the request.
    #[must_use]
    pub fn key<Req, F>(self, f: F) -> ShardBuilder<S, F, R>
    where
        F: for<'r> Fn(&'r Req) -> Option<Key<'r>>,
    {
        self.key_fn(f)
    }

    /// The key of each request, from any [`KeyFn`](crate::key::KeyFn).
    #[must_use]
    pub fn key_fn<K2>(self, key_fn: K2) -> ShardBuilder<S, K2, R> {
        ShardBuilder {
            config: self.config,
            hasher: self.hasher,
            clock: self.clock,
            key_fn,
            replay: self.replay,
            members: self.members,
            health_of: self.health_of,
            discover: self.discover,
        }
    }

    /// How to copy a request so that, with `hops > 0`, it can be sent on after
    /// its owner answered with the unavailable signal
    /// ([`CloneReplay`](crate::signal::CloneReplay) for `Clone` requests).
    /// Without it, a request moves on only before it was sent (owner known
    /// unavailable, or not ready in time).
    #[must_use]
    pub fn replay<R2>(self, replay: R2) -> ShardBuilder<S, K, R2> {
        ShardBuilder {
            config: self.config,
            hasher: self.hasher,
            clock: self.clock,
            key_fn: self.key_fn,
            replay,
            members: self.members,
            health_of: self.health_of,
            discover: self.discover,
        }
    }

    /// Adds a shard.
    #[must_use]
    pub fn member(mut self, member: Member<S>) -> Self {
        self.members.push(member);
        self
    }

    /// Adds shards.
    #[must_use]
    pub fn members(mut self, members: impl IntoIterator<Item = Member<S>>) -> Self {
        self.members.extend(members);
        self
    }

    /// How to find the health signal of a shard's service, for shards added
    /// without one (by discovery, say).
    #[must_use]
    pub fn health_from(
        self,
        f: impl Fn(&S) -> Option<HealthSignal> + Send + Sync + 'static,
    ) -> Self {
        self.health_from_arc(Arc::new(f))
    }

    fn health_from_arc(mut self, f: HealthOf<S>) -> Self {
        self.health_of = Some(f);
        self
    }

    /// Reads each shard's health from its service, for services that publish
    /// one (the crate's balancer and breaker).
    #[must_use]
    pub fn health_from_source(self) -> Self
    where
        S: HealthSource,
    {
        self.health_from_arc(Arc::new(|s: &S| Some(s.health_signal())))
    }

    /// Feeds the membership from a discovery stream, driven by a background
    /// task that [`build`](Self::build) starts on the current tokio runtime.
    /// Each discovered key converts into the shard's id and weight. The task
    /// stops when the stream ends or the last clone of the shard (and of its
    /// handles) is dropped. The shard may start empty.
    #[must_use]
    pub fn discover<D>(mut self, discover: D) -> Self
    where
        D: Discover<Service = S> + Send + 'static,
        D::Key: Into<ShardSpec> + Send,
        D::Error: Into<BoxError>,
        S: Clone + Send + Sync + 'static,
    {
        self.discover = Some(Box::new(move |core| super::discover::spawn(core, discover)));
        self
    }

    /// Builds the shard: validates the configuration, builds the placement
    /// table, and starts discovery if it was asked for.
    ///
    /// Fails on an invalid configuration, an invalid membership (empty without
    /// discovery, a zero weight, a duplicate id, a Maglev table smaller than
    /// the shard count), or when discovery is asked for outside a tokio runtime.
    pub fn build(self) -> Result<Shard<S, K, R>, ShardBuildError>
    where
        S: Clone,
    {
        self.config.validate().map_err(PlacementError::from)?;
        let hasher = match self.hasher {
            Some(h) => h,
            None => self
                .config
                .hasher
                .build()
                .map_err(|e| PlacementError::from(e.within("hasher")))?,
        };
        if self.members.is_empty() && self.discover.is_none() {
            return Err(PlacementError::Empty.into());
        }
        let core = Arc::new(new_core(&self.config, hasher, self.clock, self.health_of));
        if !self.members.is_empty() {
            ShardHandle { core: core.clone() }.set_members(self.members)?;
        }
        if let Some(start) = self.discover {
            start(&core)?;
        }
        Ok(Shard {
            core,
            key_fn: Arc::new(self.key_fn),
            replay: self.replay,
        })
    }
}

fn new_core<S>(
    config: &ShardConfig,
    hasher: KeyHasher,
    clock: Clock,
    health_of: Option<HealthOf<S>>,
) -> Core<S> {
    Core {
        snapshot: ArcSwap::from_pointee(Snapshot::empty(None)),
        placement: config.placement.clone(),
        hasher,
        hops: config.hops,
        ready_timeout: config.ready_timeout,
        clock,
        membership: Mutex::new(BTreeMap::new()),
        health_of,
        stats: CoreStats::default(),
        workers: Mutex::new(Vec::new()),
    }
}

/// Applies sharding to a set of shards: `ShardLayer::layer(members)` makes a
/// [`Shard`] over them, for use with `tower::ServiceBuilder`.
///
/// The configuration is validated when the layer is made. A membership that
/// cannot be placed (empty, a zero weight, a duplicate id, more shards than
/// the Maglev table) cannot be reported by `Layer::layer`, which cannot fail:
/// the shard it returns then fails every call with
/// [`ShardError::Membership`](super::ShardError::Membership). Use
/// [`ShardLayer::try_layer`] or [`Shard::builder`] to get the error up front.
///
/// ```
/// use tower::{service_fn, Layer};
/// use tower_fleet::shard::{Member, ShardConfig, ShardLayer};
///
/// let layer = ShardLayer::new(ShardConfig::default()).unwrap();
/// let echo = service_fn(|req: String| async move { Ok::<_, std::convert::Infallible>(req) });
/// let shard = layer.layer(vec![Member::new("a", echo.clone()), Member::new("b", echo)]);
/// assert_eq!(shard.handle().members().len(), 2);
/// ```
pub struct ShardLayer<K = Identity, R = NoReplay> {
    config: ShardConfig,
    hasher: KeyHasher,
    clock: Clock,
    key_fn: Arc<K>,
    replay: R,
}

impl<K, R: Clone> Clone for ShardLayer<K, R> {
    fn clone(&self) -> Self {
        ShardLayer {
            config: self.config.clone(),
            hasher: self.hasher.clone(),
            clock: self.clock.clone(),
            key_fn: self.key_fn.clone(),
            replay: self.replay.clone(),
        }
    }
}

impl<K, R> fmt::Debug for ShardLayer<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ShardLayer {
    /// A layer with this configuration, the request itself as its key, and no
    /// replay.
    pub fn new(config: ShardConfig) -> Result<ShardLayer, ConfigError> {
        config.validate()?;
        let hasher = config.hasher.build().map_err(|e| e.within("hasher"))?;
        Ok(ShardLayer {
            config,
            hasher,
            clock: Clock::default(),
            key_fn: Arc::new(Identity),
            replay: NoReplay,
        })
    }
}

impl<K, R> ShardLayer<K, R> {
    /// The same layer with a key closure.
    pub fn key<Req, F>(self, f: F) -> ShardLayer<F, R>
    where
        F: for<'r> Fn(&'r Req) -> Option<Key<'r>>,
    {
        self.key_fn(f)
    }

    /// The same layer with any [`KeyFn`](crate::key::KeyFn).
    pub fn key_fn<K2>(self, key_fn: K2) -> ShardLayer<K2, R> {
        ShardLayer {
            config: self.config,
            hasher: self.hasher,
            clock: self.clock,
            key_fn: Arc::new(key_fn),
            replay: self.replay,
        }
    }

    /// The same layer with a request replay (see [`ShardBuilder::replay`]).
    pub fn replay<R2>(self, replay: R2) -> ShardLayer<K, R2> {
        ShardLayer {
            config: self.config,
            hasher: self.hasher,
            clock: self.clock,
            key_fn: self.key_fn,
            replay,
        }
    }

    /// The same layer with another clock.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A shard over `members`, or the reason they cannot be placed.
    pub fn try_layer<S: Clone>(
        &self,
        members: Vec<Member<S>>,
    ) -> Result<Shard<S, K, R>, PlacementError>
    where
        R: Clone,
    {
        let shard = self.make(members);
        let err = shard.core.snapshot.load().error.clone();
        match err {
            Some(e) => Err(e),
            None => Ok(shard),
        }
    }

    fn make<S: Clone>(&self, members: Vec<Member<S>>) -> Shard<S, K, R>
    where
        R: Clone,
    {
        let core = Arc::new(new_core(
            &self.config,
            self.hasher.clone(),
            self.clock.clone(),
            None,
        ));
        let result = if members.is_empty() {
            Err(PlacementError::Empty)
        } else {
            ShardHandle { core: core.clone() }.set_members(members)
        };
        if let Err(e) = result {
            core.snapshot.store(Arc::new(Snapshot::empty(Some(e))));
        }
        Shard {
            core,
            key_fn: self.key_fn.clone(),
            replay: self.replay.clone(),
        }
    }
}

impl<S: Clone, K, R: Clone> Layer<Vec<Member<S>>> for ShardLayer<K, R> {
    type Service = Shard<S, K, R>;

    fn layer(&self, members: Vec<Member<S>>) -> Self::Service {
        self.make(members)
    }
}
