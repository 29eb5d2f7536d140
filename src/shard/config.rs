//! `ShardConfig`: the shard layer as data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::PlacementError;
use super::jump::Jump;
use super::maglev::{check_table_size, Maglev, DEFAULT_TABLE_SIZE};
use super::memento::{LogEntry, Memento};
use super::placement::{Placement, PlacementTable, ShardSpec};
use super::rendezvous::Rendezvous;
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
/// algorithm = "maglev"     # "maglev", "ring", "rendezvous", "jump" or "memento"
/// table_size = 65537       # maglev: a prime, at most 5000011
/// # points_per_weight = 160  # ring: points per unit of weight
/// # log = [{ add = "a" }, { add = "b" }, { remove = "a" }]   # memento: the ordered membership log
/// ```
///
/// The [module docs](super) compare the algorithms.
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
    /// Rendezvous (highest random weight) hashing: exact minimal disruption,
    /// weights, an exact preference list; O(N) lookup.
    Rendezvous {},
    /// Jump consistent hash for numbered shards (`kv-0`, `kv-1`, ...) that
    /// only grow or shrink at the end; no weights.
    Jump {},
    /// MementoHash: exact minimal disruption under arbitrary removals, for
    /// fleets that can give every router the same ordered membership log.
    Memento {
        /// The ordered membership log that every router applies. Empty: the
        /// initial shards are added in id order. Later changes through the
        /// shard's handle are appended (see `ShardHandle::membership_log`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log: Vec<LogEntry>,
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

    /// Rendezvous hashing.
    pub fn rendezvous() -> PlacementConfig {
        PlacementConfig::Rendezvous {}
    }

    /// Jump consistent hash over numbered shards.
    pub fn jump() -> PlacementConfig {
        PlacementConfig::Jump {}
    }

    /// MementoHash starting from this ordered membership log (empty: the
    /// initial shards are added in id order).
    pub fn memento(log: Vec<LogEntry>) -> PlacementConfig {
        PlacementConfig::Memento { log }
    }

    /// Builds the table for `shards`. Memento replays its configured log
    /// (which must end with exactly these shards) or, when the log is empty,
    /// adds the shards in id order.
    pub fn build(
        &self,
        hasher: KeyHasher,
        shards: &[ShardSpec],
    ) -> Result<PlacementTable, PlacementError> {
        match self {
            PlacementConfig::Memento { log } if !log.is_empty() => {
                let table = self.build_logged(hasher, shards, log)?;
                check_same_members(&table, shards)?;
                Ok(table)
            }
            _ => self.build_logged(hasher, shards, &Memento::log_of(shards)),
        }
    }

    /// Builds the table, giving Memento this log (the other algorithms
    /// place the set `shards` and ignore it).
    pub(crate) fn build_logged(
        &self,
        hasher: KeyHasher,
        shards: &[ShardSpec],
        log: &[LogEntry],
    ) -> Result<PlacementTable, PlacementError> {
        match *self {
            PlacementConfig::Maglev { table_size } => {
                Maglev::build(table_size, hasher, shards).map(PlacementTable::Maglev)
            }
            PlacementConfig::Ring { points_per_weight } => {
                HashRing::build(points_per_weight, hasher, shards).map(PlacementTable::Ring)
            }
            PlacementConfig::Rendezvous {} => {
                Rendezvous::build(hasher, shards).map(PlacementTable::Rendezvous)
            }
            PlacementConfig::Jump {} => Jump::build(hasher, shards).map(PlacementTable::Jump),
            PlacementConfig::Memento { .. } => {
                if let Some(s) = shards.iter().find(|s| s.weight != 1) {
                    return Err(PlacementError::Unweighted {
                        algorithm: "memento",
                        id: s.id.clone(),
                    });
                }
                Memento::from_log(hasher, log).map(PlacementTable::Memento)
            }
        }
    }

    /// Whether the mapping depends on the order of membership changes.
    pub fn needs_ordered_log(&self) -> bool {
        matches!(self, PlacementConfig::Memento { .. })
    }

    /// The configured initial log (Memento), or an empty one.
    pub(crate) fn initial_log(&self) -> &[LogEntry] {
        match self {
            PlacementConfig::Memento { log } => log,
            _ => &[],
        }
    }
}

fn check_same_members(table: &PlacementTable, shards: &[ShardSpec]) -> Result<(), PlacementError> {
    let placed = table.shards();
    let mut given: Vec<&ShardSpec> = shards.iter().collect();
    given.sort_by(|a, b| a.id.cmp(&b.id));
    for (i, s) in given.iter().enumerate() {
        if placed.get(i).map(|p| &p.id) != Some(&s.id) {
            return Err(PlacementError::LogMismatch { id: s.id.clone() });
        }
    }
    match placed.get(given.len()) {
        Some(extra) => Err(PlacementError::LogMismatch {
            id: extra.id.clone(),
        }),
        None => Ok(()),
    }
}

impl Validate for PlacementConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match self {
            PlacementConfig::Maglev { table_size } => check_table_size(*table_size),
            PlacementConfig::Ring { points_per_weight } => {
                check_points_per_weight(*points_per_weight)
            }
            PlacementConfig::Rendezvous {} | PlacementConfig::Jump {} => Ok(()),
            PlacementConfig::Memento { log } if log.is_empty() => Ok(()),
            PlacementConfig::Memento { log } => {
                match Memento::from_log(KeyHasher::default(), log) {
                    Ok(_) => Ok(()),
                    Err(PlacementError::BadLog { index, id }) => Err(ConfigError::new(
                        format!("log[{index}]"),
                        id,
                        "adds a shard that is already a member or removes one that is not",
                    )),
                    Err(e) => Err(ConfigError::new(
                        "log",
                        format!("{} entries", log.len()),
                        e.to_string(),
                    )),
                }
            }
        }
    }
}

/// Bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent hashing
/// with bounded loads"), for stateless or cache-like fleets.
///
/// No shard takes more than `ceil(balance_factor × (requests in flight + 1) / N)`
/// requests at once: a request goes to the first shard of its key's
/// preference list that is under that cap, so a hot key spills over to the
/// next shards instead of overloading its owner, and comes back to the owner
/// as soon as the owner's load falls. `balance_factor` is HAProxy's and
/// Envoy's hash balance factor divided by 100 (Envoy's `hash_balance_factor:
/// 125` is 1.25).
///
/// ```toml
/// [shard.bounded_loads]
/// balance_factor = 1.25
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoundedLoadsConfig {
    /// `c > 1`, at most 100; resolved to thousandths. Default 1.25. Lower
    /// keeps load closer to even at the cost of more keys away from their
    /// owner (fewer cache hits); higher the reverse.
    pub balance_factor: f64,
}

impl Default for BoundedLoadsConfig {
    fn default() -> Self {
        BoundedLoadsConfig {
            balance_factor: 1.25,
        }
    }
}

impl BoundedLoadsConfig {
    /// The factor in thousandths, as the cap is computed in integers.
    pub(crate) fn factor_milli(&self) -> u64 {
        (self.balance_factor * 1000.0).round() as u64
    }
}

impl Validate for BoundedLoadsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let c = self.balance_factor;
        if !(c.is_finite() && c > 1.0 && c <= 100.0) || self.factor_milli() <= 1000 {
            return Err(ConfigError::new(
                "balance_factor",
                c,
                "must be greater than 1 (at least 1.001) and at most 100",
            ));
        }
        Ok(())
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Bounded loads, for stateless or cache-like fleets: cap each shard's
    /// requests in flight and spill hot keys along their preference list.
    /// Default: off. Cannot be combined with `hops > 0` (it already moves
    /// requests along the preference list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounded_loads: Option<BoundedLoadsConfig>,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            placement: PlacementConfig::default(),
            hasher: HasherConfig::default(),
            hops: 0,
            ready_timeout: Duration::from_secs(1),
            bounded_loads: None,
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
        if let Some(bounded) = &self.bounded_loads {
            bounded.validate().map_err(|e| e.within("bounded_loads"))?;
            if self.hops > 0 {
                return Err(ConfigError::new(
                    "hops",
                    self.hops,
                    "must be 0 with bounded_loads, which already moves requests along the preference list",
                ));
            }
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
