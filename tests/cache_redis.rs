//! The Redis tier against a real server: `TOWER_FLEET_REDIS_URL`, or a
//! `redis-server` this test starts on a free loopback port (and kills).
#![cfg(feature = "redis")]

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::breaker::BreakerState;
use tower_fleet::cache::redis::{JsonCodec, RedisStore, RedisTierConfig};
use tower_fleet::cache::{Cache, CacheError, CacheHandle, Store};
use tower_fleet::key::Key;
use tower_fleet::BoxError;

mod redis_server;
use redis_server::RedisServer;

/// Waits (generously) until `cond` holds, polling it between short pauses.
async fn until<F: Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn namespace(test: &str) -> String {
    format!("test-{test}-{}", rand::random::<u32>())
}

fn config(ns: &str) -> RedisTierConfig {
    let mut c = RedisTierConfig::default();
    c.namespace = ns.to_owned();
    c.breaker.open_duration = Duration::from_millis(200);
    c.breaker.max_open_duration = Duration::from_millis(400);
    c
}

/// The origin: answers `"{key}@v{version}"` after `latency`, counting calls.
#[derive(Clone)]
struct Origin {
    version: Arc<AtomicU64>,
    calls: Arc<AtomicUsize>,
    latency: Duration,
}

impl Origin {
    fn new(latency: Duration) -> Origin {
        Origin {
            version: Arc::new(AtomicU64::new(1)),
            calls: Arc::new(AtomicUsize::new(0)),
            latency,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

type TierStore = RedisStore<String, JsonCodec<String>>;

/// One gateway: a cache over its own connection to Redis and the origin.
fn gateway(
    url: &str,
    ns: &str,
    origin: &Origin,
    ttl: Duration,
) -> (
    impl Service<String, Response = String, Error = CacheError> + Clone,
    CacheHandle<String, TierStore>,
    TierStore,
) {
    let store = RedisStore::connect(url, config(ns), JsonCodec::new()).expect("the store connects");
    let o = origin.clone();
    let svc = service_fn(move |key: String| {
        let o = o.clone();
        async move {
            o.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(o.latency).await;
            Ok::<_, BoxError>(format!("{key}@v{}", o.version.load(Ordering::SeqCst)))
        }
    });
    let cache = Cache::builder()
        .ttl(ttl)
        .key(|k: &String| Some(Key::from(k.as_str())))
        .store(store.clone())
        .build(svc)
        .expect("the cache builds");
    let handle = cache.handle();
    (cache, handle, store)
}

async fn read<S>(svc: &S, key: &str) -> String
where
    S: Service<String, Response = String, Error = CacheError> + Clone,
{
    svc.clone()
        .oneshot(key.to_owned())
        .await
        .expect("a read never fails")
}

/// Waits until `store`'s link to Redis works: a key read through `svc`
/// (named from `prefix`, fresh on each try) has been filled into Redis. The
/// link connects lazily, and on a busy machine its first commands may time
/// out; a Redis read that fails is a miss that is not filled.
async fn warm_up<S>(svc: &S, store: &TierStore, prefix: &str)
where
    S: Service<String, Response = String, Error = CacheError> + Clone,
{
    let mut n = 0u32;
    until("the link to redis works", || {
        n += 1;
        let (svc, store, key) = (svc.clone(), store.clone(), format!("{prefix}-{n}"));
        async move {
            read(&svc, &key).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.snapshot().fills >= 1
        }
    })
    .await;
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_written_with_their_ttl_and_are_gone_from_redis_after_it() {
    let server = RedisServer::start();
    let ns = namespace("ttl");
    let origin = Origin::new(Duration::ZERO);
    let ttl = Duration::from_millis(800);
    let (a, _, store_a) = gateway(&server.url, &ns, &origin, ttl);
    let (b, _, store_b) = gateway(&server.url, &ns, &origin, ttl);
    warm_up(&a, &store_a, "warm-a").await;
    warm_up(&b, &store_b, "warm-b").await;
    let (calls, fills_a, hits_b) = (
        origin.calls(),
        store_a.snapshot().fills,
        store_b.snapshot().redis_hits,
    );

    assert_eq!(read(&a, "k").await, "k@v1");
    until("the fill lands in redis", || async {
        store_a.snapshot().fills == fills_a + 1
    })
    .await;
    let mut conn = redis_conn(&server.url).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{ns}:d:k"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 800, "PX set from the ttl: {pttl}ms");

    // Another gateway reads it from redis, not from the origin.
    assert_eq!(read(&b, "k").await, "k@v1");
    assert_eq!(origin.calls(), calls + 1);
    assert_eq!(store_b.snapshot().redis_hits, hits_b + 1);

    // Redis drops it after its ttl: a new gateway then asks the origin.
    until("redis expires the key", || {
        let mut conn = conn.clone();
        let key = format!("{ns}:d:k");
        async move {
            let n: i64 = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            n == 0
        }
    })
    .await;
    let (c, _, _) = gateway(&server.url, &ns, &origin, ttl);
    assert_eq!(read(&c, "k").await, "k@v1");
    assert_eq!(origin.calls(), calls + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_gateway_reaches_the_other_once_invalidated_and_never_reverts() {
    let server = RedisServer::start();
    let ns = namespace("fanout");
    let origin = Origin::new(Duration::ZERO);
    let ttl = Duration::from_secs(60);
    let (a, handle_a, _) = gateway(&server.url, &ns, &origin, ttl);
    let (b, _, store_b) = gateway(&server.url, &ns, &origin, ttl);
    until("b subscribes", || async {
        store_b.snapshot().subscriptions >= 1
    })
    .await;

    assert_eq!(read(&a, "k").await, "k@v1");
    assert_eq!(read(&b, "k").await, "k@v1");
    assert!(
        store_b.first_tier().len() == 1,
        "b holds k in its first tier"
    );

    // The write: the origin changes, and gateway a invalidates the key.
    origin.version.store(2, Ordering::SeqCst);
    handle_a.invalidate("k").await;
    // Read-your-writes through the gateway that wrote.
    assert_eq!(read(&a, "k").await, "k@v2");

    // Through b: the old value until the invalidation arrives, then the new
    // one, and never the old one again.
    until("b sees the write", || {
        let b = b.clone();
        async move { read(&b, "k").await == "k@v2" }
    })
    .await;
    assert!(store_b.snapshot().remote_invalidations >= 1);
    for _ in 0..200 {
        assert_eq!(read(&b, "k").await, "k@v2");
        assert_eq!(read(&a, "k").await, "k@v2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_survive_redis_dying_and_the_tier_comes_back_flushed() {
    // Killing the server needs one of our own.
    let mut server = RedisServer::own();
    let ns = namespace("outage");
    let origin = Origin::new(Duration::ZERO);
    let ttl = Duration::from_secs(60);
    let (a, _, store) = gateway(&server.url, &ns, &origin, ttl);
    until("a subscribes", || async {
        store.snapshot().subscriptions == 1
    })
    .await;
    assert_eq!(read(&a, "held").await, "held@v1");
    until("the fill lands", || async { store.snapshot().fills == 1 }).await;

    server.kill();
    // Every request still succeeds (first tier, then origin), and the
    // breaker around redis opens.
    let mut n = 0;
    until("the breaker opens", || {
        n += 1;
        let a = a.clone();
        let store = store.clone();
        async move {
            assert_eq!(read(&a, &format!("down{n}")).await, format!("down{n}@v1"));
            assert_eq!(read(&a, "held").await, "held@v1");
            store.breaker().state() == BreakerState::Open
        }
    })
    .await;
    assert!(store.first_tier().lookup_with(b"held", |e| e.is_some()) == Some(true));

    server.restart();
    until("the subscriber resubscribes", || async {
        store.snapshot().subscriptions == 2
    })
    .await;
    // Flushed on resubscribe: what the first tier held may have missed
    // invalidations.
    assert!(store.first_tier().lookup_with(b"held", |e| e.is_some()) != Some(true));

    // The tier is used again: a new key's fill lands in redis.
    let fills = store.snapshot().fills;
    let mut m = 0;
    until("redis takes fills again", || {
        m += 1;
        let a = a.clone();
        let store = store.clone();
        async move {
            assert_eq!(read(&a, &format!("up{m}")).await, format!("up{m}@v1"));
            store.snapshot().fills > fills
        }
    })
    .await;
    assert_ne!(store.breaker().state(), BreakerState::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_makes_one_redis_get_and_one_origin_call_per_gateway() {
    let server = RedisServer::start();
    let ns = namespace("stampede");
    for _ in 0..2 {
        let origin = Origin::new(Duration::from_millis(50));
        let (g, _, store) = gateway(&server.url, &ns, &origin, Duration::from_secs(60));
        let before = store.snapshot().gets;
        let mut calls = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let mut svc = g.clone();
            svc.ready().await.unwrap();
            calls.push(svc.call("hot".to_owned()));
        }
        for out in join_all(calls).await {
            assert_eq!(out.unwrap(), "hot@v1");
        }
        assert!(
            store.snapshot().gets - before <= 1,
            "{:?}",
            store.snapshot()
        );
        assert!(origin.calls() <= 1, "origin calls: {}", origin.calls());
    }
}
