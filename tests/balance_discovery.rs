//! Membership fed by `tower::discover::Discover`: churn while requests are in
//! flight, and the worker's lifetime.

mod balance_common;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use balance_common::{send, Node};
use proptest::prelude::*;
use tokio::sync::mpsc;
use tower::discover::Change;
use tower::Service;
use tower_fleet::balance::{Balance, BalanceBuildError, BalanceError, BalanceHandle};

type Changes = mpsc::UnboundedSender<Result<Change<String, Node>, Infallible>>;

fn discovered() -> (Balance<Node>, Changes) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let b = Balance::builder().discover(stream).build().unwrap();
    (b, tx)
}

/// Yields until the worker has applied what was sent (bounded: only catches hangs).
async fn settle(handle: &BalanceHandle<Node>, want: &BTreeSet<usize>) {
    for _ in 0..1000 {
        let have: BTreeSet<usize> = handle
            .replicas()
            .iter()
            .map(|s| s.id.as_str()[1..].parse().unwrap())
            .collect();
        if &have == want {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("discovery did not apply the change");
}

#[derive(Clone, Debug)]
enum Op {
    Insert(usize),
    Remove(usize),
    Call,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..6usize).prop_map(Op::Insert),
        2 => (0..6usize).prop_map(Op::Remove),
        4 => Just(Op::Call),
        1 => (1..20u64).prop_map(Op::Wait),
    ]
}

const NAMES: [&str; 6] = ["r0", "r1", "r2", "r3", "r4", "r5"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn churn_loses_no_call_and_sends_none_to_a_removed_replica(ops in prop::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let nodes: Vec<Node> = NAMES.iter().map(|n| Node::new(n)).collect();
            for n in &nodes {
                n.latency(5);
            }
            let (mut b, tx) = discovered();
            let handle = b.handle();
            let mut members = BTreeSet::new();
            // Calls each removed replica had when its removal was seen.
            let mut frozen: Vec<Option<u64>> = vec![Some(0); NAMES.len()];
            let mut calls = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(i) => {
                        tx.send(Ok(Change::Insert(NAMES[i].to_string(), nodes[i].clone()))).unwrap();
                        members.insert(i);
                        settle(&handle, &members).await;
                        frozen[i] = None;
                    }
                    Op::Remove(i) => {
                        tx.send(Ok(Change::Remove(NAMES[i].to_string()))).unwrap();
                        members.remove(&i);
                        settle(&handle, &members).await;
                        frozen[i].get_or_insert(nodes[i].calls());
                    }
                    Op::Call => {
                        let fut = b.call(());
                        calls.push(tokio::spawn(fut));
                    }
                    Op::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
                tokio::task::yield_now().await;
                for (i, f) in frozen.iter().enumerate() {
                    if let Some(at) = f {
                        assert_eq!(nodes[i].calls(), *at, "{} got a call after its removal was seen", NAMES[i]);
                    }
                }
            }
            let total = calls.len();
            let mut answered = 0u64;
            for c in calls {
                match c.await.unwrap() {
                    Ok(_) => answered += 1,
                    Err(BalanceError::NoReplicas { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            let delivered: u64 = nodes.iter().map(Node::calls).sum();
            assert_eq!(delivered, answered, "every answered call reached exactly one replica once");
            assert!(answered as usize <= total);
            let snap = handle.snapshot();
            assert!(snap.replicas.iter().all(|r| r.in_flight == 0));
        });
    }
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_to_a_removed_replica_complete_there() {
    let (mut b, tx) = discovered();
    let a = Node::new("r0");
    a.latency(100);
    tx.send(Ok(Change::Insert("r0".into(), a.clone()))).unwrap();
    settle(&b.handle(), &[0].into()).await;
    let fut = tokio::spawn(b.call(()));
    tokio::task::yield_now().await;
    tx.send(Ok(Change::Remove("r0".into()))).unwrap();
    settle(&b.handle(), &BTreeSet::new()).await;
    assert_eq!(fut.await.unwrap().unwrap(), "r0");
    assert!(matches!(
        send(&mut b, ()).await,
        Err(BalanceError::NoReplicas { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_worker_stops_when_the_last_clone_is_dropped() {
    let token = Arc::new(());
    let held = token.clone();
    let (_tx, mut rx) = mpsc::unbounded_channel::<Result<Change<String, Node>, Infallible>>();
    let stream = futures_util::stream::poll_fn(move |cx| {
        let _ = &held;
        rx.poll_recv(cx)
    });
    let b = Balance::builder().discover(stream).build().unwrap();
    let clone = b.clone();
    let handle = b.handle();
    drop(b);
    drop(clone);
    tokio::task::yield_now().await;
    assert_eq!(Arc::strong_count(&token), 2, "a handle keeps it alive");
    drop(handle);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "the worker dropped its stream"
    );
}

#[test]
fn discovery_needs_a_runtime() {
    let (_tx, mut rx) = mpsc::unbounded_channel::<Result<Change<String, Node>, Infallible>>();
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let err = Balance::builder().discover(stream).build().unwrap_err();
    assert!(matches!(err, BalanceBuildError::NoRuntime(_)), "{err}");
}
