//! `CacheLayer`: a cache as a `tower::Layer`.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::builder::CacheBuilder;
use super::config::CacheConfig;
use super::core::Core;
use super::handle::CacheHandle;
use super::load::Rules;
use super::memory::MemoryStore;
use super::policy::DefaultPolicy;
use super::service::Cache;
use crate::classify::ErrorIsFailure;
use crate::config::ConfigError;
use crate::key::Identity;

/// Adds a cache in front of a service, for use with `tower::ServiceBuilder`.
///
/// Every service this layer makes shares the layer's one store and one
/// [`CacheHandle`]: apply another layer for an independent cache.
///
/// ```
/// use tower::{service_fn, ServiceBuilder, Service, ServiceExt};
/// use tower_fleet::cache::{CacheConfig, CacheLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
/// let layer = CacheLayer::new(CacheConfig::default())?; // the request is its own key
/// let handle = layer.handle();
/// let mut svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|req: String| async move { Ok::<_, std::io::Error>(req.len()) }));
/// assert_eq!(svc.ready().await?.call("four".to_string()).await?, 4);
/// assert_eq!(svc.ready().await?.call("four".to_string()).await?, 4);
/// assert_eq!(handle.snapshot().hits, 1);
/// # Ok(()) }
/// ```
pub struct CacheLayer<
    T,
    K = Identity,
    St = MemoryStore<T>,
    P = DefaultPolicy<T>,
    C = ErrorIsFailure,
> {
    pub(crate) core: Arc<Core<T, St>>,
    pub(crate) key_fn: Arc<K>,
    pub(crate) rules: Arc<Rules<P, C>>,
}

impl<T, K, St, P, C> Clone for CacheLayer<T, K, St, P, C> {
    fn clone(&self) -> Self {
        CacheLayer {
            core: self.core.clone(),
            key_fn: self.key_fn.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<T, K, St, P, C> fmt::Debug for CacheLayer<T, K, St, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("freshness", &self.rules.freshness)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> CacheLayer<T> {
    /// A layer with this configuration, the request itself as its key, and
    /// the default store and policy. Use [`Cache::builder`] for the rest.
    pub fn new(config: CacheConfig) -> Result<CacheLayer<T>, ConfigError> {
        CacheBuilder::new().config(config).layer()
    }
}

impl<T, K, St, P, C> CacheLayer<T, K, St, P, C> {
    /// A handle on the layer's shared cache.
    pub fn handle(&self) -> CacheHandle<T, St> {
        CacheHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, T, K, St, P, C> Layer<S> for CacheLayer<T, K, St, P, C> {
    type Service = Cache<S, T, K, St, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            core: self.core.clone(),
            key_fn: self.key_fn.clone(),
            rules: self.rules.clone(),
        }
    }
}
