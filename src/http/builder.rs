//! `Http`: the HTTP pieces made from one configuration, sharing one set of
//! counters.

use std::sync::Arc;

use super::body::BufferResponseLayer;
use super::buffer::BufferRequestLayer;
use super::cache::HttpCachePolicy;
use super::classify::HttpClassify;
use super::config::{HttpCacheConfig, HttpConfig};
use super::eos::EndOfStreamLayer;
use super::grpc::GrpcCode;
use super::handle::{HttpHandle, Stats};
use super::replay::HttpReplay;
use super::retry_after::HttpRetryAfter;
use super::retryable::{ByMethod, HttpRetryPolicy};
use crate::config::{ConfigError, Validate};

/// The HTTP integration's pieces, made from one validated [`HttpConfig`]:
/// take each where it goes in the stack. All of them share one set of
/// counters ([`Http::handle`]).
///
/// ```
/// use tower_fleet::http::Http;
///
/// let http = Http::builder().fail_on_429(false).max_replay_body(16 * 1024).build().unwrap();
/// let classify = http.classify();          // for the breaker, balancer, cache
/// let retry = http.retry_policy();         // for the retry layer
/// let cache = http.cache_policy();         // for the cache layer
/// let buffer = http.buffer_request_layer(); // above the retry layer
/// assert_eq!(http.handle().snapshot().bodies_buffered, 0);
/// # drop((classify, retry, cache, buffer));
/// ```
#[derive(Clone, Debug)]
pub struct Http {
    config: HttpConfig,
    classify: HttpClassify,
    retryable: ByMethod,
    cache: HttpCachePolicy,
    stats: Arc<Stats>,
}

impl Http {
    /// The pieces for `config`, or the first invalid field.
    pub fn new(config: HttpConfig) -> Result<Http, ConfigError> {
        config.validate()?;
        let classify = HttpClassify::new()
            .fail_on_408(config.fail_on_408)
            .fail_on_429(config.fail_on_429)
            .grpc_failures(config.grpc_codes());
        let retryable = match config.idempotency_header_name()? {
            Some(h) => ByMethod::new().marker_header(h),
            None => ByMethod::new().without_marker_header(),
        };
        let cache = HttpCachePolicy::new(&config.cache).map_err(|e| e.within("cache"))?;
        Ok(Http {
            config,
            classify,
            retryable,
            cache,
            stats: Arc::default(),
        })
    }

    /// A builder, from the default configuration.
    pub fn builder() -> HttpBuilder {
        HttpBuilder {
            config: HttpConfig::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The classifier, for every layer's `classify`.
    pub fn classify(&self) -> HttpClassify {
        self.classify
    }

    /// The retryable predicate by method (within [`retry_policy`](Self::retry_policy)).
    pub fn retryable(&self) -> ByMethod {
        self.retryable.clone()
    }

    /// The request replay, for retries, hedges and shard failover.
    pub fn replay(&self) -> HttpReplay {
        HttpReplay::with_stats(self.stats.clone())
    }

    /// The retry-after reader.
    pub fn retry_after(&self) -> HttpRetryAfter {
        HttpRetryAfter::with_stats(self.stats.clone())
    }

    /// The retry layer's policy: all of the above together.
    pub fn retry_policy(&self) -> HttpRetryPolicy {
        HttpRetryPolicy::with_stats(self.classify, self.retryable.clone(), self.stats.clone())
    }

    /// The cache layer's policy.
    pub fn cache_policy(&self) -> HttpCachePolicy {
        self.cache.clone()
    }

    /// The layer that buffers request bodies (up to `max_replay_body`) so
    /// that they can be replayed; above the retry layer.
    pub fn buffer_request_layer(&self) -> BufferRequestLayer {
        BufferRequestLayer::with_stats(self.config.max_replay_body, self.stats.clone())
    }

    /// The layer that buffers response bodies (up to `max_response_body`);
    /// at the bottom of the stack, inside the timeout.
    pub fn buffer_response_layer(&self) -> BufferResponseLayer {
        BufferResponseLayer::with_stats(self.config.max_response_body, self.stats.clone())
    }

    /// The layer that reports gRPC statuses from trailers; right above the
    /// transport.
    pub fn end_of_stream_layer(&self) -> EndOfStreamLayer {
        EndOfStreamLayer::new().failures(self.classify.grpc_codes())
    }

    /// The counters of every piece made from this value.
    pub fn handle(&self) -> HttpHandle {
        HttpHandle {
            stats: self.stats.clone(),
        }
    }
}

/// Builds an [`Http`]: each method sets one field of [`HttpConfig`];
/// [`build`](Self::build) validates them as [`Http::new`] does.
#[derive(Clone, Debug)]
pub struct HttpBuilder {
    config: HttpConfig,
}

impl HttpBuilder {
    /// Every setting of `config`.
    #[must_use]
    pub fn config(mut self, config: HttpConfig) -> Self {
        self.config = config;
        self
    }

    /// See [`HttpConfig::fail_on_408`].
    #[must_use]
    pub fn fail_on_408(mut self, fail: bool) -> Self {
        self.config.fail_on_408 = fail;
        self
    }

    /// See [`HttpConfig::fail_on_429`].
    #[must_use]
    pub fn fail_on_429(mut self, fail: bool) -> Self {
        self.config.fail_on_429 = fail;
        self
    }

    /// See [`HttpConfig::grpc_failures`].
    #[must_use]
    pub fn grpc_failures(mut self, codes: impl IntoIterator<Item = GrpcCode>) -> Self {
        self.config.grpc_failures = codes.into_iter().collect();
        self
    }

    /// See [`HttpConfig::idempotency_header`].
    #[must_use]
    pub fn idempotency_header(mut self, name: Option<&str>) -> Self {
        self.config.idempotency_header = name.map(str::to_string);
        self
    }

    /// See [`HttpConfig::max_replay_body`].
    #[must_use]
    pub fn max_replay_body(mut self, bytes: u64) -> Self {
        self.config.max_replay_body = bytes;
        self
    }

    /// See [`HttpConfig::max_response_body`].
    #[must_use]
    pub fn max_response_body(mut self, bytes: u64) -> Self {
        self.config.max_response_body = bytes;
        self
    }

    /// See [`HttpConfig::cache`].
    #[must_use]
    pub fn cache(mut self, cache: HttpCacheConfig) -> Self {
        self.config.cache = cache;
        self
    }

    /// The pieces, or the first invalid field.
    pub fn build(self) -> Result<Http, ConfigError> {
        Http::new(self.config)
    }
}
