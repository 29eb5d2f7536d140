//! Golden vectors: which shard each of 10,000 fixed keys maps to, under each
//! algorithm, pinned as a digest of the assignment. The key-to-shard mapping is
//! part of the crate's compatibility promise: if one of these changes, routing
//! changed for every user, and that is a breaking change.

use tower_fleet::key::{HashSecret, KeyHasher};
use tower_fleet::shard::{LogEntry, Placement, PlacementConfig, ShardId, ShardSpec};

fn membership() -> Vec<ShardSpec> {
    (0..12)
        .map(|i| ShardSpec::new(format!("node-{i:02}")).weight(if i % 4 == 0 { 2 } else { 1 }))
        .collect()
}

/// xxh3 of every key's owner id, in key order, one line each.
/// The same twelve shards, all of weight 1 (for the unweighted algorithms).
fn unweighted() -> Vec<ShardSpec> {
    membership().into_iter().map(|s| s.weight(1)).collect()
}

/// The shards a configuration places: the weighted membership, the
/// unweighted one for the unweighted algorithms, or what a log leaves.
fn members_for(config: &PlacementConfig) -> Vec<ShardSpec> {
    match config {
        PlacementConfig::Memento { log } if !log.is_empty() => {
            let mut live: Vec<ShardSpec> = Vec::new();
            for e in log {
                match e {
                    LogEntry::Add(id) => live.push(ShardSpec::new(id.clone())),
                    LogEntry::Remove(id) => live.retain(|s| &s.id != id),
                }
            }
            live
        }
        PlacementConfig::Jump {} | PlacementConfig::Memento { .. } => unweighted(),
        _ => membership(),
    }
}

fn digest(config: &PlacementConfig, hasher: KeyHasher) -> (u64, Vec<String>) {
    digest_of(config, hasher, &members_for(config))
}

/// xxh3 of every key's owner id, in key order, one line each.
fn digest_of(
    config: &PlacementConfig,
    hasher: KeyHasher,
    members: &[ShardSpec],
) -> (u64, Vec<String>) {
    let table = config.build(hasher, members).expect("valid membership");
    let mut text = String::new();
    let mut first = Vec::new();
    for i in 0..10_000 {
        let key = format!("golden:{i}");
        let owner = table.route(key.as_bytes());
        text.push_str(owner.as_str());
        text.push('\n');
        if i < 4 {
            first.push(owner.to_string());
        }
    }
    (xxhash_rust::xxh3::xxh3_64(text.as_bytes()), first)
}

fn check(config: PlacementConfig, hasher: KeyHasher, want_digest: u64, want_first: [&str; 4]) {
    let (got, first) = digest(&config, hasher);
    assert_eq!(
        first, want_first,
        "{config:?}: the first keys' owners changed"
    );
    assert_eq!(
        got, want_digest,
        "{config:?}: the assignment of 10,000 keys changed (digest {got:#018x})"
    );
}

#[test]
fn maglev_default_table_is_pinned() {
    check(
        PlacementConfig::maglev(65_537),
        KeyHasher::default(),
        0xb741_3f13_7fbe_2ea1,
        ["node-08", "node-02", "node-04", "node-08"],
    );
}

#[test]
fn maglev_small_table_is_pinned() {
    check(
        PlacementConfig::maglev(1_009),
        KeyHasher::default(),
        0xed4c_4a26_9a96_ed91,
        ["node-03", "node-00", "node-07", "node-04"],
    );
}

#[test]
fn ring_is_pinned() {
    check(
        PlacementConfig::ring(160),
        KeyHasher::default(),
        0x9976_b422_5f88_2efa,
        ["node-06", "node-00", "node-09", "node-03"],
    );
}

#[test]
fn keyed_hasher_mapping_is_pinned() {
    let secret: HashSecret = "000102030405060708090a0b0c0d0e0f"
        .parse()
        .expect("valid secret");
    check(
        PlacementConfig::maglev(65_537),
        KeyHasher::siphash13(secret),
        0xa9de_f91a_c16f_54e9,
        ["node-03", "node-01", "node-08", "node-08"],
    );
}

#[test]
fn rendezvous_weighted_is_pinned() {
    // Weights 2 and 1: the fixed-point logarithm is in the path.
    check(
        PlacementConfig::Rendezvous {},
        KeyHasher::default(),
        0x9a30_1f13_2ddd_b396,
        ["node-04", "node-04", "node-03", "node-04"],
    );
}

#[test]
fn rendezvous_unweighted_is_pinned() {
    let (got, first) = digest_of(
        &PlacementConfig::Rendezvous {},
        KeyHasher::default(),
        &unweighted(),
    );
    assert_eq!(first, ["node-04", "node-04", "node-03", "node-11"]);
    assert_eq!(got, 0xcad8_8d7e_e1ed_c599, "digest {got:#018x}");
}

#[test]
fn jump_is_pinned() {
    check(
        PlacementConfig::Jump {},
        KeyHasher::default(),
        0x8908_59f1_e6ef_6693,
        ["node-05", "node-08", "node-03", "node-06"],
    );
}

#[test]
fn memento_with_removals_is_pinned() {
    let id = |i: usize| ShardId::new(format!("node-{i:02}"));
    let mut log: Vec<LogEntry> = (0..12).map(|i| LogEntry::Add(id(i))).collect();
    log.extend([
        LogEntry::Remove(id(3)),
        LogEntry::Remove(id(7)),
        LogEntry::Remove(id(0)),
    ]);
    log.push(LogEntry::Add(ShardId::new("node-12")));
    check(
        PlacementConfig::Memento { log },
        KeyHasher::default(),
        0xcf17_9ff0_970a_9b22,
        ["node-05", "node-08", "node-11", "node-06"],
    );
}
