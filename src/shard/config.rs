//! `ShardConfig`: the shard layer as data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::PlacementError;
use super::maglev::{check_table_size, Maglev, DEFAULT_TABLE_SIZE};
use super::placement::{PlacementTable, ShardSpec};
use super::ring::{check_points_per_weight, HashRing, DEFAULT_POINTS_PER_WEIGHT};
use crate::config::{non_zero_duration, ConfigError, Validate};
use crate::key::{HasherConfig, KeyHasher};

/// The most shards a request may be sent on to after its owner (`hops`).
pub const MAX_HOPS: u32 = 32;

/// Which placement algorithm maps keys to shards, with its knobs.
///
/// In TOML, a table tagged by `algorithm`:
///
/// ```toml
/// [shard.placement]
/// algorithm = "maglev"     # or "ring"
/// table_size = 65537       # maglev: a prime, at most 5000011
/// # points_per_weight = 160  # ring: points per unit of weight
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum PlacementConfig {
    /// Google's Maglev table (the default): O(1) lookup, even balance.
    Maglev {
        /// The table size: a prime, at least the number of shards, at most
        /// 5,000,011. Default 65,537. Give it at least 100 slots per shard for
        /// even balance. Changing it reshuffles nearly every key.
        #[serde(default = "default_table_size")]
        table_size: u32,
    },
    /// A consistent-hash ring with virtual nodes: exact minimal disruption,
    /// and `preference_list(k)[1]` is where `k` goes when its owner leaves.
    Ring {
        /// Points per unit of weight. Default 160; more points, better
        /// balance, larger table.
        #[serde(default = "default_points_per_weight")]
        points_per_weight: u32,
    },
}

fn default_table_size() -> u32 {
    DEFAULT_TABLE_SIZE
}

fn default_points_per_weight() -> u32 {
    DEFAULT_POINTS_PER_WEIGHT
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig::Maglev {
            table_size: DEFAULT_TABLE_SIZE,
        }
    }
}

impl PlacementConfig {
    /// Maglev with a table of `table_size` slots.
    pub fn maglev(table_size: u32) -> PlacementConfig {
        PlacementConfig::Maglev { table_size }
    }

    /// A ring with `points_per_weight` points per unit of weight.
    pub fn ring(points_per_weight: u32) -> PlacementConfig {
        PlacementConfig::Ring { points_per_weight }
    }

    /// Builds the table for `shards`.
    pub fn build(
        &self,
        hasher: KeyHasher,
        shards: &[ShardSpec],
    ) -> Result<PlacementTable, PlacementError> {
        match *self {
            PlacementConfig::Maglev { table_size } => {
                Maglev::build(table_size, hasher, shards).map(PlacementTable::Maglev)
            }
            PlacementConfig::Ring { points_per_weight } => {
                HashRing::build(points_per_weight, hasher, shards).map(PlacementTable::Ring)
            }
        }
    }
}

impl Validate for PlacementConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            PlacementConfig::Maglev { table_size } => check_table_size(table_size),
            PlacementConfig::Ring { points_per_weight } => {
                check_points_per_weight(points_per_weight)
            }
        }
    }
}

/// Configuration of the [`Shard`](super::Shard) layer.
///
/// ```toml
/// hops = 0                 # 0: strict ownership (stateful shards)
/// ready_timeout = "1s"
///
/// [placement]
/// algorithm = "maglev"
/// table_size = 65537
///
/// [hasher]
/// algorithm = "xxh3"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// The placement algorithm and its knobs. Default: Maglev, 65,537 slots.
    pub placement: PlacementConfig,
    /// How keys are hashed. Default: xxh3-64, seed 0.
    pub hasher: HasherConfig,
    /// How many shards after the owner a request may be sent on to when the
    /// owner is unavailable. Default 0: strict ownership, for stateful shards,
    /// where another shard would answer without the key's data. Set it above 0
    /// only for stateless or cache-like fleets. At most 32.
    pub hops: u32,
    /// How long a request waits for its shard's service to become ready
    /// before failing with [`ShardError::Unavailable`](super::ShardError)
    /// (or moving on, with `hops > 0`). The request's own deadline, when
    /// earlier, ends the wait first. Default 1s; lower it when callers would
    /// rather retry elsewhere or serve stale data than queue.
    #[serde(with = "crate::config::duration")]
    pub ready_timeout: Duration,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            placement: PlacementConfig::default(),
            hasher: HasherConfig::default(),
            hops: 0,
            ready_timeout: Duration::from_secs(1),
        }
    }
}

impl Validate for ShardConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.placement
            .validate()
            .map_err(|e| e.within("placement"))?;
        self.hasher.validate().map_err(|e| e.within("hasher"))?;
        if self.hops > MAX_HOPS {
            return Err(ConfigError::new(
                "hops",
                self.hops,
                format!("must be at most {MAX_HOPS}"),
            ));
        }
        non_zero_duration("ready_timeout", self.ready_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_document_and_round_trips() {
        let text = r#"
            hops = 2
            ready_timeout = "250ms"
            [placement]
            algorithm = "ring"
            points_per_weight = 40
        "#;
        let cfg: ShardConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.placement, PlacementConfig::ring(40));
        assert_eq!(cfg.ready_timeout, Duration::from_millis(250));
        cfg.validate().unwrap();
        let back: ShardConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let empty: ShardConfig = toml::from_str("").unwrap();
        assert_eq!(empty, ShardConfig::default());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<ShardConfig>("hop = 1").is_err());
        assert!(toml::from_str::<ShardConfig>(
            "[placement]\nalgorithm = \"maglev\"\npoints_per_weight = 3"
        )
        .is_err());
        assert!(toml::from_str::<ShardConfig>("[placement]\nalgorithm = \"chord\"").is_err());
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |text: &str| {
            toml::from_str::<ShardConfig>(text)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        let e = bad("[placement]\nalgorithm = \"maglev\"\ntable_size = 65536");
        assert_eq!((e.field(), e.value()), ("placement.table_size", "65536"));
        let e = bad("[placement]\nalgorithm = \"maglev\"\ntable_size = 5000017");
        assert_eq!(e.field(), "placement.table_size");
        let e = bad("[placement]\nalgorithm = \"ring\"\npoints_per_weight = 0");
        assert_eq!(e.field(), "placement.points_per_weight");
        assert_eq!(bad("hops = 33").field(), "hops");
        assert_eq!(bad("ready_timeout = \"0s\"").field(), "ready_timeout");
        assert_eq!(
            bad("[hasher]\nalgorithm = \"siphash13\"").field(),
            "hasher.secret"
        );
    }
}
