//! Helpers shared by the integration tests.
#![allow(dead_code)]

use tower_fleet::key::KeyHasher;
use tower_fleet::shard::{Placement, PlacementConfig, PlacementTable, ShardSpec};

/// `n` shards named `shard-<seed>-<i>`, weight 1.
pub fn shards(seed: u64, n: usize) -> Vec<ShardSpec> {
    (0..n)
        .map(|i| ShardSpec::new(format!("shard-{seed:x}-{i}")))
        .collect()
}

/// `count` distinct keys of about 20 bytes derived from `seed`.
pub fn keys(seed: u64, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("key:{seed:08x}:{i:010}").into_bytes())
        .collect()
}

/// The owner id of every key.
pub fn owners<'a>(table: &'a PlacementTable, hashes: &[u64]) -> Vec<&'a str> {
    hashes
        .iter()
        .map(|&h| table.shards()[table.route_hash(h)].id.as_str())
        .collect()
}

pub fn hashes(keys: &[Vec<u8>]) -> Vec<u64> {
    let h = KeyHasher::default();
    keys.iter().map(|k| h.hash(k)).collect()
}

pub fn build(config: &PlacementConfig, shards: &[ShardSpec]) -> PlacementTable {
    config
        .build(KeyHasher::default(), shards)
        .expect("valid membership")
}

/// The smallest prime at or above `n`.
pub fn next_prime(n: u32) -> u32 {
    let is_prime = |p: u32| p >= 2 && (2..).take_while(|d: &u32| d * d <= p).all(|d| p % d != 0);
    (n..).find(|&p| is_prime(p)).expect("a prime exists")
}

/// Peak-to-mean load of `hashes` over the shards of `table`, weighted by each
/// shard's weight.
pub fn peak_to_mean(table: &PlacementTable, hashes: &[u64]) -> f64 {
    let mut counts = vec![0u64; table.shards().len()];
    for &h in hashes {
        counts[table.route_hash(h)] += 1;
    }
    let total_weight: u64 = table.shards().iter().map(|s| u64::from(s.weight)).sum();
    let mut worst = 0.0f64;
    for (c, s) in counts.iter().zip(table.shards()) {
        let fair = hashes.len() as f64 * f64::from(s.weight) / total_weight as f64;
        worst = worst.max(*c as f64 / fair);
    }
    worst
}

/// The owner id of every key, owned (for tables that are temporaries).
pub fn owner_ids(table: &PlacementTable, hashes: &[u64]) -> Vec<tower_fleet::shard::ShardId> {
    hashes
        .iter()
        .map(|&h| table.shards()[table.route_hash(h)].id.clone())
        .collect()
}

/// Polls `cond` every 5ms (tokio time: paused tests advance it) until it
/// holds, failing after 30s of real time so a hang cannot stall the run.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
