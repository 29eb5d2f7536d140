//! The Redis tier's configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::config::{fmt_duration, ConfigError, Validate};

/// The configuration of a [`RedisStore`](super::RedisStore).
///
/// ```toml
/// namespace = "catalog"          # key prefix and invalidation channel
/// first_tier_max_entries = 10000
/// command_timeout = "250ms"
/// max_batch = 256
/// resubscribe_delay = "100ms"
/// [breaker]                      # our CircuitBreaker around Redis
/// consecutive_failures = 3
/// open_duration = "1s"
/// ```
///
/// Every field is optional; an empty document is the default configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisTierConfig {
    /// The namespace: every key is stored as `<namespace>:d:<key>`, and
    /// invalidations travel on the channel `<namespace>:inv`. Default
    /// `"tower-fleet"`; 1 to 128 bytes, no whitespace. Give each cache that
    /// shares a Redis server its own, so that neither reads nor flushes the
    /// other's entries.
    pub namespace: String,
    /// How many entries the in-process first tier holds. Default 10,000;
    /// at least 1. Raise it for a large hot set: a first-tier hit costs no
    /// network round trip.
    pub first_tier_max_entries: u64,
    /// How long one batch of Redis commands may take before it counts as a
    /// failure (the reads in it are then misses). Default 250ms; from 1ms
    /// to 60s. Keep it well under the request deadlines that the origin
    /// must still meet after a Redis timeout.
    #[serde(with = "crate::config::duration")]
    pub command_timeout: Duration,
    /// The most commands sent to Redis in one pipeline. Default 256; 1 to
    /// 10,000. Commands are sent in order, one pipeline at a time; a larger
    /// batch carries more of a stampede of different keys per round trip.
    pub max_batch: usize,
    /// How long the invalidation subscriber waits before it tries again
    /// after losing its connection. Default 100ms; from 1ms to 60s.
    #[serde(with = "crate::config::duration")]
    pub resubscribe_delay: Duration,
    /// The circuit breaker around Redis. Default: open after 3 failures in
    /// a row (or the default failure rate), for 1s, growing to 30s while
    /// Redis stays down; half-open probes then try it again.
    pub breaker: BreakerConfig,
}

/// The default breaker around Redis: quick to open, quick to probe again.
pub(crate) fn default_breaker() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(3),
        open_duration: Duration::from_secs(1),
        open_duration_multiplier: 2.0,
        max_open_duration: Duration::from_secs(30),
        ..BreakerConfig::default()
    }
}

impl Default for RedisTierConfig {
    fn default() -> Self {
        RedisTierConfig {
            namespace: "tower-fleet".to_owned(),
            first_tier_max_entries: 10_000,
            command_timeout: Duration::from_millis(250),
            max_batch: 256,
            resubscribe_delay: Duration::from_millis(100),
            breaker: default_breaker(),
        }
    }
}

fn within_bounds(field: &str, d: Duration) -> Result<(), ConfigError> {
    if (Duration::from_millis(1)..=Duration::from_secs(60)).contains(&d) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            fmt_duration(d),
            "must be from 1ms to 60s",
        ))
    }
}

impl Validate for RedisTierConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ns = &self.namespace;
        if ns.is_empty() || ns.len() > 128 || ns.chars().any(char::is_whitespace) {
            return Err(ConfigError::new(
                "namespace",
                ns,
                "must be 1 to 128 bytes without whitespace",
            ));
        }
        if self.first_tier_max_entries == 0 {
            return Err(ConfigError::new(
                "first_tier_max_entries",
                0,
                "must be at least 1",
            ));
        }
        within_bounds("command_timeout", self.command_timeout)?;
        within_bounds("resubscribe_delay", self.resubscribe_delay)?;
        if !(1..=10_000).contains(&self.max_batch) {
            return Err(ConfigError::new(
                "max_batch",
                self.max_batch,
                "must be from 1 to 10000",
            ));
        }
        self.breaker.validate().map_err(|e| e.within("breaker"))
    }
}
