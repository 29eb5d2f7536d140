//! Expiry and stale serving on paused time: TTL, time-to-idle,
//! stale-while-revalidate, stale-if-error, negative caching, early refresh,
//! and the bound on a miss's wait for readiness.

mod cache_common;

use std::time::Duration;

use cache_common::{get, key, poll_once, settle, Upstream, UpstreamError};
use tower::{service_fn, ServiceExt};
use tower_fleet::cache::{Cache, CacheError};
use tower_fleet::classify::Outcome;
use tower_fleet::key::Key;
use tower_fleet::signal::{find_unavailable, ErrorSignals, Unavailable, UnavailableKind};

const TTL: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .ttl(TTL)
        .key(key)
        .build(up.clone())
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    assert_eq!(up.calls(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#2");
    let snap = svc.handle().snapshot();
    assert_eq!(
        (snap.hits, snap.misses, snap.loads, snap.entries),
        (1, 2, 2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn entries_idle_longer_than_time_to_idle_expire_before_their_ttl() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .ttl(Duration::from_secs(3600))
        .time_to_idle(Duration::from_secs(10))
        .key(key)
        .build(up.clone())
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    // Read every 6s: never idle for 10s, so it stays.
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#2");
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_exactly_once() {
    let up = Upstream::new(Duration::from_secs(1));
    let svc = Cache::builder()
        .ttl(TTL)
        .stale_while_revalidate(Duration::from_secs(5))
        .key(key)
        .build(up.clone())
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    tokio::time::advance(TTL).await;
    // Ten stale hits: each ready on its first poll, with the stale value.
    for _ in 0..10 {
        let mut fut = Box::pin(svc.clone().oneshot("k".to_string()));
        match poll_once(&mut fut).await {
            std::task::Poll::Ready(r) => assert_eq!(r.unwrap(), "k#1"),
            std::task::Poll::Pending => panic!("a stale hit waited"),
        }
    }
    settle().await;
    assert_eq!(up.calls(), 2, "exactly one refresh");
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#2");
    let snap = svc.handle().snapshot();
    assert_eq!((snap.stale_hits, snap.refreshes, snap.loads), (10, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn past_the_stale_while_revalidate_window_a_request_waits_for_a_fresh_load() {
    let up = Upstream::new(Duration::ZERO);
    up.fail(true); // refreshes fail: the stale entry is never replaced
    let svc = Cache::builder()
        .ttl(TTL)
        .stale_while_revalidate(Duration::from_secs(5))
        .key(key)
        .build(up.clone())
        .unwrap();
    svc.handle().insert("k", "old".to_string()).await;
    tokio::time::advance(TTL + Duration::from_secs(4)).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "old");
    settle().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(get(&svc, "k").await, Err(CacheError::Upstream(_))));
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_the_stale_value_within_its_window_and_the_error_after() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .ttl(TTL)
        .stale_if_error(Duration::from_secs(60))
        .key(key)
        .build(up.clone())
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    up.fail(true);
    tokio::time::advance(TTL).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    assert_eq!(
        up.calls(),
        3,
        "each stale-if-error answer tried upstream first"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let err = get(&svc, "k").await.unwrap_err();
    assert!(matches!(err, CacheError::Upstream(_)), "{err:?}");
    assert_eq!(svc.handle().snapshot().stale_if_error, 2);
    // A success after the failures stores a fresh value again.
    up.fail(false);
    assert_eq!(get(&svc, "k").await.unwrap(), "k#5");
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_reacts_to_the_unavailable_signal_whatever_the_classifier_says() {
    // An inner stack whose breaker is open: it answers with the shared signal.
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let o = open.clone();
    let inner = service_fn(move |req: String| {
        let open = o.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if open {
                Err::<String, tower_fleet::BoxError>(Box::new(Unavailable::new(
                    UnavailableKind::CircuitOpen,
                )))
            } else {
                Ok(format!("{req}!"))
            }
        }
    });
    let svc = Cache::builder()
        .ttl(TTL)
        .stale_if_error(Duration::from_secs(60))
        .key(key)
        // A classifier that never calls anything a failure.
        .classify(|_: &Result<String, tower_fleet::BoxError>| Outcome::Ignore)
        .build(inner)
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "k!");
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::advance(TTL).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k!");
    // Without a stale entry, the error carries the signal through the cache.
    let err = get(&svc, "other").await.unwrap_err();
    assert_eq!(
        err.unavailable().unwrap().kind(),
        UnavailableKind::CircuitOpen
    );
    assert_eq!(
        find_unavailable(&err).unwrap().kind(),
        UnavailableKind::CircuitOpen
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_the_classifier_calls_a_failure_is_answered_stale_and_never_stored() {
    let bad = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b = bad.clone();
    let inner = service_fn(move |_req: String| {
        let bad = b.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            Ok::<_, std::io::Error>(if bad {
                "503".to_string()
            } else {
                "200".to_string()
            })
        }
    });
    let svc = Cache::builder()
        .ttl(TTL)
        .stale_if_error(Duration::from_secs(60))
        .key(key)
        .classify(|r: &Result<String, std::io::Error>| match r {
            Ok(s) if s.as_str() == "503" => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .build(inner)
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "200");
    bad.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::advance(TTL).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "200");
    // Without a stale entry the caller sees the response as it is; it is not stored.
    assert_eq!(get(&svc, "fresh").await.unwrap(), "503");
    bad.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&svc, "fresh").await.unwrap(), "200");
}

#[tokio::test(start_paused = true)]
async fn errors_are_cached_for_the_negative_ttl_only_when_it_is_set() {
    let up = Upstream::new(Duration::ZERO);
    up.fail(true);
    let plain = Cache::builder().key(key).build(up.clone()).unwrap();
    for _ in 0..3 {
        assert!(get(&plain, "k").await.is_err());
    }
    assert_eq!(up.calls(), 3, "no negative caching by default");

    let up = Upstream::new(Duration::ZERO);
    up.fail(true);
    let svc = Cache::builder()
        .negative_ttl(Duration::from_secs(1))
        .key(key)
        .build(up.clone())
        .unwrap();
    let first = get(&svc, "k").await.unwrap_err();
    for _ in 0..10 {
        let again = get(&svc, "k").await.unwrap_err();
        let (CacheError::Upstream(a), CacheError::Upstream(b)) = (&first, &again) else {
            panic!("expected upstream errors");
        };
        assert!(tower_fleet::cache::SharedError::ptr_eq(a, b));
    }
    assert_eq!(up.calls(), 1, "one upstream call per key per negative TTL");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(get(&svc, "k").await.is_err());
    assert_eq!(up.calls(), 2);
    up.fail(false);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#3");
    assert_eq!(svc.handle().snapshot().negative_hits, 10);
    let _ = UpstreamError(0);
}

#[tokio::test(start_paused = true)]
async fn a_miss_waits_for_readiness_only_up_to_the_ready_timeout_and_hits_do_not_wait() {
    let (mock, mut handle) = tower_test::mock::pair::<String, String>();
    handle.allow(0);
    let svc = Cache::builder()
        .ready_timeout(Duration::from_millis(250))
        .key(key)
        .build(mock)
        .unwrap();
    svc.handle().insert("hot", "cached".to_string()).await;
    // A hit is answered although the inner service is not ready.
    assert_eq!(get(&svc, "hot").await.unwrap(), "cached");
    let start = tokio::time::Instant::now();
    let err = get(&svc, "cold").await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let CacheError::Overloaded(signal) = &err else {
        panic!("expected a load-shed error, got {err:?}");
    };
    assert_eq!(signal.kind(), UnavailableKind::Overloaded);
    assert_eq!(
        err.unavailable().unwrap().kind(),
        UnavailableKind::Overloaded
    );
    assert_eq!(svc.handle().snapshot().load_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn early_refresh_refreshes_a_hot_key_before_it_expires() {
    let up = Upstream::new(Duration::from_secs(1));
    let svc = Cache::builder()
        .ttl(Duration::from_secs(100))
        .early_refresh(1.0)
        .key(key)
        .build(up.clone())
        .unwrap();
    assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    // Far from expiry (99s left for a 1s load) nothing is refreshed early.
    for _ in 0..100 {
        assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    }
    settle().await;
    assert_eq!(up.calls(), 1);
    // 0.1s before expiry, a refresh is all but certain within 100 hits: exactly one runs.
    tokio::time::advance(Duration::from_millis(98_900)).await;
    for _ in 0..100 {
        assert_eq!(get(&svc, "k").await.unwrap(), "k#1");
    }
    settle().await;
    assert_eq!(up.calls(), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(get(&svc, "k").await.unwrap(), "k#2");
    assert_eq!(svc.handle().snapshot().refreshes, 1);
}

#[tokio::test(start_paused = true)]
async fn cache_if_decides_which_responses_are_stored_and_requests_without_a_key_pass_through() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .key(|req: &String| {
            if req.starts_with("nocache") {
                None
            } else {
                Some(Key::from(req.as_str()))
            }
        })
        .cache_if(|res: &String| !res.starts_with("skip"))
        .build(up.clone())
        .unwrap();
    assert_eq!(get(&svc, "skip").await.unwrap(), "skip#1");
    assert_eq!(get(&svc, "skip").await.unwrap(), "skip#2");
    assert_eq!(get(&svc, "keep").await.unwrap(), "keep#3");
    assert_eq!(get(&svc, "keep").await.unwrap(), "keep#3");
    assert_eq!(get(&svc, "nocache").await.unwrap(), "nocache#4");
    assert_eq!(get(&svc, "nocache").await.unwrap(), "nocache#5");
    assert_eq!(svc.handle().snapshot().passed_through, 2);
}
