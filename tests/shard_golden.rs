//! Golden vectors: which shard each of 10,000 fixed keys maps to, under each
//! algorithm, pinned as a digest of the assignment. The key-to-shard mapping is
//! part of the crate's compatibility promise: if one of these changes, routing
//! changed for every user, and that is a breaking change.

use tower_fleet::key::{HashSecret, KeyHasher};
use tower_fleet::shard::{Placement, PlacementConfig, ShardSpec};

fn membership() -> Vec<ShardSpec> {
    (0..12)
        .map(|i| ShardSpec::new(format!("node-{i:02}")).weight(if i % 4 == 0 { 2 } else { 1 }))
        .collect()
}

/// xxh3 of every key's owner id, in key order, one line each.
fn digest(config: &PlacementConfig, hasher: KeyHasher) -> (u64, Vec<String>) {
    let table = config
        .build(hasher, &membership())
        .expect("valid membership");
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
