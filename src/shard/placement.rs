//! The placement trait, shard identities, and the table that holds any algorithm.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::PlacementError;
use super::maglev::Maglev;
use super::ring::HashRing;
use crate::key::KeyHasher;

/// At most this many shards in one placement (indices are 16-bit).
pub const MAX_SHARDS: usize = 65_535;

/// The stable name of a shard. Placement hashes it, so it must be the same on
/// every router of a fleet. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(Arc<str>);

impl ShardId {
    /// A shard id from a name.
    pub fn new(id: impl AsRef<str>) -> ShardId {
        ShardId(Arc::from(id.as_ref()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ShardId {
    fn from(s: &str) -> Self {
        ShardId::new(s)
    }
}

impl From<String> for ShardId {
    fn from(s: String) -> Self {
        ShardId(Arc::from(s))
    }
}

impl From<&String> for ShardId {
    fn from(s: &String) -> Self {
        ShardId::new(s)
    }
}

impl AsRef<str> for ShardId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ShardId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for ShardId {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ShardId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ShardId::from)
    }
}

/// A shard as placement sees it: its id and its weight (its share of keys is
/// proportional to its weight).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    /// The shard's stable id.
    pub id: ShardId,
    /// The shard's weight, at least 1.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl ShardSpec {
    /// A shard of weight 1.
    pub fn new(id: impl Into<ShardId>) -> ShardSpec {
        ShardSpec {
            id: id.into(),
            weight: 1,
        }
    }

    /// The same shard with another weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> ShardSpec {
        self.weight = weight;
        self
    }
}

impl<I: Into<ShardId>> From<(I, u32)> for ShardSpec {
    fn from((id, weight): (I, u32)) -> Self {
        ShardSpec {
            id: id.into(),
            weight,
        }
    }
}

impl From<&str> for ShardSpec {
    fn from(id: &str) -> Self {
        ShardSpec::new(id)
    }
}

impl From<String> for ShardSpec {
    fn from(id: String) -> Self {
        ShardSpec::new(id)
    }
}

impl From<ShardId> for ShardSpec {
    fn from(id: ShardId) -> Self {
        ShardSpec::new(id)
    }
}

/// A consistent-hash placement: maps a key to the shard that owns it, and to
/// the shards that would own it next.
///
/// A placement is an immutable table built from a membership. Its shards are
/// kept sorted by id, so the table does not depend on the order in which they
/// were added, and the indices it returns refer to [`Placement::shards`].
pub trait Placement {
    /// The shards, sorted by id.
    fn shards(&self) -> &[ShardSpec];

    /// The hasher that turns key bytes into the hash the table is indexed by.
    fn hasher(&self) -> &KeyHasher;

    /// The index (into [`shards`](Placement::shards)) of the owner of a key hash.
    fn route_hash(&self, hash: u64) -> usize;

    /// Clears `out` and fills it with the indices of the first `n` distinct
    /// shards of a key hash's preference list, the owner first. Fewer than `n`
    /// when the placement has fewer shards.
    fn preference_hash(&self, hash: u64, n: usize, out: &mut Vec<usize>);

    /// The shard that owns `key`.
    fn route(&self, key: &[u8]) -> &ShardId {
        let i = self.route_hash(self.hasher().hash(key));
        &self.shards()[i].id
    }

    /// The first `n` distinct shards in the order placement would pick them for
    /// `key`, the owner first (all shards if there are fewer than `n`).
    fn preference_list(&self, key: &[u8], n: usize) -> Vec<&ShardId> {
        let mut out = Vec::with_capacity(n.min(self.shards().len()));
        self.preference_hash(self.hasher().hash(key), n, &mut out);
        out.into_iter().map(|i| &self.shards()[i].id).collect()
    }
}

/// Checks a membership and returns it sorted by id.
pub(crate) fn sorted_members(shards: &[ShardSpec]) -> Result<Vec<ShardSpec>, PlacementError> {
    if shards.is_empty() {
        return Err(PlacementError::Empty);
    }
    if shards.len() > MAX_SHARDS {
        return Err(PlacementError::TooManyShards {
            count: shards.len(),
        });
    }
    let mut sorted = shards.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for s in &sorted {
        if s.weight == 0 {
            return Err(PlacementError::ZeroWeight { id: s.id.clone() });
        }
    }
    for pair in sorted.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(PlacementError::DuplicateId {
                id: pair[0].id.clone(),
            });
        }
    }
    Ok(sorted)
}

/// Fills `out` with the remaining shard indices in index order, up to `n`.
/// Used when a walk of a table did not find enough distinct shards.
pub(crate) fn fill_in_order(len: usize, n: usize, out: &mut Vec<usize>) {
    let mut i = 0;
    while out.len() < n.min(len) && i < len {
        if !out.contains(&i) {
            out.push(i);
        }
        i += 1;
    }
}

/// A placement table of any of the crate's algorithms, chosen at run time
/// (from a [`PlacementConfig`](super::PlacementConfig)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PlacementTable {
    /// Google's Maglev table.
    Maglev(Maglev),
    /// A consistent-hash ring with virtual nodes.
    Ring(HashRing),
}

impl Placement for PlacementTable {
    fn shards(&self) -> &[ShardSpec] {
        match self {
            PlacementTable::Maglev(t) => t.shards(),
            PlacementTable::Ring(t) => t.shards(),
        }
    }

    fn hasher(&self) -> &KeyHasher {
        match self {
            PlacementTable::Maglev(t) => t.hasher(),
            PlacementTable::Ring(t) => t.hasher(),
        }
    }

    #[inline]
    fn route_hash(&self, hash: u64) -> usize {
        match self {
            PlacementTable::Maglev(t) => t.route_hash(hash),
            PlacementTable::Ring(t) => t.route_hash(hash),
        }
    }

    fn preference_hash(&self, hash: u64, n: usize, out: &mut Vec<usize>) {
        match self {
            PlacementTable::Maglev(t) => t.preference_hash(hash, n, out),
            PlacementTable::Ring(t) => t.preference_hash(hash, n, out),
        }
    }
}
