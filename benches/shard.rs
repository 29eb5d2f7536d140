//! Shard benches: placement lookups (key hash included) for every algorithm,
//! against the key hash alone, the `hashring` and `rendezvous_hash` crates and
//! a plain jump function; Maglev's build time; and the `Shard` service's
//! per-call overhead over a bare ready service.
//!
//! ```text
//! cargo bench --bench shard
//! ../shared/tools/criterion-table --filter shard/lookup-hot --anchor xxh3
//! ../shared/tools/criterion-table --filter shard/lookup-pool --anchor hashring
//! ../shared/tools/criterion-table --filter shard/service --anchor bare
//! ```

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures::FutureExt;
use rand::{Rng, SeedableRng};
use tower::Service;
use tower_fleet::key::{Key, KeyHasher};
use tower_fleet::shard::{
    LogEntry, Maglev, Member, Memento, Placement, PlacementConfig, PlacementTable, Shard, ShardId,
    ShardSpec,
};

const SIZES: [usize; 3] = [10, 100, 1000];
const POOL: usize = 1_000_000;

fn shards(n: usize) -> Vec<ShardSpec> {
    (0..n)
        .map(|i| ShardSpec::new(format!("shard-{i}")))
        .collect()
}

fn pool() -> Vec<[u8; 20]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    (0..POOL)
        .map(|_| std::array::from_fn(|_| rng.random_range(b'a'..=b'z')))
        .collect()
}

/// One node of the `hashring` crate's ring: 160 of these per shard.
#[derive(Clone, PartialEq, Eq)]
struct VNode {
    shard: u32,
    replica: u32,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.shard.hash(h);
        self.replica.hash(h);
    }
}

fn hashring_crate(n: usize) -> hashring::HashRing<VNode> {
    let mut ring = hashring::HashRing::new();
    for shard in 0..n as u32 {
        for replica in 0..160 {
            ring.add(VNode { shard, replica });
        }
    }
    ring
}

/// Every placement over `n` shards, by bench name.
fn tables(n: usize) -> Vec<(&'static str, PlacementTable)> {
    let members = shards(n);
    let weighted: Vec<ShardSpec> = members
        .iter()
        .enumerate()
        .map(|(i, s)| s.clone().weight(1 + (i % 2) as u32))
        .collect();
    let build = |c: PlacementConfig, m: &[ShardSpec]| {
        c.build(KeyHasher::default(), m).expect("valid membership")
    };
    // Memento with 10% of its shards removed: every tenth of n leaves.
    let ids: Vec<ShardId> = members.iter().map(|s| s.id.clone()).collect();
    let mut log: Vec<LogEntry> = ids.iter().cloned().map(LogEntry::Add).collect();
    log.extend(ids.iter().step_by(10).cloned().map(LogEntry::Remove));
    let memento = Memento::from_log(KeyHasher::default(), &log).expect("valid log");
    vec![
        ("maglev", build(PlacementConfig::maglev(65_537), &members)),
        ("ring", build(PlacementConfig::ring(160), &members)),
        ("rendezvous", build(PlacementConfig::rendezvous(), &members)),
        (
            "rendezvous-weighted",
            build(PlacementConfig::rendezvous(), &weighted),
        ),
        ("jump", build(PlacementConfig::jump(), &members)),
        (
            "memento",
            build(PlacementConfig::memento(Vec::new()), &members),
        ),
        ("memento-10pct-removed", PlacementTable::Memento(memento)),
    ]
}

/// The textbook jump consistent hash (Lamping and Veach), as the anchor.
fn plain_jump(mut key: u64, buckets: i64) -> i64 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b
}

type Node = rendezvous_hash::IdNode<String>;
type RendezvousCrate = rendezvous_hash::RendezvousNodes<Node, rendezvous_hash::DefaultNodeHasher>;
type RendezvousCrateWeighted = rendezvous_hash::RendezvousNodes<
    rendezvous_hash::WeightedNode<Node>,
    rendezvous_hash::DefaultNodeHasher,
>;

fn rendezvous_crate(n: usize) -> (RendezvousCrate, RendezvousCrateWeighted) {
    let mut plain = RendezvousCrate::default();
    let mut weighted = RendezvousCrateWeighted::default();
    for i in 0..n {
        plain.insert(Node::new(format!("shard-{i}")));
        let capacity =
            rendezvous_hash::Capacity::new(1.0 + (i % 2) as f64).expect("positive capacity");
        weighted.insert(rendezvous_hash::WeightedNode::new(
            Node::new(format!("shard-{i}")),
            capacity,
        ));
    }
    (plain, weighted)
}

/// Benches every lookup of a group, drawing keys from `next`.
fn lookups<'k>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    n: usize,
    mut next: impl FnMut() -> &'k [u8],
) {
    let hasher = KeyHasher::default();
    g.bench_function("xxh3", |b| b.iter(|| hasher.hash(black_box(next()))));
    // `n` goes through black_box so the compiler cannot specialise the plain
    // function for a constant bucket count (the tables read it from memory).
    g.bench_function("plain-jump", |b| {
        b.iter(|| plain_jump(hasher.hash(black_box(next())), black_box(n as i64)))
    });
    for (name, table) in tables(n) {
        g.bench_function(name, |b| {
            b.iter(|| table.route(black_box(next())).as_str().len())
        });
    }
    let ring = hashring_crate(n);
    g.bench_function("hashring", |b| {
        b.iter(|| ring.get(&black_box(next())).map(|v| v.shard))
    });
    let (plain, weighted) = rendezvous_crate(n);
    g.bench_function("rendezvous_hash", |b| {
        b.iter(|| {
            plain
                .calc_candidates(&black_box(next()))
                .next()
                .map(|s| s.len())
        })
    });
    g.bench_function("rendezvous_hash-weighted", |b| {
        b.iter(|| {
            weighted
                .calc_candidates(&black_box(next()))
                .next()
                .map(|s| s.node.len())
        })
    });
}

fn lookup_hot(c: &mut Criterion) {
    let key: &[u8] = b"user:1234567:profile"; // 20 bytes
    for n in SIZES {
        let mut g = c.benchmark_group(format!("shard/lookup-hot/{n}"));
        lookups(&mut g, n, || key);
        g.finish();
    }
}

fn lookup_pool(c: &mut Criterion) {
    let keys = pool();
    for n in SIZES {
        let mut g = c.benchmark_group(format!("shard/lookup-pool/{n}"));
        let mut i = 0usize;
        lookups(&mut g, n, || {
            i = if i + 1 == POOL { 0 } else { i + 1 };
            &keys[i][..]
        });
        g.finish();
    }
}

fn maglev_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("shard/maglev/build");
    g.sample_size(20);
    let members = shards(1000);
    g.bench_function(BenchmarkId::from_parameter(1000), |b| {
        b.iter(|| {
            Maglev::build(65_537, KeyHasher::default(), black_box(&members)).map(|t| t.table_size())
        })
    });
    g.finish();
}

type Echo = tower::util::ServiceFn<fn(&'static str) -> Ready<Result<&'static str, Infallible>>>;

fn echo() -> Echo {
    tower::service_fn(|r: &'static str| ready(Ok(r)))
}

fn service_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("shard/service/call");
    let keys: Vec<&'static str> = (0..1024)
        .map(|i| &*Box::leak(format!("user:{i:07}:profile").into_boxed_str()))
        .collect();
    let mut bare = echo();
    let mut i = 0usize;
    g.bench_function("bare", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let fut = bare.call(black_box(keys[i]));
            fut.now_or_never()
        })
    });
    let mut shard = Shard::builder()
        .key(|r: &&'static str| Some(Key::from(*r)))
        .members((0..100).map(|s| Member::new(format!("shard-{s}"), echo())))
        .build()
        .expect("valid membership");
    let mut i = 0usize;
    g.bench_function("shard-100", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let fut = shard.call(black_box(keys[i]));
            fut.now_or_never()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup_hot, lookup_pool, maglev_build, service_call
}
criterion_main!(benches);
