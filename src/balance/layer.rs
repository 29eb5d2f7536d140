//! `BalanceLayer`: makes a `Balance` over a set of replicas from a
//! configuration, for use with `tower::ServiceBuilder`.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::config::BalanceConfig;
use super::core::{Core, Settings};
use super::error::MembershipError;
use super::handle::BalanceHandle;
use super::replica::Replica;
use super::service::Balance;
use crate::classify::ErrorIsFailure;
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};

/// Applies balancing to a set of replicas: `BalanceLayer::layer(replicas)`
/// makes a [`Balance`] over them.
///
/// The configuration is validated when the layer is made. A set that cannot
/// be taken (a zero weight, a duplicate id) cannot be reported by
/// `Layer::layer`, which cannot fail: the balancer it returns then fails
/// every call with [`BalanceError::Membership`](super::BalanceError::Membership).
/// Use [`BalanceLayer::try_layer`] or [`Balance::builder`] to get the error
/// up front. Discovery, health checks and per-replica layers are the
/// builder's.
///
/// ```
/// use tower::{service_fn, Layer};
/// use tower_fleet::balance::{BalanceConfig, BalanceLayer, Replica};
///
/// let layer = BalanceLayer::new(BalanceConfig::default()).unwrap();
/// let echo = service_fn(|req: String| async move { Ok::<_, std::convert::Infallible>(req) });
/// let balance = layer.layer(vec![Replica::new("a", echo.clone()), Replica::new("b", echo)]);
/// assert_eq!(balance.handle().replicas().len(), 2);
/// ```
#[derive(Clone)]
pub struct BalanceLayer<C = ErrorIsFailure> {
    config: BalanceConfig,
    clock: Clock,
    classify: C,
}

impl<C> fmt::Debug for BalanceLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BalanceLayer {
    /// A layer with this configuration and the default classifier.
    pub fn new(config: BalanceConfig) -> Result<BalanceLayer, ConfigError> {
        config.validate()?;
        Ok(BalanceLayer {
            config,
            clock: Clock::default(),
            classify: ErrorIsFailure,
        })
    }
}

impl<C> BalanceLayer<C> {
    /// The same layer with another classifier.
    pub fn classify<C2>(self, classify: C2) -> BalanceLayer<C2> {
        BalanceLayer {
            config: self.config,
            clock: self.clock,
            classify,
        }
    }

    /// The same layer with another clock.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A balancer over `replicas`, or the reason they cannot be taken.
    pub fn try_layer<S: Clone>(
        &self,
        replicas: Vec<Replica<S>>,
    ) -> Result<Balance<S, C>, MembershipError>
    where
        C: Clone,
    {
        let balance = self.make(replicas);
        match balance.core.invalid.get() {
            Some(e) => Err(e.clone()),
            None => Ok(balance),
        }
    }

    fn make<S: Clone>(&self, replicas: Vec<Replica<S>>) -> Balance<S, C>
    where
        C: Clone,
    {
        let core = Arc::new(Core::new(
            Settings::new(&self.config),
            self.clock.clone(),
            None,
        ));
        if !replicas.is_empty() {
            if let Err(e) = (BalanceHandle { core: core.clone() }).set_replicas(replicas) {
                let _ = core.invalid.set(e);
            }
        }
        Balance {
            core,
            classify: self.classify.clone(),
        }
    }
}

impl<S: Clone, C: Clone> Layer<Vec<Replica<S>>> for BalanceLayer<C> {
    type Service = Balance<S, C>;

    fn layer(&self, replicas: Vec<Replica<S>>) -> Self::Service {
        self.make(replicas)
    }
}
