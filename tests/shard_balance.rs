//! Balance: peak-to-mean load of 1,000,000 random keys on 10, 100 and 1,000
//! shards, locked in as upper bounds just above the figures measured by
//! `cargo run --release --example placement_report -- balance` (the same keys:
//! 20 random lowercase letters from a fixed seed). BENCHMARKS.md has the table.
//! For reference, the same keys in perfect equal bins give 1.006, 1.021 and 1.091.

mod common;

use common::peak_to_mean;
use rand::{Rng, SeedableRng};
use tower_fleet::key::KeyHasher;
use tower_fleet::shard::{PlacementConfig, ShardSpec};

fn key_hashes() -> Vec<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let hasher = KeyHasher::default();
    (0..1_000_000)
        .map(|_| {
            let key: [u8; 20] = std::array::from_fn(|_| rng.random_range(b'a'..=b'z'));
            hasher.hash(&key)
        })
        .collect()
}

fn check(config: PlacementConfig, bounds: [f64; 3]) {
    let hashes = key_hashes();
    for (n, bound) in [10usize, 100, 1000].into_iter().zip(bounds) {
        let shards: Vec<ShardSpec> = (0..n)
            .map(|i| ShardSpec::new(format!("shard-{i}")))
            .collect();
        let table = config
            .build(KeyHasher::default(), &shards)
            .expect("valid membership");
        let ptm = peak_to_mean(&table, &hashes);
        assert!(
            ptm <= bound,
            "{config:?} at {n} shards: peak-to-mean {ptm:.4} > {bound}"
        );
    }
}

#[test]
fn maglev_stays_within_a_few_percent_of_perfect_bins() {
    // The goal at 100 shards is 1.035.
    check(PlacementConfig::maglev(65_537), [1.015, 1.035, 1.12]);
}

#[test]
fn ring_with_40_points_per_shard() {
    check(PlacementConfig::ring(40), [1.23, 1.52, 1.67]);
}

#[test]
fn ring_with_160_points_per_shard() {
    check(PlacementConfig::ring(160), [1.14, 1.24, 1.37]);
}

#[test]
fn ring_with_1000_points_per_shard() {
    check(PlacementConfig::ring(1000), [1.05, 1.075, 1.165]);
}

#[test]
fn rendezvous_jump_and_memento_stay_near_perfect_bins() {
    // The goal at 100 shards is 1.035 for each.
    check(PlacementConfig::rendezvous(), [1.015, 1.035, 1.11]);
    check(PlacementConfig::jump(), [1.015, 1.035, 1.11]);
    check(PlacementConfig::memento(Vec::new()), [1.015, 1.035, 1.11]);
}
