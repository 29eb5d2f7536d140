//! How a builder gets its store: the default `MemoryStore`, or one given.

use std::fmt;

use super::config::CacheConfig;
use super::memory::MemoryStore;
use super::store::Store;
use crate::config::ConfigError;

/// How a [`CacheBuilder`](super::CacheBuilder) gets its store: the [`DefaultStore`], made from
/// the configuration when the cache is built, or a [`GivenStore`].
pub trait MakeStore<T> {
    /// The store made.
    type Store: Store<T>;
    /// Makes the store; `config` is already validated.
    fn make(self, config: &CacheConfig) -> Result<Self::Store, ConfigError>;
}

/// A store given to [`CacheBuilder::store`](super::CacheBuilder::store), used as it is.
#[derive(Debug)]
pub struct GivenStore<St>(St);

impl<St> GivenStore<St> {
    pub(crate) fn new(store: St) -> GivenStore<St> {
        GivenStore(store)
    }
}

impl<T, St: Store<T>> MakeStore<T> for GivenStore<St> {
    type Store = St;
    fn make(self, _config: &CacheConfig) -> Result<St, ConfigError> {
        Ok(self.0)
    }
}

type WeighFn<T> = Box<dyn Fn(&[u8], &T) -> u64 + Send + Sync>;

/// The builder's default store: a [`MemoryStore`] of `max_entries` entries,
/// or bounded by the weigher given to [`CacheBuilder::weigher`](super::CacheBuilder::weigher).
pub struct DefaultStore<T> {
    weigher: Option<(u64, WeighFn<T>)>,
}

impl<T> DefaultStore<T> {
    pub(crate) fn new() -> DefaultStore<T> {
        DefaultStore { weigher: None }
    }

    pub(crate) fn set_weigher(&mut self, max_weight: u64, weigh: WeighFn<T>) {
        self.weigher = Some((max_weight, weigh));
    }
}

impl<T> fmt::Debug for DefaultStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultStore")
            .field("max_weight", &self.weigher.as_ref().map(|w| w.0))
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> MakeStore<T> for DefaultStore<T> {
    type Store = MemoryStore<T>;
    fn make(self, config: &CacheConfig) -> Result<MemoryStore<T>, ConfigError> {
        match self.weigher {
            None => MemoryStore::new(config.max_entries),
            Some((max_weight, weigh)) => {
                let estimate = usize::try_from(config.max_entries).unwrap_or(usize::MAX);
                MemoryStore::weighed(max_weight, estimate, move |k: &[u8], v: &T| weigh(k, v))
            }
        }
    }
}
