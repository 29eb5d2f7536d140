//! Miss coalescing: one upstream call per key under a stampede, waiters that
//! never spin, cancelled leaders that hand their call over, the wait bound.

mod cache_common;

use std::time::Duration;

use cache_common::{count_polls, poll_once, settle, Upstream};
use tower::{Service, ServiceExt};
use tower_fleet::cache::{Cache, CacheError, SharedError};
use tower_fleet::key::Key;
use tower_fleet::signal::{Carrier, Envelope};

type Svc = Cache<Upstream, String, fn(&String) -> Option<Key<'_>>>;

#[allow(clippy::ptr_arg)] // the cache's request type is `String`
fn by_string(req: &String) -> Option<Key<'_>> {
    Some(Key::from(req.as_str()))
}

fn cache(up: &Upstream) -> Svc {
    Cache::builder()
        .key_fn(by_string as fn(&String) -> Option<Key<'_>>)
        .build(up.clone())
        .unwrap()
}

async fn stampede(svc: &Svc, n: usize, key: &str) -> Vec<Result<String, CacheError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(svc.clone().oneshot(key.to_string())))
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_misses_make_one_upstream_call_and_share_its_response() {
    let up = Upstream::new(Duration::from_millis(50));
    let svc = cache(&up);
    let results = stampede(&svc, 1000, "k").await;
    assert_eq!(up.calls(), 1);
    assert!(results.iter().all(|r| r.as_ref().unwrap() == "k#1"));
    let snap = svc.handle().snapshot();
    assert_eq!((snap.loads, snap.misses, snap.coalesced), (1, 1000, 999));
    // And the next request is a hit.
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#1");
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_stampede_makes_one_call_shares_the_error_and_the_next_request_tries_again() {
    let up = Upstream::new(Duration::from_millis(50));
    up.fail(true);
    let svc = cache(&up);
    let results = stampede(&svc, 1000, "k").await;
    assert_eq!(up.calls(), 1);
    let errors: Vec<SharedError> = results
        .into_iter()
        .map(|r| match r {
            Err(CacheError::Upstream(e)) => e,
            other => panic!("expected the shared upstream error, got {other:?}"),
        })
        .collect();
    assert!(errors.iter().all(|e| SharedError::ptr_eq(e, &errors[0])));
    assert_eq!(errors[0].get_ref().to_string(), "upstream failed on call 1");
    // Errors are not cached without a negative TTL: the next request tries again.
    up.fail(false);
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#2");
    assert_eq!(up.calls(), 2);
}

async fn waiter_polls(latency: Duration, spins: usize) -> usize {
    let mut up = Upstream::new(latency);
    up.spins = spins;
    let svc = cache(&up);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { count_polls(svc.call("k".to_string())).await })
        })
        .collect();
    let mut max_waiter_polls = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let (out, polls) = t.await.unwrap();
        assert_eq!(out.unwrap(), "k#1");
        if i > 0 {
            max_waiter_polls = max_waiter_polls.max(polls);
        }
    }
    assert_eq!(up.calls(), 1);
    max_waiter_polls
}

#[tokio::test(start_paused = true)]
async fn waiters_are_polled_a_fixed_number_of_times_whatever_the_latency() {
    // Registered on the first poll, woken once with the result.
    assert!(waiter_polls(Duration::from_millis(1), 0).await <= 2);
    assert!(waiter_polls(Duration::from_secs(500), 0).await <= 2);
    // The leader's own wake-ups (a chatty upstream) never reach the waiters.
    assert!(waiter_polls(Duration::from_millis(10), 1000).await <= 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_its_call_to_a_waiter() {
    let (up, gate) = Upstream::gated();
    let svc = cache(&up);
    let mut leader = Box::pin(svc.clone().oneshot("k".to_string()));
    assert!(poll_once(&mut leader).await.is_pending());
    assert_eq!(up.calls(), 1);
    let waiters: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot("k".to_string())))
        .collect();
    settle().await;
    drop(leader);
    settle().await;
    gate.add_permits(1);
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap(), "k#1");
    }
    assert_eq!(up.calls(), 1);
    let snap = svc.handle().snapshot();
    assert_eq!(snap.handovers, 1);
    // The call that was handed over filled the cache.
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#1");
}

#[tokio::test(start_paused = true)]
async fn a_chain_of_cancelled_drivers_never_leaves_a_waiter_hanging() {
    let (up, gate) = Upstream::gated();
    let svc = cache(&up);
    let mut futs: Vec<_> = (0..5)
        .map(|_| Box::pin(svc.clone().oneshot("k".to_string())))
        .collect();
    for f in &mut futs {
        assert!(poll_once(f).await.is_pending());
    }
    // Drop the leader, then each waiter that took the call over, in turn.
    while futs.len() > 1 {
        futs.remove(0);
        for f in &mut futs {
            assert!(poll_once(f).await.is_pending());
        }
    }
    gate.add_permits(1);
    let last = futs.pop().unwrap();
    assert_eq!(last.await.unwrap(), "k#1");
    assert_eq!(up.calls(), 1);
    assert_eq!(svc.handle().snapshot().handovers, 4);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_without_waiters_cancels_the_load_and_the_next_request_starts_anew() {
    let (up, gate) = Upstream::gated();
    let svc = cache(&up);
    let mut leader = Box::pin(svc.clone().oneshot("k".to_string()));
    assert!(poll_once(&mut leader).await.is_pending());
    drop(leader);
    gate.add_permits(1);
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#2");
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_go_upstream_themselves_after_the_coalescing_wait_bound() {
    let (up, gate) = Upstream::gated();
    let svc: Svc = Cache::builder()
        .key_fn(by_string as fn(&String) -> Option<Key<'_>>)
        .coalesce_timeout(Duration::from_secs(1))
        .build(up.clone())
        .unwrap();
    let leader = tokio::spawn(svc.clone().oneshot("k".to_string()));
    settle().await;
    let waiters: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot("k".to_string())))
        .collect();
    settle().await;
    assert_eq!(up.calls(), 1);
    tokio::time::advance(Duration::from_millis(999)).await;
    settle().await;
    assert_eq!(up.calls(), 1, "waiters still wait within the bound");
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(up.calls(), 4, "each waiter went upstream after the bound");
    gate.add_permits(4);
    let mut answers = vec![leader.await.unwrap().unwrap()];
    for w in waiters {
        answers.push(w.await.unwrap().unwrap());
    }
    answers.sort();
    assert_eq!(answers, ["k#1", "k#2", "k#3", "k#4"]);
    assert_eq!(svc.handle().snapshot().wait_timeouts, 3);
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_deadline_passes_leaves_the_call_to_its_waiters() {
    let up = Upstream::new(Duration::from_secs(2));
    let svc = Cache::builder()
        .key(|req: &Envelope<String>| Some(Key::from(req.payload.as_str())))
        .build(up.clone())
        .unwrap();
    let hurried = Envelope::new("k".to_string()).with_timeout(Duration::from_millis(100));
    assert!(hurried.deadline().is_some());
    let leader = tokio::spawn(svc.clone().oneshot(hurried));
    settle().await;
    let patient = tokio::spawn(svc.clone().oneshot(Envelope::new("k".to_string())));
    let err = leader.await.unwrap().unwrap_err();
    assert!(matches!(err, CacheError::DeadlineExceeded(_)), "{err:?}");
    assert_eq!(patient.await.unwrap().unwrap(), "k#1");
    assert_eq!(up.calls(), 1);
    let snap = svc.handle().snapshot();
    assert_eq!((snap.deadline_exceeded, snap.handovers), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_deadline_passes_gives_up_without_disturbing_the_load() {
    let up = Upstream::new(Duration::from_secs(2));
    let svc = Cache::builder()
        .key(|req: &Envelope<String>| Some(Key::from(req.payload.as_str())))
        .build(up.clone())
        .unwrap();
    let leader = tokio::spawn(svc.clone().oneshot(Envelope::new("k".to_string())));
    settle().await;
    let hurried = Envelope::new("k".to_string()).with_timeout(Duration::from_millis(100));
    let err = svc.clone().oneshot(hurried).await.unwrap_err();
    assert!(matches!(err, CacheError::DeadlineExceeded(_)));
    assert_eq!(leader.await.unwrap().unwrap(), "k#1");
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn different_keys_load_independently() {
    let up = Upstream::new(Duration::from_millis(10));
    let svc = cache(&up);
    let a = tokio::spawn(svc.clone().oneshot("a".to_string()));
    let b = tokio::spawn(svc.clone().oneshot("b".to_string()));
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert_eq!(up.calls(), 2);
    assert_ne!(a, b);
}

#[derive(Clone)]
struct Panicking;

impl tower::Service<String> for Panicking {
    type Response = String;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, std::io::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: String) -> Self::Future {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("the upstream future panicked");
        })
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_of_a_load_that_panics_get_an_error_not_a_hang() {
    let svc = Cache::builder()
        .key_fn(by_string as fn(&String) -> Option<Key<'_>>)
        .build(Panicking)
        .unwrap();
    let leader = tokio::spawn(svc.clone().oneshot("k".to_string()));
    settle().await;
    let waiters: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot("k".to_string())))
        .collect();
    assert!(leader.await.unwrap_err().is_panic());
    for w in waiters {
        assert!(matches!(w.await.unwrap(), Err(CacheError::LoadPanicked)));
    }
}
