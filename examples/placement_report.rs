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
//! shards are named `shard-<i>` with weight 1. Jump loses and gains shards
//! only at the end; Memento's changes are appended to its ordered log.

use rand::{Rng, SeedableRng};
use tower_fleet::key::KeyHasher;
use tower_fleet::shard::{
    LogEntry, Memento, Placement, PlacementConfig, PlacementTable, ShardId, ShardSpec,
};

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

fn next_prime(n: u32) -> u32 {
    let is_prime = |p: u32| p >= 2 && (2..).take_while(|d: &u32| d * d <= p).all(|d| p % d != 0);
    (n..).find(|&p| is_prime(p)).unwrap_or(n)
}

/// One placement to report on, and how it changes membership.
enum Algo {
    /// A set-based placement: any shard may leave.
    Set(&'static str, PlacementConfig),
    /// Jump: shards leave and join only at the end.
    Jump,
    /// Memento, with a share (in percent) of its shards removed before measuring.
    Memento(usize),
}

impl Algo {
    fn all(n: usize) -> Vec<Algo> {
        vec![
            Algo::Set("maglev M=65537", PlacementConfig::maglev(65_537)),
            Algo::Set(
                "maglev M>=100N",
                PlacementConfig::maglev(next_prime(100 * n as u32 + 1)),
            ),
            Algo::Set("ring 40 points", PlacementConfig::ring(40)),
            Algo::Set("ring 160 points", PlacementConfig::ring(160)),
            Algo::Set("ring 1000 points", PlacementConfig::ring(1000)),
            Algo::Set("rendezvous", PlacementConfig::rendezvous()),
            Algo::Jump,
            Algo::Memento(0),
            Algo::Memento(10),
        ]
    }

    fn name(&self) -> String {
        match self {
            Algo::Set(name, _) => name.to_string(),
            Algo::Jump => "jump".into(),
            Algo::Memento(0) => "memento".into(),
            Algo::Memento(p) => format!("memento, {p}% removed"),
        }
    }

    /// The log that builds this placement over `n` live shards: for Memento
    /// with removals, `n / (1 - p)` shards joined and the excess left.
    fn log(&self, n: usize) -> Vec<LogEntry> {
        let p = match self {
            Algo::Memento(p) => *p,
            _ => 0,
        };
        let total = n * 100 / (100 - p);
        let mut log: Vec<LogEntry> = (0..total)
            .map(|i| LogEntry::Add(ShardId::new(format!("shard-{i}"))))
            .collect();
        let mut removed = 0;
        let mut i = 1;
        while removed < total - n {
            log.push(LogEntry::Remove(ShardId::new(format!(
                "shard-{}",
                (i * 7919) % total
            ))));
            removed += 1;
            i += 1;
        }
        // Drop repeated removals (7919 is prime, so for these sizes there are none).
        log
    }

    fn table(&self, n: usize) -> PlacementTable {
        match self {
            Algo::Set(_, c) => build(c, &members(n)),
            Algo::Jump => build(&PlacementConfig::jump(), &members(n)),
            Algo::Memento(_) => memento(&self.log(n)),
        }
    }

    /// The placement after `victim` (an index into the table's shards) left;
    /// Jump can only lose its last shard.
    fn without(
        &self,
        n: usize,
        table: &PlacementTable,
        victim: usize,
    ) -> (PlacementTable, ShardId) {
        match self {
            Algo::Set(_, c) => {
                let mut rest = members(n);
                let gone = rest.remove(victim);
                (build(c, &rest), gone.id)
            }
            Algo::Jump => (
                build(&PlacementConfig::jump(), &members(n - 1)),
                ShardId::new(format!("shard-{}", n - 1)),
            ),
            Algo::Memento(_) => {
                let gone = table.shards()[victim].id.clone();
                let mut log = self.log(n);
                log.push(LogEntry::Remove(gone.clone()));
                (memento(&log), gone)
            }
        }
    }

    /// The placement after a shard joined, and its id.
    fn with_newcomer(&self, n: usize) -> (PlacementTable, String) {
        match self {
            Algo::Set(_, c) => {
                let mut more = members(n);
                more.push(ShardSpec::new("newcomer"));
                (build(c, &more), "newcomer".into())
            }
            Algo::Jump => (
                build(&PlacementConfig::jump(), &members(n + 1)),
                format!("shard-{n}"),
            ),
            Algo::Memento(_) => {
                let mut log = self.log(n);
                log.push(LogEntry::Add(ShardId::new("newcomer")));
                (memento(&log), "newcomer".into())
            }
        }
    }
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

fn memento(log: &[LogEntry]) -> PlacementTable {
    match Memento::from_log(KeyHasher::default(), log) {
        Ok(t) => PlacementTable::Memento(t),
        Err(e) => {
            eprintln!("cannot build Memento: {e}");
            std::process::exit(1);
        }
    }
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
    for row in 0..Algo::all(10).len() {
        let mut cells = Vec::new();
        for &n in &sizes {
            let algo = Algo::all(n).swap_remove(row);
            cells.push(format!("{:.3}", peak_to_mean(&algo.table(n), hashes)));
        }
        println!(
            "| {} | {} |",
            Algo::all(10).swap_remove(row).name(),
            cells.join(" | ")
        );
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
    println!("## Disruption: keys moved as a multiple of the optimum (1,000,000 keys; worst of 5 victims; jump: the last shard)\n");
    println!("| algorithm | shards | one removal | one addition |");
    println!("|---|---|---|---|");
    for n in [10usize, 100, 500, 1000] {
        for algo in Algo::all(n) {
            let name = algo.name();
            if name.starts_with("ring 40")
                || name.starts_with("ring 1000")
                || (n == 1000 && name.starts_with("rendezvous"))
            {
                continue;
            }
            let before = algo.table(n);
            let owners_before: Vec<usize> = hashes.iter().map(|&h| before.route_hash(h)).collect();
            let live = before.shards().len();
            let mut worst_removal = 0.0f64;
            for victim in [0, live / 5, live / 2, (3 * live) / 4, live - 1] {
                let (after, gone) = algo.without(n, &before, victim);
                let mut moved = 0usize;
                let mut optimal = 0usize;
                for (&h, &b) in hashes.iter().zip(&owners_before) {
                    let was = &before.shards()[b].id;
                    let now = &after.shards()[after.route_hash(h)].id;
                    optimal += usize::from(*was == gone);
                    moved += usize::from(was != now);
                }
                worst_removal = worst_removal.max(moved as f64 / optimal.max(1) as f64);
            }
            let (after, newcomer) = algo.with_newcomer(n);
            let (mut moved, mut gained) = (0usize, 0usize);
            for (&h, &b) in hashes.iter().zip(&owners_before) {
                let was = &before.shards()[b].id;
                let now = &after.shards()[after.route_hash(h)].id;
                gained += usize::from(now.as_str() == newcomer);
                moved += usize::from(was != now);
            }
            let addition = moved as f64 / gained.max(1) as f64;
            println!("| {name} | {n} | {worst_removal:.3} | {addition:.3} |");
        }
    }
    println!();
}
