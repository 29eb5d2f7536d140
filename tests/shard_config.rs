//! Every placement is selectable from `ShardConfig` by name with its knobs;
//! bad values are refused by name; Memento carries its ordered log.

use std::convert::Infallible;

use tower::discover::Change;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::key::{Key, KeyHasher};
use tower_fleet::shard::{
    LogEntry, Member, Memento, Placement, PlacementConfig, PlacementError, Shard, ShardBuildError,
    ShardConfig, ShardId,
};
use tower_fleet::Validate;

type Echo = tower::util::BoxCloneSyncService<String, String, Infallible>;

fn echo(name: &str) -> Echo {
    let name = name.to_string();
    tower::util::BoxCloneSyncService::new(service_fn(move |_: String| {
        let name = name.clone();
        async move { Ok::<_, Infallible>(name) }
    }))
}

fn from_toml(text: &str) -> ShardConfig {
    let config: ShardConfig = toml::from_str(text).expect("parses");
    config.validate().expect("valid");
    config
}

fn build(config: ShardConfig, ids: &[&str]) -> Shard<Echo, fn(&String) -> Option<Key<'_>>> {
    Shard::builder()
        .config(config)
        .key_fn((|k: &String| Some(Key::from(k.as_str()))) as fn(&String) -> Option<Key<'_>>)
        .members(ids.iter().map(|id| Member::new(*id, echo(id))))
        .build()
        .expect("builds")
}

#[tokio::test]
async fn every_algorithm_is_selectable_by_name() {
    let cases = [
        (
            "[placement]\nalgorithm = \"maglev\"\ntable_size = 1009",
            "Maglev",
        ),
        (
            "[placement]\nalgorithm = \"ring\"\npoints_per_weight = 40",
            "Ring",
        ),
        ("[placement]\nalgorithm = \"rendezvous\"", "Rendezvous"),
        ("[placement]\nalgorithm = \"jump\"", "Jump"),
        ("[placement]\nalgorithm = \"memento\"", "Memento"),
    ];
    for (text, name) in cases {
        let config = from_toml(text);
        assert!(format!("{:?}", config.placement).starts_with(name));
        let mut shard = build(config.clone(), &["kv-0", "kv-1", "kv-2"]);
        for i in 0..50 {
            let key = format!("user:{i}");
            let answer = shard
                .ready()
                .await
                .unwrap()
                .call(key.clone())
                .await
                .unwrap();
            assert_eq!(
                answer,
                shard.handle().route(key.as_bytes()).unwrap().as_str(),
                "{name}"
            );
        }
        // Round trip through TOML keeps the choice and its knobs.
        let back: ShardConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
    }
}

#[test]
fn bad_knobs_are_refused_by_name() {
    let bad = |text: &str| {
        toml::from_str::<ShardConfig>(text)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    let e =
        bad("[placement]\nalgorithm = \"memento\"\nlog = [{ add = \"a\" }, { remove = \"b\" }]");
    assert_eq!((e.field(), e.value()), ("placement.log[1]", "b"));
    let e = bad("[bounded_loads]\nbalance_factor = 1.0");
    assert_eq!(e.field(), "bounded_loads.balance_factor");
    let e = bad("[bounded_loads]\nbalance_factor = 1000");
    assert_eq!(e.field(), "bounded_loads.balance_factor");
    let e = bad("hops = 1\n[bounded_loads]\nbalance_factor = 1.5");
    assert_eq!(e.field(), "hops");
    assert!(
        toml::from_str::<ShardConfig>("[placement]\nalgorithm = \"jump\"\ntable_size = 3").is_err()
    );
    assert!(toml::from_str::<ShardConfig>("[bounded_loads]\nfactor = 1.5").is_err());
}

#[test]
fn memento_refuses_set_based_discovery() {
    let (_tx, rx) = futures::channel::mpsc::unbounded::<Result<Change<String, Echo>, Infallible>>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let err = Shard::builder()
        .placement(PlacementConfig::Memento { log: Vec::new() })
        .discover(rx)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ShardBuildError::Placement(PlacementError::NeedsOrderedLog)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_memento_shard_logs_its_changes_and_routes_by_the_log() {
    let log: Vec<LogEntry> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| LogEntry::Add(ShardId::new(*id)))
        .collect();
    let config = ShardConfig {
        placement: PlacementConfig::Memento { log: log.clone() },
        ..ShardConfig::default()
    };
    let shard = build(config, &["a", "b", "c", "d"]);
    let handle = shard.handle();
    assert_eq!(
        handle.membership_log(),
        log,
        "members that match the log add nothing to it"
    );
    handle.remove("b").unwrap();
    handle.insert(Member::new("e", echo("e"))).unwrap();
    let logged = handle.membership_log();
    assert_eq!(
        &logged[4..],
        &[
            LogEntry::Remove(ShardId::new("b")),
            LogEntry::Add(ShardId::new("e"))
        ]
    );
    // Another router given the same log routes every key the same way.
    let replica = Memento::from_log(KeyHasher::default(), &logged).unwrap();
    for i in 0..500 {
        let key = format!("user:{i}");
        assert_eq!(
            handle.route(key.as_bytes()).unwrap(),
            *replica.route(key.as_bytes())
        );
    }
    // "e" took over exactly b's keys: everything else stayed where it was.
    let before = Memento::from_log(KeyHasher::default(), &log).unwrap();
    for i in 0..500 {
        let key = format!("user:{i}");
        let was = before.route(key.as_bytes()).as_str();
        let now = handle.route(key.as_bytes()).unwrap();
        assert_eq!(now.as_str(), if was == "b" { "e" } else { was });
    }
    let mut svc = shard.clone();
    let key = (0..500)
        .map(|i| format!("user:{i}"))
        .find(|k| handle.route(k.as_bytes()).unwrap().as_str() == "e")
        .unwrap();
    assert_eq!(svc.ready().await.unwrap().call(key).await.unwrap(), "e");
}

#[test]
fn jump_through_the_handle_grows_and_shrinks_only_at_the_end() {
    let config = ShardConfig {
        placement: PlacementConfig::Jump {},
        ..ShardConfig::default()
    };
    let shard = build(config, &["kv-0", "kv-1", "kv-2"]);
    let handle = shard.handle();
    let err = handle.remove("kv-1").unwrap_err();
    assert!(
        matches!(err, PlacementError::JumpNotContiguous { .. }),
        "{err}"
    );
    assert_eq!(
        handle.members().len(),
        3,
        "a refused change changes nothing"
    );
    handle.insert(Member::new("kv-3", echo("kv-3"))).unwrap();
    assert!(handle.remove("kv-3").unwrap());
    assert!(handle.remove("kv-2").unwrap());
    assert_eq!(handle.members().len(), 2);
}
