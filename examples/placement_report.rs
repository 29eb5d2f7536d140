//! Measures what the placement algorithms promise: how evenly they spread keys
//! (peak-to-mean load) and how many keys move when one shard leaves or joins
//! (as a multiple of the optimum), and prints Markdown tables for BENCHMARKS.md.
//!
//! ```text
//! cargo run --release --example placement_report            # everything (a minute or two)
//! cargo run --release --example placement_report -- balance # just the balance table
//! cargo run --release --example placement_report -- moves   # just the disruption table
//! ```
//!
//! Keys are 1,000,000 random 20-byte strings (a fixed seed, so runs agree);
//! shards are named `shard-<i>` with weight 1.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use tower_fleet::key::KeyHasher;
use tower_fleet::shard::{Placement, PlacementConfig, PlacementTable, ShardSpec};

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let hashes = random_key_hashes(1_000_000, 7);
    if what == "all" || what == "balance" {
        balance(&hashes);
    }
    if what == "all" || what == "moves" {
        moves(&hashes);
    }
}

fn random_key_hashes(count: usize, seed: u64) -> Vec<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hasher = KeyHasher::default();
    (0..count)
        .map(|_| {
            let key: [u8; 20] = std::array::from_fn(|_| rng.random_range(b'a'..=b'z'));
            hasher.hash(&key)
        })
        .collect()
}

fn members(n: usize) -> Vec<ShardSpec> {
    (0..n)
        .map(|i| ShardSpec::new(format!("shard-{i}")))
        .collect()
}

fn build(config: &PlacementConfig, shards: &[ShardSpec]) -> PlacementTable {
    match config.build(KeyHasher::default(), shards) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot build {config:?}: {e}");
            std::process::exit(1);
        }
    }
}

fn next_prime(n: u32) -> u32 {
    let is_prime = |p: u32| p >= 2 && (2..).take_while(|d: &u32| d * d <= p).all(|d| p % d != 0);
    (n..).find(|&p| is_prime(p)).unwrap_or(n)
}

fn configs(n: usize) -> Vec<(String, PlacementConfig)> {
    vec![
        ("maglev M=65537".into(), PlacementConfig::maglev(65_537)),
        (
            format!("maglev M>=100N ({})", next_prime(100 * n as u32 + 1)),
            PlacementConfig::maglev(next_prime(100 * n as u32 + 1)),
        ),
        ("ring 40 points".into(), PlacementConfig::ring(40)),
        ("ring 160 points".into(), PlacementConfig::ring(160)),
        ("ring 1000 points".into(), PlacementConfig::ring(1000)),
    ]
}

fn peak_to_mean(table: &PlacementTable, hashes: &[u64]) -> f64 {
    let mut counts = vec![0u64; table.shards().len()];
    for &h in hashes {
        counts[table.route_hash(h)] += 1;
    }
    let mean = hashes.len() as f64 / counts.len() as f64;
    counts.iter().copied().max().unwrap_or(0) as f64 / mean
}

fn balance(hashes: &[u64]) {
    println!("## Balance: peak-to-mean load, 1,000,000 random keys\n");
    println!("| algorithm | 10 shards | 100 shards | 1,000 shards |");
    println!("|---|---|---|---|");
    let sizes = [10usize, 100, 1000];
    for row in 0..configs(10).len() {
        let mut cells = Vec::new();
        let mut name = String::new();
        for &n in &sizes {
            let (label, config) = configs(n).swap_remove(row);
            name = label.split(" (").next().unwrap_or(&label).to_string();
            let table = build(&config, &members(n));
            cells.push(format!("{:.3}", peak_to_mean(&table, hashes)));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
    // The floor: the same keys thrown into perfect equal bins.
    let mut cells = Vec::new();
    for &n in &sizes {
        let mut counts = vec![0u64; n];
        for &h in hashes {
            counts[((u128::from(h) * n as u128) >> 64) as usize] += 1;
        }
        let mean = hashes.len() as f64 / n as f64;
        cells.push(format!(
            "{:.3}",
            counts.iter().copied().max().unwrap_or(0) as f64 / mean
        ));
    }
    println!("| perfect bins (the floor) | {} |", cells.join(" | "));
    println!();
}

fn moves(hashes: &[u64]) {
    println!("## Disruption: keys moved as a multiple of the optimum (1,000,000 keys; worst of 5 victims)\n");
    println!("| algorithm | shards | one removal | one addition |");
    println!("|---|---|---|---|");
    for n in [10usize, 100, 500, 1000] {
        for (label, config) in configs(n) {
            if label.starts_with("ring 40") || label.starts_with("ring 1000") {
                continue;
            }
            let started = Instant::now();
            let shards = members(n);
            let before = build(&config, &shards);
            let owners_before: Vec<usize> = hashes.iter().map(|&h| before.route_hash(h)).collect();
            let mut worst_removal = 0.0f64;
            for victim in [0, n / 5, n / 2, (3 * n) / 4, n - 1] {
                let mut rest = shards.clone();
                let gone = rest.remove(victim);
                let after = build(&config, &rest);
                let mut moved = 0usize;
                let mut optimal = 0usize;
                for (&h, &b) in hashes.iter().zip(&owners_before) {
                    let was = &before.shards()[b].id;
                    let now = &after.shards()[after.route_hash(h)].id;
                    if *was == gone.id {
                        optimal += 1;
                    }
                    if was != now {
                        moved += 1;
                    }
                }
                worst_removal = worst_removal.max(moved as f64 / optimal.max(1) as f64);
            }
            let mut more = shards.clone();
            more.push(ShardSpec::new("newcomer"));
            let after = build(&config, &more);
            let (mut moved, mut gained) = (0usize, 0usize);
            for (&h, &b) in hashes.iter().zip(&owners_before) {
                let was = &before.shards()[b].id;
                let now = &after.shards()[after.route_hash(h)].id;
                if now.as_str() == "newcomer" {
                    gained += 1;
                }
                if was != now {
                    moved += 1;
                }
            }
            let addition = moved as f64 / gained.max(1) as f64;
            println!(
                "| {label} | {n} | {worst_removal:.3} | {addition:.3} |{}",
                if started.elapsed().as_secs() > 30 {
                    " (slow)"
                } else {
                    ""
                }
            );
        }
    }
    println!();
}
