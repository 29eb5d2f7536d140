//! `StackConfig`: the whole canonical stack, and the fleet, as one document.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::balance::BalanceConfig;
use crate::breaker::BreakerConfig;
use crate::cache::CacheConfig;
use crate::config::{fmt_duration, non_zero_duration, ConfigError, Validate};
use crate::retry::RetryConfig;
use crate::shard::{ShardConfig, ShardId, ShardSpec};

/// One shard of the fleet: its id, weight and replica addresses.
///
/// ```toml
/// [[shards]]
/// id = "kv-0"
/// weight = 1
/// replicas = ["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// The shard's stable id (placement hashes it: the same on every router).
    pub id: ShardId,
    /// The shard's weight, at least 1. Default 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// The addresses of its replicas, handed to the connector. At least one,
    /// unless the shard's replicas are discovered.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// A DNS name (`host:port`) whose addresses are the shard's replicas,
    /// resolved every `[dns].interval` (feature `dns`; without it the stack
    /// builder refuses the shard with
    /// [`StackError::DiscoveryUnavailable`](super::StackError::DiscoveryUnavailable)).
    /// Discovered replicas join and leave beside the given ones, keyed by
    /// `ip:port`. Also spelled `dns`. Optional.
    #[serde(default, alias = "dns", skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
}

fn one() -> u32 {
    1
}

impl ShardEntry {
    /// A shard of weight 1 with these replica addresses.
    pub fn new(
        id: impl Into<ShardId>,
        replicas: impl IntoIterator<Item = impl Into<String>>,
    ) -> ShardEntry {
        ShardEntry {
            id: id.into(),
            weight: 1,
            replicas: replicas.into_iter().map(Into::into).collect(),
            discovery: None,
        }
    }

    /// The shard's id and weight, as placement sees it.
    pub fn spec(&self) -> ShardSpec {
        ShardSpec::new(self.id.clone()).weight(self.weight)
    }
}

/// The canonical stack and its fleet, as one serde document (TOML in the
/// examples). Each layer is a table with that layer's `Config`; a layer whose
/// table is absent is left out (the shard and balance layers, which make the
/// fleet, are always there).
///
/// ```toml
/// [cache]                # optional: absent, no cache
/// ttl = "30s"
///
/// [retry]                # optional: absent, no retries
/// max_attempts = 3
///
/// [shard]                # placement, key hashing, failover
/// [shard.placement]
/// algorithm = "maglev"
///
/// [balance]              # per shard; a [balance.quorum] table: quorum mode
/// ready_timeout = "500ms"
///
/// [breaker]              # optional: absent, no per-replica breakers
/// consecutive_failures = 5
///
/// [timeout]              # optional: absent, no per-attempt timeout
/// request = "2s"
///
/// [[shards]]
/// id = "kv-0"
/// replicas = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    /// The cache layer; absent: no cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// The retry layer; absent: every request is sent once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// The shard layer: placement, key hashing, failover.
    #[serde(default)]
    pub shard: ShardConfig,
    /// Each shard's balancer (and its quorum mode, if the table has one).
    #[serde(default)]
    pub balance: BalanceConfig,
    /// Each replica's circuit breaker (in not-ready mode, inside its shard's
    /// balancer); absent: no breakers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// The per-attempt timeout around each replica's transport; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfig>,
    /// How shards that name a DNS `discovery` are resolved (feature `dns`);
    /// absent: [`DnsConfig::default`](crate::discover::DnsConfig).
    #[cfg(feature = "dns")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::discover::DnsConfig>,
    /// The fleet: its shards and their replicas.
    #[serde(default)]
    pub shards: Vec<ShardEntry>,
}

/// The per-attempt timeout around each replica (tower's `Timeout`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// How long one attempt on one replica may take, from the call to the
    /// response head. Required in the table; above zero. Set it below the
    /// retry layer's deadline so that a hung replica leaves time to retry.
    #[serde(with = "crate::config::duration")]
    pub request: Duration,
}

impl StackConfig {
    /// A configuration of just the fleet, every optional layer left out.
    pub fn fleet(shards: Vec<ShardEntry>) -> StackConfig {
        StackConfig {
            cache: None,
            retry: None,
            shard: ShardConfig::default(),
            balance: BalanceConfig::default(),
            breaker: None,
            timeout: None,
            #[cfg(feature = "dns")]
            dns: None,
            shards,
        }
    }
}

impl Validate for StackConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cache) = &self.cache {
            cache.validate().map_err(|e| e.within("cache"))?;
        }
        if let Some(retry) = &self.retry {
            retry.validate().map_err(|e| e.within("retry"))?;
        }
        self.shard.validate().map_err(|e| e.within("shard"))?;
        self.balance.validate().map_err(|e| e.within("balance"))?;
        if let Some(breaker) = &self.breaker {
            breaker.validate().map_err(|e| e.within("breaker"))?;
        }
        if let Some(timeout) = &self.timeout {
            non_zero_duration("request", timeout.request).map_err(|e| e.within("timeout"))?;
        }
        #[cfg(feature = "dns")]
        if let Some(dns) = &self.dns {
            dns.validate().map_err(|e| e.within("dns"))?;
        }
        if self.shards.is_empty() {
            return Err(ConfigError::new(
                "shards",
                "[]",
                "a fleet needs at least one shard",
            ));
        }
        let mut ids = HashSet::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let at = |e: ConfigError| e.within(&format!("shards[{i}]"));
            if shard.id.as_str().is_empty() {
                return Err(at(ConfigError::new("id", "\"\"", "must not be empty")));
            }
            if !ids.insert(shard.id.clone()) {
                return Err(at(ConfigError::new(
                    "id",
                    &shard.id,
                    "appears more than once",
                )));
            }
            if shard.weight == 0 {
                return Err(at(ConfigError::new("weight", 0, "must be at least 1")));
            }
            if shard.replicas.is_empty() && shard.discovery.is_none() {
                return Err(at(ConfigError::new(
                    "replicas",
                    "[]",
                    "a shard needs at least one replica address, or a discovery name",
                )));
            }
            let mut seen = HashSet::new();
            for (j, address) in shard.replicas.iter().enumerate() {
                let at = |e: ConfigError| at(e.within(&format!("replicas[{j}]")));
                if address.trim().is_empty() {
                    return Err(at(ConfigError::new(
                        "",
                        format!("{address:?}"),
                        "must not be empty",
                    )));
                }
                if !seen.insert(address) {
                    return Err(at(ConfigError::new(
                        "",
                        format!("{address:?}"),
                        "appears more than once in this shard",
                    )));
                }
            }
            if let Some(name) = &shard.discovery {
                if name.trim().is_empty() {
                    return Err(at(ConfigError::new(
                        "discovery",
                        format!("{name:?}"),
                        "must not be empty",
                    )));
                }
            }
        }
        // The placement must be able to hold this fleet (table size, jump
        // numbering, weights).
        let specs: Vec<ShardSpec> = self.shards.iter().map(ShardEntry::spec).collect();
        let hasher = self
            .shard
            .hasher
            .build()
            .map_err(|e| e.within("shard.hasher"))?;
        if let Err(e) = self.shard.placement.build(hasher, &specs) {
            return Err(ConfigError::new(
                "shards",
                format!("{} shards", specs.len()),
                e.to_string(),
            ));
        }
        if let (Some(timeout), Some(retry)) = (&self.timeout, &self.retry) {
            if let Some(deadline) = retry.timeout {
                if timeout.request >= deadline {
                    return Err(ConfigError::new(
                        "timeout.request",
                        fmt_duration(timeout.request),
                        format!(
                            "must be below retry.timeout ({}), or no attempt after the first can run",
                            fmt_duration(deadline)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
