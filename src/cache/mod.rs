//! Caching with miss coalescing and stale serving.
//!
//! TODO docs
mod config;
mod core;
mod entry;
mod error;
mod flight;
mod future;
mod handle;
mod layer;
mod load;
mod memory;
mod policy;
mod service;
mod store;

pub use config::{CacheConfig, MAX_EARLY_REFRESH_BETA};
pub use entry::{Entry, Freshness};
pub use error::{CacheError, SharedError};
pub use future::ResponseFuture;
pub use handle::{CacheHandle, CacheSnapshot};
pub use layer::{CacheBuilder, CacheLayer, DefaultStore, GivenStore, MakeStore};
pub use memory::MemoryStore;
pub use policy::{DefaultPolicy, Policy};
pub use service::Cache;
pub use store::{CacheKey, Lookup, Store, StoreStats};
