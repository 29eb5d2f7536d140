//! Rendezvous, jump and Memento on random memberships of 2..=500 shards: the
//! properties the placement table of the `shard` module docs promises for
//! each. Tolerances as in `shard_placement.rs`: a newcomer owns within
//! [0.7, 1.4] of 1/(N+1) of the keys; a weight-2 shard owns 1.6x to 2.5x the
//! keys of a weight-1 shard.

mod common;

use common::{build, hashes, keys, owner_ids, owners, shards};
use proptest::prelude::*;
use tower_fleet::key::KeyHasher;
use tower_fleet::shard::{
    LogEntry, Memento, Placement, PlacementConfig, PlacementError, PlacementTable, ShardId,
    ShardSpec,
};

const KEYS: usize = 50_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Checks that going from `before` to `after` moved only the keys owned by
/// `gone` (a removal) or only keys to `came` (an addition), and returns the
/// newcomer's share of keys times (N+1) for additions.
fn check_exact(
    before: &PlacementTable,
    after: &PlacementTable,
    gone: Option<&str>,
    came: Option<&str>,
    hs: &[u64],
) -> f64 {
    let (b, a) = (owners(before, hs), owners(after, hs));
    let mut gained = 0usize;
    for (x, y) in b.iter().zip(&a) {
        if Some(*y) == came {
            gained += 1;
        }
        if x != y {
            assert!(
                Some(*x) == gone || Some(*y) == came,
                "a key moved from {x} to {y}"
            );
        }
        if Some(*x) == gone {
            assert_ne!(x, y, "a key of the removed shard stayed on it");
        }
    }
    gained as f64 / hs.len() as f64 * after.shards().len() as f64
}

fn memento(log: &[LogEntry]) -> PlacementTable {
    PlacementTable::Memento(Memento::from_log(KeyHasher::default(), log).expect("valid log"))
}

fn add(id: &ShardId) -> LogEntry {
    LogEntry::Add(id.clone())
}

/// A log that adds `n` shards and then removes some of them (up to a third,
/// chosen by `seed`), and the ids still live after it.
fn churned_log(seed: u64, n: usize) -> (Vec<LogEntry>, Vec<ShardId>) {
    let ids: Vec<ShardId> = shards(seed, n).into_iter().map(|s| s.id).collect();
    let mut log: Vec<LogEntry> = ids.iter().map(add).collect();
    let mut live = ids.clone();
    let mut x = seed | 1;
    for _ in 0..(n / 3) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.len() <= 2 || x % 2 == 0 {
            continue;
        }
        let victim = live.remove((x % live.len() as u64) as usize);
        log.push(LogEntry::Remove(victim));
    }
    (log, live)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rendezvous_moves_exactly_the_keys_it_must(n in 2usize..=500, seed: u64, victim: prop::sample::Index) {
        let members = shards(seed, n);
        let hs = hashes(&keys(seed, KEYS));
        let table = build(&PlacementConfig::Rendezvous {}, &members);
        let mut rest = members.clone();
        let gone = rest.remove(victim.index(n));
        check_exact(&table, &build(&PlacementConfig::Rendezvous {}, &rest), Some(gone.id.as_str()), None, &hs);
        let mut more = members.clone();
        more.push(ShardSpec::new("newcomer"));
        let share = check_exact(&table, &build(&PlacementConfig::Rendezvous {}, &more), None, Some("newcomer"), &hs);
        prop_assert!((0.7..=1.4).contains(&share), "the newcomer owns {share} x 1/(N+1)");
    }

    #[test]
    fn jump_grows_and_shrinks_at_the_end_exactly(n in 2usize..=500, seed: u64) {
        let members = shards(seed, n); // ids end in 0..n
        let hs = hashes(&keys(seed, KEYS));
        let table = build(&PlacementConfig::Jump {}, &members);
        let last = members[n - 1].id.to_string();
        check_exact(&table, &build(&PlacementConfig::Jump {}, &members[..n - 1]), Some(&last), None, &hs);
        let mut more = members.clone();
        let newcomer = format!("shard-{seed:x}-{n}");
        more.push(ShardSpec::new(newcomer.as_str()));
        let share = check_exact(&table, &build(&PlacementConfig::Jump {}, &more), None, Some(&newcomer), &hs);
        prop_assert!((0.7..=1.4).contains(&share), "the newcomer owns {share} x 1/(N+1)");
    }

    #[test]
    fn jump_refuses_an_arbitrary_removal(n in 3usize..=500, seed: u64, victim: prop::sample::Index) {
        let mut members = shards(seed, n);
        let i = victim.index(n - 1); // any but the last
        members.remove(i);
        let err = PlacementConfig::Jump {}.build(KeyHasher::default(), &members).unwrap_err();
        prop_assert!(matches!(err, PlacementError::JumpNotContiguous { .. }), "{err}");
    }

    #[test]
    fn memento_removal_of_any_shard_moves_exactly_its_keys(n in 2usize..=500, seed: u64, victim: prop::sample::Index) {
        let (log, live) = churned_log(seed, n);
        let hs = hashes(&keys(seed, KEYS));
        let table = memento(&log);
        prop_assert_eq!(table.shards().len(), live.len());
        if live.len() < 2 {
            return Ok(());
        }
        let gone = live[victim.index(live.len())].clone();
        let mut after = log.clone();
        after.push(LogEntry::Remove(gone.clone()));
        check_exact(&table, &memento(&after), Some(gone.as_str()), None, &hs);
    }

    #[test]
    fn memento_addition_moves_keys_only_to_the_newcomer(n in 2usize..=500, seed: u64) {
        let (log, _) = churned_log(seed, n);
        let hs = hashes(&keys(seed, KEYS));
        let table = memento(&log);
        let mut after = log.clone();
        after.push(LogEntry::Add(ShardId::new("newcomer")));
        let share = check_exact(&table, &memento(&after), None, Some("newcomer"), &hs);
        prop_assert!((0.6..=1.5).contains(&share), "the newcomer owns {share} x 1/(N+1)");
    }

    #[test]
    fn memento_re_adding_the_last_removed_shard_restores_the_mapping(n in 2usize..=300, seed: u64, victim: prop::sample::Index) {
        let (log, live) = churned_log(seed, n);
        if live.len() < 2 {
            return Ok(());
        }
        let hs = hashes(&keys(seed, 20_000));
        let gone = live[victim.index(live.len())].clone();
        let mut after = log.clone();
        after.push(LogEntry::Remove(gone.clone()));
        after.push(LogEntry::Add(gone));
        prop_assert_eq!(owner_ids(&memento(&log), &hs), owner_ids(&memento(&after), &hs));
    }

    #[test]
    fn memento_newcomer_after_a_removal_inherits_exactly_the_removed_keys(n in 2usize..=300, seed: u64, victim: prop::sample::Index) {
        let (log, live) = churned_log(seed, n);
        if live.len() < 2 {
            return Ok(());
        }
        let hs = hashes(&keys(seed, 20_000));
        let gone = live[victim.index(live.len())].clone();
        let mut after = log.clone();
        after.push(LogEntry::Remove(gone.clone()));
        after.push(LogEntry::Add(ShardId::new("successor")));
        let before = owner_ids(&memento(&log), &hs);
        let now = owner_ids(&memento(&after), &hs);
        for (b, a) in before.iter().zip(&now) {
            let expect = if *b == gone { "successor" } else { b.as_str() };
            prop_assert_eq!(a.as_str(), expect);
        }
    }

    #[test]
    fn preference_lists_are_distinct_and_start_with_the_owner(n in 2usize..=300, seed: u64, want in 1usize..12) {
        let members = shards(seed, n);
        let (log, _) = churned_log(seed, n);
        let tables = [build(&PlacementConfig::Rendezvous {}, &members), build(&PlacementConfig::Jump {}, &members), memento(&log)];
        for table in &tables {
            for key in keys(seed, 100) {
                let list = table.preference_list(&key, want);
                prop_assert_eq!(list.len(), want.min(table.shards().len()));
                prop_assert_eq!(list[0], table.route(&key));
                let mut sorted = list.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), list.len(), "repeated shard in {:?}", list);
            }
        }
    }

    #[test]
    fn second_choice_is_where_a_key_goes_when_its_owner_leaves(n in 2usize..=200, seed: u64) {
        let members = shards(seed, n);
        let rendezvous = build(&PlacementConfig::Rendezvous {}, &members);
        let (log, _) = churned_log(seed, n);
        let memento_table = memento(&log);
        for key in keys(seed, 50) {
            let list = rendezvous.preference_list(&key, 2);
            let without: Vec<ShardSpec> = members.iter().filter(|s| &s.id != list[0]).cloned().collect();
            prop_assert_eq!(build(&PlacementConfig::Rendezvous {}, &without).route(&key).clone(), list[1].clone());
            if memento_table.shards().len() >= 2 {
                let list = memento_table.preference_list(&key, 2);
                let mut after = log.clone();
                after.push(LogEntry::Remove(list[0].clone()));
                prop_assert_eq!(memento(&after).route(&key).clone(), list[1].clone());
            }
        }
    }

    #[test]
    fn rendezvous_respects_weights_and_ignores_insertion_order(n in 4usize..=200, seed: u64) {
        let members: Vec<ShardSpec> = shards(seed, n)
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.weight(if i % 2 == 0 { 2 } else { 1 }))
            .collect();
        let hs = hashes(&keys(seed, KEYS));
        let table = build(&PlacementConfig::Rendezvous {}, &members);
        let (mut heavy, mut light) = (0usize, 0usize);
        for &h in &hs {
            if table.shards()[table.route_hash(h)].weight == 2 { heavy += 1 } else { light += 1 }
        }
        let ratio = (heavy as f64 / n.div_ceil(2) as f64) / (light as f64 / (n / 2) as f64);
        prop_assert!((1.6..=2.5).contains(&ratio), "weight-2 shards own {ratio}x");
        let mut reversed = members.clone();
        reversed.reverse();
        prop_assert_eq!(owner_ids(&table, &hs[..5_000]), owner_ids(&build(&PlacementConfig::Rendezvous {}, &reversed), &hs[..5_000]));
    }

    #[test]
    fn rendezvous_reweighting_moves_keys_only_to_or_from_that_shard(n in 3usize..=200, seed: u64, who: prop::sample::Index) {
        let members = shards(seed, n);
        let hs = hashes(&keys(seed, 50_000));
        let i = who.index(n);
        let mut heavier = members.clone();
        heavier[i].weight = 3;
        let id = members[i].id.to_string();
        let before = owner_ids(&build(&PlacementConfig::Rendezvous {}, &members), &hs);
        let after = owner_ids(&build(&PlacementConfig::Rendezvous {}, &heavier), &hs);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                prop_assert_eq!(a.as_str(), id.as_str(), "a key moved between two other shards");
            }
        }
    }
}

#[test]
fn unweighted_algorithms_refuse_weights() {
    let members = vec![ShardSpec::new("kv-0"), ShardSpec::new("kv-1").weight(2)];
    for config in [
        PlacementConfig::Jump {},
        PlacementConfig::Memento { log: Vec::new() },
    ] {
        let err = config.build(KeyHasher::default(), &members).unwrap_err();
        assert!(matches!(err, PlacementError::Unweighted { .. }), "{err}");
    }
}

#[test]
fn jump_needs_numbered_ids() {
    for ids in [
        vec!["kv-0", "other-0"],
        vec!["kv-0", "kv-x"],
        vec!["kv-1", "kv-2"],
    ] {
        let members: Vec<ShardSpec> = ids.into_iter().map(ShardSpec::new).collect();
        let err = PlacementConfig::Jump {}
            .build(KeyHasher::default(), &members)
            .unwrap_err();
        assert!(
            matches!(err, PlacementError::JumpNotContiguous { .. }),
            "{err}"
        );
    }
    let mixed = ["a-0", "b-1", "c-2"].map(ShardSpec::new);
    assert_eq!(
        PlacementConfig::Jump {}
            .build(KeyHasher::default(), &mixed)
            .unwrap()
            .shards()
            .len(),
        3
    );
}

#[test]
fn a_memento_log_must_end_with_the_given_shards() {
    let log = vec![add(&ShardId::new("a")), add(&ShardId::new("b"))];
    let config = PlacementConfig::Memento { log };
    let ok = [ShardSpec::new("a"), ShardSpec::new("b")];
    assert_eq!(
        config
            .build(KeyHasher::default(), &ok)
            .unwrap()
            .shards()
            .len(),
        2
    );
    for bad in [&["a"][..], &["a", "b", "c"][..], &["a", "c"][..]] {
        let members: Vec<ShardSpec> = bad.iter().map(|id| ShardSpec::new(*id)).collect();
        let err = config.build(KeyHasher::default(), &members).unwrap_err();
        assert!(matches!(err, PlacementError::LogMismatch { .. }), "{err}");
    }
}
