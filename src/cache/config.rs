//! `CacheConfig`: the cache layer as data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::entry::Freshness;
use crate::config::{fmt_duration, non_zero_duration, ConfigError, Validate};

/// The default [`CacheConfig::clock_resolution`]: 10ms.
pub const DEFAULT_CLOCK_RESOLUTION: Duration = Duration::from_millis(10);

/// The largest early-refresh `beta` accepted.
pub const MAX_EARLY_REFRESH_BETA: f64 = 10.0;

/// Configuration of the [`Cache`](super::Cache) layer.
///
/// ```toml
/// max_entries = 10000
/// ttl = "60s"
/// time_to_idle = "10m"          # optional
/// stale_while_revalidate = "5s"
/// stale_if_error = "5m"
/// negative_ttl = "1s"           # optional: cache errors this long
/// ready_timeout = "1s"
/// coalesce_timeout = "2s"       # optional
/// early_refresh = 1.0           # optional: XFetch beta
/// clock_resolution = "10ms"      # "0s": hits read the clock
/// ```
///
/// Every field is optional; an empty document is the default configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// The most entries the in-memory store holds; the least useful are
    /// evicted beyond it (S3-FIFO). Default 10,000; at least 1. Size it to
    /// the hot set: a store a bit larger than the keys that are read often
    /// answers nearly all of them. Ignored when the builder is given another
    /// store or a weigher (then the weigher's capacity bounds it).
    pub max_entries: u64,
    /// How long a stored response is fresh (served without asking upstream).
    /// Default 60s; must be greater than zero. A [`Policy`](super::Policy)
    /// may set it per response. Lower it for data that changes often and
    /// that you do not invalidate; raise it for data you invalidate on write.
    #[serde(with = "crate::config::duration")]
    pub ttl: Duration,
    /// When set, an entry not read for this long is dead, even if fresh.
    /// Default unset. Set it to let rarely read entries go early, so that
    /// they do not outstay hot ones.
    #[serde(
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_to_idle: Option<Duration>,
    /// For how long after `ttl` a stale entry is served at once while one
    /// background refresh runs. Default 0s (off). Turn it on when a slightly
    /// stale answer now beats a fresh one after an upstream round trip.
    #[serde(with = "crate::config::duration")]
    pub stale_while_revalidate: Duration,
    /// For how long after `ttl` a stale entry is served when the load that
    /// should replace it fails (an error, a response the classifier calls a
    /// failure, an open breaker, load shedding). Default 0s (off). Turn it on
    /// when stale data is kinder than an error.
    #[serde(with = "crate::config::duration")]
    pub stale_if_error: Duration,
    /// When set, errors of the inner service are cached this long, so that a
    /// failing key costs at most one upstream call per `negative_ttl`.
    /// Default unset (errors are never cached). Keep it short (about a second).
    #[serde(
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub negative_ttl: Option<Duration>,
    /// How long a miss waits for the inner service to become ready before
    /// it is shed with [`CacheError::Overloaded`](super::CacheError::Overloaded).
    /// Default 1s; must be greater than zero. The request's deadline, when
    /// earlier, ends the wait first. Lower it to fail (or serve stale) sooner
    /// under overload.
    #[serde(with = "crate::config::duration")]
    pub ready_timeout: Duration,
    /// When set, a request that waits this long for another's load of the
    /// same key stops waiting and calls upstream itself (like nginx's
    /// `proxy_cache_lock_timeout`). Default unset: waiters wait for the load
    /// (or their deadline). Set it when one slow load must not hold back
    /// every waiter.
    #[serde(
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub coalesce_timeout: Option<Duration>,
    /// When set, probabilistic early refresh (XFetch): a hit on a fresh entry
    /// starts a background refresh with a probability that grows as expiry
    /// nears, scaled by how long the entry took to load and by this `beta`.
    /// Default unset (off); `1.0` is the usual value; greater than 0, at most
    /// 10. Turn it on for hot keys whose expiry would otherwise make every
    /// reader wait for one load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_refresh: Option<f64>,
    /// How often a background task ticks the time bound that lets a hit
    /// skip reading the clock. Default 10ms; `0s` (off), or from 1ms to 1s.
    ///
    /// A hit only needs the time to tell that its entry has not expired, and
    /// reading the clock costs about as much as the store lookup itself on
    /// some virtual machines. With a resolution `r`, a task on the tokio
    /// runtime the cache is built in writes the time every `r`, and a hit
    /// whose entry is fresh for more than `3r` after the last tick is served
    /// without reading the clock; only hits within `3r` of their entry's
    /// expiry (or past it) read it and are judged exactly. So no entry is
    /// served past its expiry while the task runs at most `2r` late; a task
    /// late by `d > 2r` (a starved runtime, or one whose thread a blocking
    /// call holds) lets an entry be served fresh for less than `d - 2r`
    /// past its expiry. When the task stops (its
    /// runtime shut down), every hit reads the clock.
    ///
    /// Not used (every hit reads the clock) when the cache is built outside
    /// a tokio runtime, while tokio's time is paused (tests), with
    /// `early_refresh` (each hit draws against the exact time), or when
    /// [`CacheBuilder::clock`](super::CacheBuilder::clock) gives the cache a
    /// clock of its own. Set `0s` to read the clock on every hit; raise it
    /// to wake the runtime less often (each tick is one task wake-up); lower
    /// it for very short `ttl`s, where `3r` is a large part of an entry's life.
    #[serde(with = "crate::config::duration")]
    pub clock_resolution: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            ttl: Duration::from_secs(60),
            time_to_idle: None,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            negative_ttl: None,
            ready_timeout: Duration::from_secs(1),
            coalesce_timeout: None,
            early_refresh: None,
            clock_resolution: DEFAULT_CLOCK_RESOLUTION,
        }
    }
}

impl CacheConfig {
    /// The default freshness of stored responses.
    pub fn freshness(&self) -> Freshness {
        Freshness {
            ttl: self.ttl,
            stale_while_revalidate: self.stale_while_revalidate,
            stale_if_error: self.stale_if_error,
        }
    }
}

fn non_zero_opt(field: &str, value: Option<Duration>) -> Result<(), ConfigError> {
    value.map_or(Ok(()), |d| non_zero_duration(field, d))
}

/// Durations beyond this (about 100 years) are refused: they would overflow
/// the crate's time arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

fn bounded(field: &str, value: Duration) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::new(
            field,
            fmt_duration(value),
            "must be at most 100 years",
        ));
    }
    Ok(())
}

impl Validate for CacheConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_entries == 0 {
            return Err(ConfigError::new("max_entries", 0, "must be at least 1"));
        }
        non_zero_duration("ttl", self.ttl)?;
        non_zero_opt("time_to_idle", self.time_to_idle)?;
        non_zero_opt("negative_ttl", self.negative_ttl)?;
        non_zero_duration("ready_timeout", self.ready_timeout)?;
        non_zero_opt("coalesce_timeout", self.coalesce_timeout)?;
        let all = [
            ("ttl", Some(self.ttl)),
            ("time_to_idle", self.time_to_idle),
            ("stale_while_revalidate", Some(self.stale_while_revalidate)),
            ("stale_if_error", Some(self.stale_if_error)),
            ("negative_ttl", self.negative_ttl),
            ("ready_timeout", Some(self.ready_timeout)),
            ("coalesce_timeout", self.coalesce_timeout),
        ];
        for (field, value) in all {
            if let Some(d) = value {
                bounded(field, d)?;
            }
        }
        let res = self.clock_resolution;
        if !res.is_zero() && !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&res) {
            return Err(ConfigError::new(
                "clock_resolution",
                fmt_duration(res),
                "must be 0s (off) or from 1ms to 1s",
            ));
        }
        if let Some(beta) = self.early_refresh {
            if !(beta > 0.0 && beta <= MAX_EARLY_REFRESH_BETA) {
                return Err(ConfigError::new(
                    "early_refresh",
                    beta,
                    "must be greater than 0 and at most 10",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_document_and_round_trips() {
        let text = r#"
            max_entries = 500
            ttl = "30s"
            time_to_idle = "5m"
            stale_while_revalidate = "5s"
            stale_if_error = "1m"
            negative_ttl = "1s"
            ready_timeout = "250ms"
            coalesce_timeout = "2s"
            early_refresh = 1.5
            clock_resolution = "2ms"
        "#;
        let cfg: CacheConfig = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.ttl, Duration::from_secs(30));
        assert_eq!(cfg.time_to_idle, Some(Duration::from_secs(300)));
        assert_eq!(cfg.coalesce_timeout, Some(Duration::from_secs(2)));
        assert_eq!(cfg.early_refresh, Some(1.5));
        assert_eq!(cfg.clock_resolution, Duration::from_millis(2));
        let back: CacheConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let empty: CacheConfig = toml::from_str("").unwrap();
        assert_eq!(empty, CacheConfig::default());
        let default_back: CacheConfig = toml::from_str(&toml::to_string(&empty).unwrap()).unwrap();
        assert_eq!(default_back, empty);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<CacheConfig>("tll = \"1s\"").is_err());
        assert!(toml::from_str::<CacheConfig>("ttl = \"soon\"").is_err());
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |text: &str| {
            toml::from_str::<CacheConfig>(text)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        assert_eq!(bad("max_entries = 0").field(), "max_entries");
        let e = bad("ttl = \"0s\"");
        assert_eq!((e.field(), e.value()), ("ttl", "0s"));
        assert_eq!(bad("time_to_idle = \"0s\"").field(), "time_to_idle");
        assert_eq!(bad("negative_ttl = \"0s\"").field(), "negative_ttl");
        assert_eq!(bad("ready_timeout = \"0s\"").field(), "ready_timeout");
        assert_eq!(bad("coalesce_timeout = \"0s\"").field(), "coalesce_timeout");
        assert_eq!(
            bad("stale_if_error = \"200years\"").field(),
            "stale_if_error"
        );
        assert_eq!(bad("early_refresh = 0.0").field(), "early_refresh");
        assert_eq!(bad("early_refresh = 11.0").field(), "early_refresh");
        assert_eq!(bad("early_refresh = nan").field(), "early_refresh");
        let e = bad("clock_resolution = \"500us\"");
        assert_eq!((e.field(), e.value()), ("clock_resolution", "500us"));
        assert_eq!(bad("clock_resolution = \"2s\"").field(), "clock_resolution");
        let off: CacheConfig = toml::from_str("clock_resolution = \"0s\"").unwrap();
        off.validate().unwrap();
    }
}
