//! The balancer's quorum mode on paused time, over scripted replicas:
//! quorums met and missed, stragglers, merges, failover, health, deadlines.

mod balance_common;

use std::convert::Infallible;
use std::time::Duration;

use balance_common::{calls, nodes, replicas, send, Node};
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_fleet::balance::{
    newest, Balance, BalanceBuildError, BalanceConfig, BalanceLayer, CopyError, FanOut, FirstReply,
    OutlierConfig, Quorum, QuorumConfig, QuorumError, QuorumKind, Replica, Replies, Strategy,
};
use tower_fleet::breaker::BreakerConfig;
use tower_fleet::classify::ErrorIsFailure;
use tower_fleet::signal::{health, Envelope, ErrorSignals, NoReplay, UnavailableKind};

type Writes = Quorum<Node, ErrorIsFailure, QuorumKind, FirstReply>;

/// Round robin (so that picks do not depend on latency) with ejection off
/// (so that only the quorum logic acts), unless a test says otherwise.
fn config(quorum: QuorumConfig) -> BalanceConfig {
    BalanceConfig {
        strategy: Strategy::RoundRobin {},
        outlier: OutlierConfig {
            enabled: false,
            ..OutlierConfig::default()
        },
        quorum: Some(quorum),
        ..BalanceConfig::default()
    }
}

fn writes(ns: &[Node], quorum: QuorumConfig) -> Writes {
    Balance::builder()
        .config(config(quorum))
        .replicas(replicas(ns))
        .build_quorum(QuorumKind::Write, FirstReply)
        .unwrap()
}

fn ids<'a>(list: impl IntoIterator<Item = &'a tower_fleet::balance::ReplicaId>) -> Vec<String> {
    let mut v: Vec<String> = list.into_iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn a_write_of_two_of_three_succeeds_with_one_replica_down() {
    let ns = nodes(&["a", "b", "c"]);
    ns[2].failing(true);
    let mut w = writes(&ns, QuorumConfig::default());
    let answer = send(&mut w, ()).await.unwrap();
    assert_eq!(answer.needed, 2);
    assert_eq!(ids(answer.replies.iter().map(|r| &r.replica)), ["a", "b"]);
    assert_eq!(ids(answer.failed.iter().map(|f| &f.replica)), ["c"]);
    assert!(answer.unanswered.is_empty());
    assert_eq!(calls(&ns), [1, 1, 1], "every replica got one copy");
    // Each copy counted like a single call.
    let snap = w.handle().snapshot();
    for (id, ok, failed) in [("a", 1, 0), ("b", 1, 0), ("c", 0, 1)] {
        let r = snap.replica(id).unwrap();
        assert_eq!(
            (r.requests, r.successes, r.failures, r.in_flight),
            (1, ok, failed, 0),
            "{id}"
        );
    }
    assert_eq!((snap.quorum.calls, snap.quorum.met), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn with_two_replicas_down_the_write_fails_and_reports_one_success() {
    let ns = nodes(&["a", "b", "c"]);
    ns[1].failing(true);
    ns[2].failing(true);
    let mut w = writes(&ns, QuorumConfig::default());
    let err = send(&mut w, ()).await.unwrap_err();
    assert_eq!(err.succeeded(), 1, "{err}");
    let failure = err.failure().unwrap();
    assert_eq!(ids(&failure.succeeded), ["a"]);
    assert_eq!(ids(failure.failed.iter().map(|f| &f.replica)), ["b", "c"]);
    assert!(!failure.timed_out);
    assert_eq!(
        err.unavailable().unwrap().kind(),
        UnavailableKind::QuorumFailed
    );
    let boxed: tower_fleet::BoxError = Box::new(err);
    assert_eq!(
        boxed.unavailable().unwrap().kind(),
        UnavailableKind::QuorumFailed,
        "the signal is the error's source"
    );
    assert_eq!(w.handle().snapshot().quorum.failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_third_replica_does_not_delay_the_answer_and_finishes_in_the_background() {
    let ns = nodes(&["a", "b", "c"]);
    ns[0].latency(10);
    ns[1].latency(10);
    ns[2].latency(1_000);
    let mut w = writes(&ns, QuorumConfig::default());
    let t0 = Instant::now();
    let answer = send(&mut w, ()).await.unwrap();
    assert_eq!(
        Instant::now() - t0,
        Duration::from_millis(10),
        "answered at the fast replicas' latency"
    );
    assert_eq!(ids(&answer.unanswered), ["c"]);
    let snap = w.handle().snapshot();
    assert_eq!(snap.quorum.stragglers, 1);
    assert_eq!(snap.replica("c").unwrap().in_flight, 1);
    // The straggler finishes on its own and its outcome counts.
    tokio::time::sleep(Duration::from_millis(990)).await;
    tokio::task::yield_now().await;
    let snap = w.handle().snapshot();
    assert_eq!(snap.quorum.stragglers, 0);
    let c = snap.replica("c").unwrap();
    assert_eq!((c.in_flight, c.successes), (0, 1));
    assert_eq!(snap.quorum.stragglers_cancelled, 0);
}

#[tokio::test(start_paused = true)]
async fn stragglers_beyond_the_bound_or_past_their_timeout_are_cancelled() {
    let ns = nodes(&["a", "b", "c"]);
    ns[2].latency(10_000);
    let none = QuorumConfig {
        max_stragglers: 0,
        ..QuorumConfig::default()
    };
    let mut w = writes(&ns, none);
    send(&mut w, ()).await.unwrap();
    let snap = w.handle().snapshot();
    assert_eq!(
        (snap.quorum.stragglers, snap.quorum.stragglers_cancelled),
        (0, 1)
    );
    assert_eq!(snap.replica("c").unwrap().in_flight, 0, "cancelled at once");

    let short = QuorumConfig {
        straggler_timeout: Duration::from_secs(2),
        ..QuorumConfig::default()
    };
    let mut w = writes(&ns, short);
    send(&mut w, ()).await.unwrap();
    assert_eq!(w.handle().snapshot().quorum.stragglers, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    let snap = w.handle().snapshot();
    assert_eq!(
        (snap.quorum.stragglers, snap.quorum.stragglers_cancelled),
        (0, 1)
    );
    let c = snap.replica("c").unwrap();
    assert_eq!((c.in_flight, c.successes), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn copies_not_sent_when_the_outcome_is_decided_are_dropped() {
    let ns = nodes(&["a", "b", "c"]);
    ns[2].ready(false);
    let mut w = writes(&ns, QuorumConfig::default());
    let answer = send(&mut w, ()).await.unwrap();
    assert_eq!(ids(&answer.unanswered), ["c"]);
    ns[2].ready(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ns[2].calls(), 0, "never sent");
    let snap = w.handle().snapshot();
    assert_eq!(snap.replica("c").unwrap().in_flight, 0);
    assert_eq!(
        (snap.quorum.stragglers, snap.quorum.stragglers_cancelled),
        (0, 0)
    );
}

type Versioned = (u64, &'static str);

fn versioned(
    version: u64,
    value: &'static str,
    latency_ms: u64,
) -> impl Service<(), Response = Versioned, Error = Infallible, Future = impl Send>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(move |()| async move {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        Ok::<_, Infallible>((version, value))
    })
}

#[tokio::test(start_paused = true)]
async fn the_merge_picks_the_newest_version_and_names_the_replicas_behind() {
    let mut reads = Balance::builder()
        .quorum(QuorumConfig {
            read: 3,
            ..QuorumConfig::default()
        })
        .replica(Replica::new("a", versioned(3, "old", 1)))
        .replica(Replica::new("b", versioned(5, "new", 3)))
        .replica(Replica::new("c", versioned(4, "mid", 2)))
        .build_quorum(QuorumKind::Read, newest(|r: &Versioned| r.0))
        .unwrap();
    let answer = reads.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(answer.merged, (5, "new"));
    let order: Vec<&str> = answer.replies.iter().map(|r| r.replica.as_str()).collect();
    assert_eq!(order, ["a", "c", "b"], "replies in arrival order");
    assert_eq!(ids(&answer.lagging(|r| r.0)), ["a", "c"]);

    // Any function of the replies merges: here, how many agree with the newest.
    let agree = |replies: Replies<'_, Versioned>| {
        let best = replies.max_by_key(|r| r.0).response.0;
        replies.iter().filter(|r| r.response.0 == best).count()
    };
    let mut count = reads.balance().quorum(QuorumKind::Read, agree);
    let answer = count.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(answer.into_merged(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_copies_go_to_the_best_replicas_by_the_load_metric() {
    let ns = nodes(&["a", "b", "c"]);
    ns[0].latency(1);
    ns[1].latency(1);
    ns[2].latency(200);
    // Peak-EWMA, the default: c's latency is learnt from quorum calls too,
    // including the copies that finished as stragglers.
    let balance = Balance::builder().replicas(replicas(&ns)).build().unwrap();
    let mut all = balance.quorum(QuorumKind::Write, FirstReply);
    for _ in 0..3 {
        send(&mut all, ()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let snap = balance.handle().snapshot();
    let ewma = |id: &str| snap.replica(id).unwrap().ewma.unwrap();
    assert!(ewma("c") >= Duration::from_millis(150), "{:?}", ewma("c"));
    assert!(ewma("a") < Duration::from_millis(30), "{:?}", ewma("a"));
    // With n = 2, the two cheapest replicas get the copies.
    let mut two = all
        .with_config(QuorumConfig {
            n: FanOut::Best(2),
            ..QuorumConfig::default()
        })
        .unwrap();
    let before = ns[2].calls();
    for _ in 0..20 {
        let answer = send(&mut two, ()).await.unwrap();
        assert_eq!(ids(answer.replies.iter().map(|r| &r.replica)), ["a", "b"]);
    }
    assert_eq!(ns[2].calls(), before);
}

#[tokio::test(start_paused = true)]
async fn a_failed_copy_goes_to_an_unused_replica() {
    let ns = nodes(&["a", "b", "c", "d"]);
    ns[0].failing(true);
    let three = QuorumConfig {
        n: FanOut::Best(3),
        write: 3,
        ..QuorumConfig::default()
    };
    let mut w = writes(&ns, three);
    for _ in 0..8 {
        let answer = send(&mut w, ()).await.unwrap();
        assert_eq!(answer.replies.len(), 3);
        assert!(answer.replies.iter().all(|r| r.replica.as_str() != "a"));
    }
    let snap = w.handle().snapshot();
    assert!(ns[0].calls() > 0, "a was picked");
    assert_eq!(snap.quorum.failovers, ns[0].calls());
    assert_eq!(
        calls(&ns).iter().sum::<u64>(),
        8 * 3 + ns[0].calls(),
        "one extra copy per failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_not_ready_in_time_is_replaced_by_a_spare() {
    let ns = nodes(&["a", "b", "c", "d"]);
    for n in &ns[..3] {
        n.ready(false);
    }
    let mut w = Balance::builder()
        .config(BalanceConfig {
            ready_timeout: Duration::from_millis(100),
            ..config(QuorumConfig {
                n: FanOut::Best(1),
                read: 1,
                write: 1,
                ..QuorumConfig::default()
            })
        })
        .replicas(replicas(&ns))
        .build_quorum(QuorumKind::Write, FirstReply)
        .unwrap();
    // One copy at a time: each not-ready replica is given up after 100ms
    // and a spare is tried, until d answers.
    let t0 = Instant::now();
    let answer = send(&mut w, ()).await.unwrap();
    assert_eq!(answer.replies[0].replica.as_str(), "d");
    for f in &answer.failed {
        let e = f.error.downcast_ref::<CopyError>().unwrap();
        assert!(matches!(e, CopyError::NotReady { .. }), "{e}");
    }
    let given_up = answer.failed.len() as u32;
    assert_eq!(Instant::now() - t0, Duration::from_millis(100) * given_up);
    // Every replica is tried before the call gives up.
    d_down_and_all_tried(&mut w, &ns).await;
    // Waiting is not a failure of the replica.
    assert_eq!(w.handle().snapshot().replica("a").unwrap().failures, 0);
}

async fn d_down_and_all_tried(w: &mut Writes, ns: &[Node]) {
    ns[3].ready(false);
    let t0 = Instant::now();
    let err = send(w, ()).await.unwrap_err();
    assert_eq!(err.failure().unwrap().failed.len(), 4);
    assert_eq!(Instant::now() - t0, Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn a_replica_failing_in_quorum_calls_gets_ejected() {
    let ns = nodes(&["a", "b", "c"]);
    ns[2].failing(true);
    let mut w = Balance::builder()
        .outlier(OutlierConfig {
            consecutive_failures: 3,
            max_ejection_percent: 100,
            ..OutlierConfig::default()
        })
        .replicas(replicas(&ns))
        .build_quorum(QuorumKind::Write, FirstReply)
        .unwrap();
    for _ in 0..10 {
        send(&mut w, ()).await.unwrap();
    }
    assert_eq!(ns[2].calls(), 3, "ejected after three failed copies");
    let snap = w.handle().snapshot();
    let c = snap.replica("c").unwrap();
    assert_eq!(c.ejections, 1);
    assert!(!c.available);
    // A single call through the same set skips it too.
    let mut single = w.balance();
    for _ in 0..10 {
        assert_ne!(send(&mut single, ()).await.unwrap(), "c");
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_whose_breaker_opens_in_quorum_calls_stops_getting_copies() {
    let ns = nodes(&["a", "b", "c"]);
    ns[2].failing(true);
    let mut w = Balance::builder()
        .config(config(QuorumConfig::default()))
        .replica_breakers(BreakerConfig {
            consecutive_failures: Some(3),
            open_duration: Duration::from_secs(10),
            open_jitter: 0.0,
            ..BreakerConfig::replica()
        })
        .replicas(replicas(&ns))
        .build_quorum(QuorumKind::Write, FirstReply)
        .unwrap();
    for _ in 0..10 {
        send(&mut w, ()).await.unwrap();
    }
    assert_eq!(ns[2].calls(), 3, "the open breaker keeps copies away");
    assert!(!w.handle().snapshot().replica("c").unwrap().available);
}

#[tokio::test(start_paused = true)]
async fn the_request_deadline_ends_the_call() {
    let ns = nodes(&["a", "b", "c"]);
    for n in &ns {
        n.latency(100);
    }
    let mut w = writes(&ns, QuorumConfig::default());
    let t0 = Instant::now();
    let err = send(
        &mut w,
        Envelope::new(()).with_timeout(Duration::from_millis(40)),
    )
    .await
    .unwrap_err();
    assert_eq!(Instant::now() - t0, Duration::from_millis(40));
    assert!(err.deadline_exceeded(), "{err}");
    assert!(matches!(err, QuorumError::DeadlineExceeded { .. }));
    assert_eq!(ids(&err.failure().unwrap().unanswered), ["a", "b", "c"]);
    assert_eq!(w.handle().snapshot().quorum.deadline_exceeded, 1);

    // A deadline already passed: nothing is sent.
    let before = calls(&ns);
    let late = Envelope::new(()).with_deadline(Instant::now());
    let err = send(&mut w, late).await.unwrap_err();
    assert!(err.deadline_exceeded());
    assert_eq!(calls(&ns), before);
}

#[tokio::test(start_paused = true)]
async fn the_quorum_timeout_fails_the_call_with_what_it_had() {
    let ns = nodes(&["a", "b", "c"]);
    ns[1].latency(5_000);
    ns[2].latency(5_000);
    let mut w = writes(&ns, QuorumConfig::default());
    let t0 = Instant::now();
    let err = send(&mut w, ()).await.unwrap_err();
    assert_eq!(Instant::now() - t0, Duration::from_secs(1));
    let failure = err.failure().unwrap();
    assert!(failure.timed_out);
    assert_eq!(ids(&failure.succeeded), ["a"]);
    assert_eq!(ids(&failure.unanswered), ["b", "c"]);
    assert_eq!(
        err.unavailable().unwrap().kind(),
        UnavailableKind::QuorumFailed
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_refused_and_nothing_is_sent() {
    let ns = nodes(&["a", "b", "c"]);
    let mut w = writes(&ns, QuorumConfig::default()).replay(NoReplay);
    let err = send(&mut w, ()).await.unwrap_err();
    assert!(matches!(err, QuorumError::NotReplayable), "{err}");
    assert_eq!(calls(&ns), [0, 0, 0]);
    let snap = w.handle().snapshot();
    assert_eq!(snap.quorum.not_replayable, 1);
    assert!(snap.replicas.iter().all(|r| r.requests == 0));
}

#[tokio::test(start_paused = true)]
async fn each_request_chooses_its_quorum() {
    let ns = nodes(&["a", "b", "c"]);
    ns[2].failing(true);
    let by_request = |req: &&'static str| match *req {
        "read" => QuorumKind::Read,
        "write" => QuorumKind::Write,
        "all" => QuorumKind::All,
        "none" => QuorumKind::Count(0),
        _ => QuorumKind::Count(4),
    };
    let mut q = Balance::builder()
        .config(config(QuorumConfig {
            n: FanOut::Best(3),
            read: 1,
            write: 2,
            ..QuorumConfig::default()
        }))
        .replicas(replicas(&ns))
        .build_quorum(by_request, FirstReply)
        .unwrap();
    assert_eq!(send(&mut q, "read").await.unwrap().needed, 1);
    assert_eq!(send(&mut q, "write").await.unwrap().needed, 2);
    let err = send(&mut q, "all").await.unwrap_err();
    assert_eq!((err.succeeded(), err.failure().unwrap().needed), (2, 3));
    for bad in ["none", "four"] {
        let err = send(&mut q, bad).await.unwrap_err();
        assert!(
            matches!(err, QuorumError::InvalidQuorum { n: 3, .. }),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn too_few_available_replicas_fail_at_once_with_a_retry_after() {
    let ns = nodes(&["a", "b", "c"]);
    let (pb, sb) = health();
    let (pc, sc) = health();
    let mut w = Balance::builder()
        .config(config(QuorumConfig::default()))
        .replica(ns[0].replica())
        .replica(ns[1].replica().health(sb))
        .replica(ns[2].replica().health(sc))
        .build_quorum(QuorumKind::Write, FirstReply)
        .unwrap();
    pb.set_unavailable_until(Instant::now() + Duration::from_secs(5));
    pc.set_unavailable_until(Instant::now() + Duration::from_secs(5));
    let t0 = Instant::now();
    let err = send(&mut w, ()).await.unwrap_err();
    assert_eq!(Instant::now(), t0, "no wait");
    assert_eq!(calls(&ns), [0, 0, 0], "nothing sent");
    let signal = err.unavailable().unwrap();
    assert_eq!(signal.kind(), UnavailableKind::QuorumFailed);
    assert_eq!(signal.retry_after(), Some(Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn quorum_and_single_calls_share_one_replica_set() {
    let ns = nodes(&["a", "b"]);
    let single = Balance::builder()
        .config(config(QuorumConfig::default()))
        .replicas(replicas(&ns))
        .build()
        .unwrap();
    let mut all = single.quorum(QuorumKind::All, FirstReply);
    single.handle().insert(Node::new("c").replica()).unwrap();
    let answer = send(&mut all, ()).await.unwrap();
    assert_eq!(
        ids(answer.replies.iter().map(|r| &r.replica)),
        ["a", "b", "c"]
    );
    assert_eq!(single.handle().snapshot().quorum.met, 1);
}

#[tokio::test]
async fn an_invalid_quorum_configuration_is_refused_by_the_builder_and_views() {
    let ns = nodes(&["a"]);
    let bad = QuorumConfig {
        n: FanOut::Best(2),
        write: 3,
        ..QuorumConfig::default()
    };
    let err = Balance::builder()
        .quorum(bad)
        .replicas(replicas(&ns))
        .build_quorum(QuorumKind::Write, FirstReply)
        .unwrap_err();
    assert!(
        matches!(err, BalanceBuildError::Config(ref e) if e.field() == "quorum.write"),
        "{err}"
    );
    let ok = writes(&ns, QuorumConfig::default());
    let e = ok.with_config(bad).unwrap_err();
    assert_eq!((e.field(), e.value()), ("write", "3"));
}

#[tokio::test(start_paused = true)]
async fn a_quorum_layer_makes_the_mode_and_reports_an_invalid_set_on_every_call() {
    let layer = BalanceLayer::new(config(QuorumConfig::default()))
        .unwrap()
        .quorum(QuorumKind::Write, FirstReply);
    let ns = nodes(&["a", "b"]);
    let mut good = layer.layer(replicas(&ns));
    assert_eq!(send(&mut good, ()).await.unwrap().replies.len(), 2);
    let mut bad = layer.layer(vec![ns[0].replica(), ns[0].replica()]);
    let err = send(&mut bad, ()).await.unwrap_err();
    assert!(matches!(err, QuorumError::Membership(_)), "{err}");
}

#[test]
fn the_quorum_view_and_its_future_are_send() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Writes>();
    fn future<T: Send>(_: &T) {}
    let ns = nodes(&["a"]);
    let mut w = writes(&ns, QuorumConfig::default());
    let f = w.call(());
    future(&f);
}
