//! `QuorumConfig`: the quorum mode as data.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{fmt_duration, non_zero_duration, ConfigError, Validate};

/// How many replicas a quorum call sends a copy to.
///
/// In TOML, a number (`n = 3`: the three best available replicas by the
/// balancer's load metric) or the word `"all"` (`n = "all"`: every available
/// replica of the set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FanOut {
    /// Every available replica of the set (the default).
    #[default]
    All,
    /// The `n` best available replicas by the balancer's load metric; the
    /// others are spares for failover. At least 1.
    Best(u32),
}

impl FanOut {
    /// How many replicas a call contacts in a set of `set` replicas.
    pub(crate) fn of(self, set: usize) -> usize {
        match self {
            FanOut::All => set,
            FanOut::Best(n) => set.min(n as usize),
        }
    }
}

impl fmt::Display for FanOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FanOut::All => f.write_str("all"),
            FanOut::Best(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for FanOut {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        match self {
            FanOut::All => s.serialize_str("all"),
            FanOut::Best(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for FanOut {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FanOut, D::Error> {
        struct FanOutVisitor;
        impl Visitor<'_> for FanOutVisitor {
            type Value = FanOut;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of replicas or \"all\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FanOut, E> {
                u32::try_from(v)
                    .map(FanOut::Best)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FanOut, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FanOut, E> {
                match v {
                    "all" => Ok(FanOut::All),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(FanOutVisitor)
    }
}

/// Configuration of the quorum mode of [`Balance`](super::super::Balance):
/// how many replicas get a copy, how many must succeed, and how long the
/// call and its stragglers may take.
///
/// In a balancer's document, the optional `[quorum]` table:
///
/// ```toml
/// [quorum]
/// n = "all"                 # or a number: the n best available replicas
/// read = 2                  # R: successes a read needs
/// write = 2                 # W: successes a write needs
/// timeout = "1s"
/// straggler_timeout = "5s"
/// max_stragglers = 1024
/// ```
///
/// The defaults are Dynamo's usual N = 3, R = 2, W = 2 for a shard of three
/// replicas: R + W > N, so a read overlaps every acknowledged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuorumConfig {
    /// How many replicas get a copy of each request: `"all"` available
    /// replicas (the default), or the `n` best by the balancer's load metric,
    /// keeping the others as spares that take a copy when a contacted replica
    /// fails. At least 1. Use a number when the set is larger than the
    /// replication you need; but note that read-your-writes then needs
    /// R + W > the set's size, not n (see the module docs).
    pub n: FanOut,
    /// R: the successes a read ([`QuorumKind::Read`](super::QuorumKind::Read))
    /// needs. Default 2; from 1 to n. Lower is faster and more available,
    /// higher makes reads see more recent writes (R + W > N for read-your-writes).
    pub read: u32,
    /// W: the successes a write ([`QuorumKind::Write`](super::QuorumKind::Write))
    /// needs. Default 2; from 1 to n. Raise it for durability, lower it for
    /// write availability.
    pub write: u32,
    /// How long a quorum call waits for its successes (readiness, failovers
    /// and calls included); the request's own deadline, when earlier, ends it
    /// first. Default 1s; set it a little above the replicas' tail latency.
    /// Greater than zero.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
    /// How long copies still in flight when the outcome is decided (the
    /// stragglers) may run in the background, so that their outcomes reach
    /// the replicas' health and a write still lands; after that they are
    /// cancelled. Default 5s; greater than zero.
    #[serde(with = "crate::config::duration")]
    pub straggler_timeout: Duration,
    /// The most stragglers the balancer keeps running in the background at
    /// once; beyond it, stragglers are cancelled when the outcome is decided.
    /// Default 1024; 0 cancels every straggler at once (their replicas are
    /// then charged the time they had taken, as for any cancelled call).
    pub max_stragglers: u32,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            n: FanOut::All,
            read: 2,
            write: 2,
            timeout: Duration::from_secs(1),
            straggler_timeout: Duration::from_secs(5),
            max_stragglers: 1024,
        }
    }
}

impl Validate for QuorumConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.n == FanOut::Best(0) {
            return Err(ConfigError::new("n", 0, "must be at least 1, or \"all\""));
        }
        for (field, q) in [("read", self.read), ("write", self.write)] {
            if q == 0 {
                return Err(ConfigError::new(field, q, "must be at least 1"));
            }
            if let FanOut::Best(n) = self.n {
                if q > n {
                    return Err(ConfigError::new(
                        field,
                        q,
                        format!("must be at most n = {n}: a quorum larger than the replicas asked can never be reached"),
                    ));
                }
            }
        }
        non_zero_duration("timeout", self.timeout)?;
        if self.straggler_timeout.is_zero() {
            return Err(ConfigError::new(
                "straggler_timeout",
                fmt_duration(self.straggler_timeout),
                "must be greater than zero (set max_stragglers = 0 to cancel stragglers at once)",
            ));
        }
        Ok(())
    }
}
