//! The `Shard` service's protocol: routing, readiness, failover, bad input,
//! membership changes and discovery.

mod common;

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tower::discover::Change;
use tower::{Layer, Service, ServiceExt};
use tower_fleet::key::Key;
use tower_fleet::shard::{
    Member, PlacementConfig, PlacementError, Shard, ShardBuildError, ShardConfig, ShardError,
    ShardLayer,
};
use tower_fleet::signal::{
    health, CloneReplay, Envelope, ErrorSignals, Unavailable, UnavailableKind,
};
use tower_fleet::BoxError;

type Req = Envelope<String>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ready,
    /// Never becomes ready.
    Stuck,
    /// Ready, but answers every call with the unavailable signal.
    Refuses,
}

/// A node that answers `"<name>:<key>"`, counts its calls, and can be made
/// stuck or refusing.
#[derive(Clone)]
struct Node {
    name: &'static str,
    calls: Arc<AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
}

impl Node {
    fn new(name: &'static str) -> Node {
        Node {
            name,
            calls: Arc::new(AtomicUsize::new(0)),
            mode: Arc::new(Mutex::new(Mode::Ready)),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Req> for Node {
    type Response = String;
    type Error = BoxError;
    type Future = Ready<Result<String, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match *self.mode.lock().unwrap() {
            Mode::Stuck => Poll::Pending,
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match *self.mode.lock().unwrap() {
            Mode::Refuses => ready(Err(Box::new(
                Unavailable::new(UnavailableKind::CircuitOpen)
                    .with_retry_after(Some(Duration::from_secs(2))),
            ))),
            _ => ready(Ok(format!("{}:{}", self.name, req.payload))),
        }
    }
}

/// `ready` then `call`.
async fn call<S: Service<Req>>(svc: &mut S, r: Req) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(r).await
}

fn req(key: &str) -> Req {
    Envelope::new(key.to_string())
}

fn by_payload(r: &Req) -> Option<Key<'_>> {
    Some(Key::from(r.payload.as_str()))
}

fn nodes(names: &[&'static str]) -> Vec<Node> {
    names.iter().map(|n| Node::new(n)).collect()
}

fn members(nodes: &[Node]) -> Vec<Member<Node>> {
    nodes
        .iter()
        .map(|n| Member::new(n.name, n.clone()))
        .collect()
}

/// A key that `shard` owns.
fn key_owned_by(shard: &Shard<Node, impl Sized, impl Sized>, owner: &str) -> String {
    (0..100_000)
        .map(|i| format!("k{i}"))
        .find(|k| shard.handle().route(k.as_bytes()).unwrap().as_str() == owner)
        .expect("some key maps to every shard")
}

#[tokio::test]
async fn routes_every_key_to_its_owner() {
    let ns = nodes(&["a", "b", "c"]);
    let mut shard = strict_shard(&ns);
    for i in 0..300 {
        let key = format!("user:{i}");
        let answer = call(&mut shard, req(&key)).await.unwrap();
        let owner = shard.handle().route(key.as_bytes()).unwrap();
        assert_eq!(answer, format!("{owner}:{key}"));
    }
    let snapshot = shard.handle().snapshot();
    assert_eq!(snapshot.shards.iter().map(|s| s.requests).sum::<u64>(), 300);
    for (stats, node) in snapshot.shards.iter().zip(&ns) {
        assert_eq!(stats.requests as usize, node.calls());
        assert!(
            node.calls() > 50,
            "{} got {} of 300",
            node.name,
            node.calls()
        );
    }
}

#[tokio::test]
async fn clones_share_one_membership() {
    let ns = nodes(&["a", "b"]);
    let shard = strict_shard(&ns);
    let mut clone = shard.clone();
    let extra = Node::new("z");
    shard
        .handle()
        .insert(Member::new("z", extra.clone()))
        .unwrap();
    let key = key_owned_by(&shard, "z");
    let answer = call(&mut clone, req(&key)).await.unwrap();
    assert_eq!(answer, format!("z:{key}"));
    assert_eq!(extra.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_shard_does_not_block_requests_for_other_shards() {
    let ns = nodes(&["a", "b", "c"]);
    ns[0].set(Mode::Stuck);
    let mut shard = strict_shard(&ns);
    let stuck_key = key_owned_by(&shard, "a");
    let start = Instant::now();
    let mut stuck = Box::pin(shard.ready().await.unwrap().call(req(&stuck_key)));
    assert!(
        (&mut stuck).now_or_never().is_none(),
        "the stuck shard's request waits"
    );
    for owner in ["b", "c"] {
        let key = key_owned_by(&shard, owner);
        let answer = call(&mut shard, req(&key)).await.unwrap();
        assert_eq!(answer, format!("{owner}:{key}"));
    }
    assert_eq!(
        Instant::now(),
        start,
        "other shards answered without waiting"
    );
    let err = stuck.await.unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert_eq!(err.unavailable().unwrap().kind(), UnavailableKind::NotReady);
    assert!(matches!(err, ShardError::Unavailable { ref shard, .. } if shard.as_str() == "a"));
    assert_eq!(ns[0].calls(), 0);
    assert_eq!(
        shard
            .handle()
            .snapshot()
            .shard("a")
            .unwrap()
            .not_ready_timeouts,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn poll_ready_is_ready_even_when_every_shard_is_stuck() {
    let ns = nodes(&["a", "b"]);
    for n in &ns {
        n.set(Mode::Stuck);
    }
    let mut shard = strict_shard(&ns);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(shard.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_ends_the_wait_first() {
    let ns = nodes(&["a"]);
    ns[0].set(Mode::Stuck);
    let mut shard = strict_shard(&ns);
    let start = Instant::now();
    let r = req("k").with_deadline(start + Duration::from_millis(100));
    let err = call(&mut shard, r).await.unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_millis(100));
    assert!(err.deadline_exceeded(), "{err}");
    assert_eq!(
        shard
            .handle()
            .snapshot()
            .shard("a")
            .unwrap()
            .deadline_exceeded,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_owner_known_unavailable_fails_at_once_with_its_retry_after() {
    let ns = nodes(&["a", "b"]);
    let (publisher, signal) = health();
    let mut shard = Shard::builder()
        .key_fn(by_payload)
        .member(Member::new("a", ns[0].clone()).health(signal))
        .member(Member::new("b", ns[1].clone()))
        .build()
        .unwrap();
    publisher.set_unavailable_until(Instant::now() + Duration::from_secs(5));
    let key = key_owned_by(&shard, "a");
    let err = call(&mut shard, req(&key)).await.unwrap_err();
    let signal = err.unavailable().expect("carries the unavailable signal");
    assert_eq!(signal.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(ns[0].calls(), 0, "the inner service was not touched");
    assert_eq!(
        ns[1].calls(),
        0,
        "strict ownership: no other shard answered"
    );
    // The signal's instant passes: the shard is used again, without any call to the publisher.
    tokio::time::advance(Duration::from_secs(5)).await;
    let answer = call(&mut shard, req(&key)).await.unwrap();
    assert_eq!(answer, format!("a:{key}"));
}

type KeyOf = fn(&Req) -> Option<Key<'_>>;

/// Strict ownership (`hops = 0`), the default one-second ready timeout.
fn strict_shard(ns: &[Node]) -> Shard<Node, KeyOf> {
    Shard::builder()
        .key_fn(by_payload as KeyOf)
        .members(members(ns))
        .build()
        .unwrap()
}

fn failover_shard(ns: &[Node], hops: u32) -> Shard<Node, KeyOf, CloneReplay> {
    Shard::builder()
        .placement(PlacementConfig::ring(160))
        .key_fn(by_payload as KeyOf)
        .replay(CloneReplay)
        .hops(hops)
        .ready_timeout(Duration::from_secs(1))
        .members(members(ns))
        .build()
        .unwrap()
}

/// The owner and the second shard of a key's preference list, by name.
fn owner_and_next(shard: &Shard<Node, impl Sized, impl Sized>, key: &str) -> (String, String) {
    let list = shard.handle().preference_list(key.as_bytes(), 2);
    (list[0].to_string(), list[1].to_string())
}

fn node<'a>(ns: &'a [Node], name: &str) -> &'a Node {
    ns.iter().find(|n| n.name == name).unwrap()
}

#[tokio::test(start_paused = true)]
async fn with_hops_an_unavailable_owner_passes_the_request_on() {
    let ns = nodes(&["a", "b", "c", "d"]);
    let (publisher, signal) = health();
    let mut shard = failover_shard(&ns, 1);
    let key = key_owned_by(&shard, "a");
    shard
        .handle()
        .insert(Member::new("a", ns[0].clone()).health(signal))
        .unwrap();
    publisher.set_unavailable();
    let (owner, next) = owner_and_next(&shard, &key);
    assert_eq!(owner, "a");
    let answer = call(&mut shard, req(&key)).await.unwrap();
    assert_eq!(answer, format!("{next}:{key}"));
    assert_eq!(ns[0].calls(), 0);
    let snap = shard.handle().snapshot();
    assert_eq!(snap.failovers, 1);
    assert_eq!(snap.shard("a").unwrap().failovers_away, 1);
}

#[tokio::test(start_paused = true)]
async fn with_hops_an_owner_not_ready_in_time_passes_the_request_on() {
    let ns = nodes(&["a", "b", "c", "d"]);
    let mut shard = failover_shard(&ns, 1);
    let key = key_owned_by(&shard, "b");
    let (_, next) = owner_and_next(&shard, &key);
    node(&ns, "b").set(Mode::Stuck);
    let start = Instant::now();
    let answer = call(&mut shard, req(&key)).await.unwrap();
    assert_eq!(answer, format!("{next}:{key}"));
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn with_hops_and_replay_an_answer_that_says_unavailable_moves_on() {
    let ns = nodes(&["a", "b", "c", "d"]);
    let mut shard = failover_shard(&ns, 1);
    let key = key_owned_by(&shard, "c");
    let (_, next) = owner_and_next(&shard, &key);
    node(&ns, "c").set(Mode::Refuses);
    let answer = call(&mut shard, req(&key)).await.unwrap();
    assert_eq!(answer, format!("{next}:{key}"));
    assert_eq!(node(&ns, "c").calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_replay_an_answer_that_says_unavailable_is_returned() {
    let ns = nodes(&["a", "b", "c", "d"]);
    let mut shard = Shard::builder()
        .placement(PlacementConfig::ring(160))
        .key_fn(by_payload)
        .hops(2)
        .members(members(&ns))
        .build()
        .unwrap();
    let key = key_owned_by(&shard, "c");
    node(&ns, "c").set(Mode::Refuses);
    let err = call(&mut shard, req(&key)).await.unwrap_err();
    assert!(matches!(err, ShardError::Inner { ref shard, .. } if shard.as_str() == "c"));
    assert_eq!(
        err.unavailable().unwrap().retry_after(),
        Some(Duration::from_secs(2))
    );
    let others: usize = ns.iter().filter(|n| n.name != "c").map(Node::calls).sum();
    assert_eq!(others, 0);
}

#[tokio::test(start_paused = true)]
async fn failover_stops_after_hops_shards() {
    let ns = nodes(&["a", "b", "c", "d", "e"]);
    for n in &ns {
        n.set(Mode::Refuses);
    }
    let mut shard = failover_shard(&ns, 2);
    let err = call(&mut shard, req("some-key")).await.unwrap_err();
    assert!(err.unavailable().is_some());
    let calls: usize = ns.iter().map(Node::calls).sum();
    assert_eq!(calls, 3, "the owner and two more");
}

#[tokio::test]
async fn a_request_without_a_key_is_a_typed_error() {
    let ns = nodes(&["a"]);
    let mut shard = Shard::builder()
        .key(|r: &Req| (!r.payload.is_empty()).then(|| Key::from(r.payload.as_str())))
        .members(members(&ns))
        .build()
        .unwrap();
    let err = call(&mut shard, req("")).await.unwrap_err();
    assert!(matches!(err, ShardError::NoKey));
    assert_eq!(shard.handle().snapshot().no_key, 1);
}

#[tokio::test]
async fn an_emptied_membership_is_a_typed_error() {
    let ns = nodes(&["a", "b"]);
    let mut shard = strict_shard(&ns);
    shard.handle().set_members(Vec::new()).unwrap();
    let err = call(&mut shard, req("k")).await.unwrap_err();
    assert!(matches!(err, ShardError::NoShards));
    assert!(shard.handle().route(b"k").is_none());
    assert!(shard.handle().preference_list(b"k", 3).is_empty());
}

#[test]
fn bad_memberships_and_configs_are_typed_errors() {
    let ns = nodes(&["a", "b"]);
    let build = |members: Vec<Member<Node>>, placement: PlacementConfig| {
        Shard::builder()
            .placement(placement)
            .key_fn(by_payload)
            .members(members)
            .build()
    };
    let placement_err = |r: Result<_, ShardBuildError>| match r {
        Err(ShardBuildError::Placement(e)) => e,
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("built an invalid shard"),
    };
    let zero = vec![Member::new("a", ns[0].clone()).weight(0)];
    assert!(matches!(
        placement_err(build(zero, PlacementConfig::default())),
        PlacementError::ZeroWeight { .. }
    ));
    let dup = vec![
        Member::new("a", ns[0].clone()),
        Member::new("a", ns[1].clone()),
    ];
    assert!(matches!(
        placement_err(build(dup, PlacementConfig::default())),
        PlacementError::DuplicateId { .. }
    ));
    assert!(matches!(
        placement_err(build(Vec::new(), PlacementConfig::default())),
        PlacementError::Empty
    ));
    match placement_err(build(members(&ns), PlacementConfig::maglev(65_536))) {
        PlacementError::Config(e) => {
            assert_eq!((e.field(), e.value()), ("placement.table_size", "65536"))
        }
        other => panic!("unexpected {other}"),
    }
    let many: Vec<Member<Node>> = (0..8)
        .map(|i| Member::new(format!("s{i}"), ns[0].clone()))
        .collect();
    assert!(matches!(
        placement_err(build(many, PlacementConfig::maglev(7))),
        PlacementError::TableTooSmall {
            table_size: 7,
            shards: 8
        }
    ));
    match placement_err(build(members(&ns), PlacementConfig::ring(0))) {
        PlacementError::Config(e) => assert_eq!(e.field(), "placement.points_per_weight"),
        other => panic!("unexpected {other}"),
    }
    // Membership changes through the handle are checked the same way, and change nothing when refused.
    let shard = build(members(&ns), PlacementConfig::default()).unwrap();
    assert!(matches!(
        shard.handle().set_weight("a", 0),
        Err(PlacementError::ZeroWeight { .. })
    ));
    assert!(matches!(
        shard
            .handle()
            .insert(Member::new("c", ns[0].clone()).weight(0)),
        Err(PlacementError::ZeroWeight { .. })
    ));
    assert_eq!(shard.handle().members().len(), 2);
    assert_eq!(shard.handle().snapshot().membership_errors, 2);
    assert!(shard.handle().set_weight("a", 3).unwrap());
    assert!(!shard.handle().set_weight("zz", 3).unwrap());
    assert!(shard.handle().remove("b").unwrap());
    assert!(!shard.handle().remove("b").unwrap());
}

#[tokio::test]
async fn a_layer_over_an_invalid_membership_fails_every_call_with_the_reason() {
    let ns = nodes(&["a"]);
    let layer = ShardLayer::new(ShardConfig::default())
        .unwrap()
        .key_fn(by_payload);
    let dup = vec![
        Member::new("a", ns[0].clone()),
        Member::new("a", ns[0].clone()),
    ];
    assert!(matches!(
        layer.try_layer(dup.clone()),
        Err(PlacementError::DuplicateId { .. })
    ));
    let mut shard = layer.layer(dup);
    let err = call(&mut shard, req("k")).await.unwrap_err();
    assert!(matches!(
        err,
        ShardError::Membership(PlacementError::DuplicateId { .. })
    ));
    let mut good = layer.layer(members(&ns));
    assert_eq!(call(&mut good, req("k")).await.unwrap(), "a:k");
    let bad = ShardConfig {
        hops: 99,
        ..ShardConfig::default()
    };
    assert_eq!(ShardLayer::new(bad).unwrap_err().field(), "hops");
}

/// A node whose response takes a while, to keep a request in flight.
fn slow_node(
    name: &'static str,
) -> impl Service<Req, Response = String, Error = BoxError, Future: Send> + Clone {
    tower::service_fn(move |r: Req| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, BoxError>(format!("{name}:{}", r.payload))
    })
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_completes_when_its_shard_is_removed() {
    let mut shard = Shard::builder()
        .key_fn(by_payload)
        .member(Member::new("a", slow_node("a")))
        .member(Member::new("b", slow_node("b")))
        .build()
        .unwrap();
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| shard.handle().route(k.as_bytes()).unwrap().as_str() == "a")
        .unwrap();
    let in_flight = tokio::spawn(shard.ready().await.unwrap().call(req(&key)));
    tokio::task::yield_now().await;
    assert!(shard.handle().remove("a").unwrap());
    assert_eq!(in_flight.await.unwrap().unwrap(), format!("a:{key}"));
    let moved = call(&mut shard, req(&key)).await.unwrap();
    assert_eq!(moved, format!("b:{key}"));
}

type Changes = futures::channel::mpsc::UnboundedSender<Result<Change<String, Node>, Infallible>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_feeds_the_membership_and_stops_with_the_shard() {
    let (tx, rx): (Changes, _) = futures::channel::mpsc::unbounded();
    let shard = Shard::builder()
        .key_fn(by_payload)
        .discover(rx)
        .build()
        .unwrap();
    let handle = shard.handle();
    let mut svc = shard.clone();
    let err = call(&mut svc, req("k")).await.unwrap_err();
    assert!(matches!(err, ShardError::NoShards), "starts empty");
    for n in ["a", "b", "c"] {
        tx.unbounded_send(Ok(Change::Insert(n.to_string(), Node::new(n))))
            .unwrap();
    }
    common::eventually("three shards", || handle.members().len() == 3).await;
    tx.unbounded_send(Ok(Change::Remove("b".to_string())))
        .unwrap();
    common::eventually("b removed", || handle.members().len() == 2).await;
    let ids: Vec<String> = handle
        .members()
        .into_iter()
        .map(|s| s.id.to_string())
        .collect();
    assert_eq!(ids, ["a", "c"]);
    let answer = call(&mut svc, req("k")).await.unwrap();
    assert!(answer.starts_with('a') || answer.starts_with('c'));
    drop((shard, svc, handle));
    common::eventually("the discovery worker to stop", || tx.is_closed()).await;
}

#[test]
fn discovery_outside_a_runtime_is_a_typed_error() {
    let (_tx, rx): (Changes, _) = futures::channel::mpsc::unbounded();
    let err = Shard::builder()
        .key_fn(by_payload)
        .discover(rx)
        .build()
        .unwrap_err();
    assert!(matches!(err, ShardBuildError::NoRuntime(_)), "{err}");
}
