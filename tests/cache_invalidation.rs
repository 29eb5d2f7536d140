//! Invalidation: a load that started before an invalidation answers its own
//! callers but never fills the store; a writer never reads its old value back.

mod cache_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_common::{settle, Upstream};
use tower::{service_fn, ServiceExt};
use tower_fleet::cache::Cache;
use tower_fleet::key::Key;

#[allow(clippy::ptr_arg)] // the cache's request type is `String`
fn key(req: &String) -> Option<Key<'_>> {
    Some(Key::from(req.as_str()))
}

#[tokio::test(start_paused = true)]
async fn a_load_in_flight_during_an_invalidation_answers_its_callers_but_is_not_stored() {
    let (up, gate) = Upstream::gated();
    let svc = Cache::builder().key(key).build(up.clone()).unwrap();
    let first = tokio::spawn(svc.clone().oneshot("k".to_string()));
    let second = tokio::spawn(svc.clone().oneshot("k".to_string()));
    settle().await;
    assert_eq!(up.calls(), 1);
    svc.handle().invalidate("k").await;
    // A request after the invalidation does not join the old load.
    let third = tokio::spawn(svc.clone().oneshot("k".to_string()));
    settle().await;
    assert_eq!(up.calls(), 2);
    gate.add_permits(2);
    assert_eq!(first.await.unwrap().unwrap(), "k#1");
    assert_eq!(second.await.unwrap().unwrap(), "k#1");
    assert_eq!(third.await.unwrap().unwrap(), "k#2");
    // The old load did not fill the store; the new one did.
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#2");
    assert_eq!(up.calls(), 2);
    assert_eq!(svc.handle().snapshot().not_stored, 1);
}

#[tokio::test(start_paused = true)]
async fn after_an_invalidation_the_next_read_loads_again() {
    let (up, gate) = Upstream::gated();
    let svc = Cache::builder().key(key).build(up.clone()).unwrap();
    let slow = tokio::spawn(svc.clone().oneshot("k".to_string()));
    settle().await;
    svc.handle().invalidate("k").await;
    gate.add_permits(1);
    assert_eq!(slow.await.unwrap().unwrap(), "k#1");
    gate.add_permits(1);
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#2");
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalidate_all_fences_every_load_in_flight() {
    let (up, gate) = Upstream::gated();
    let svc = Cache::builder().key(key).build(up.clone()).unwrap();
    let loads: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| tokio::spawn(svc.clone().oneshot(k.to_string())))
        .collect();
    settle().await;
    svc.handle().invalidate_all().await;
    gate.add_permits(3);
    for l in loads {
        l.await.unwrap().unwrap();
    }
    assert_eq!(svc.handle().snapshot().entries, 0);
    assert_eq!(svc.handle().snapshot().not_stored, 3);
}

#[tokio::test(start_paused = true)]
async fn an_inserted_value_is_not_overwritten_by_an_older_load() {
    let (up, gate) = Upstream::gated();
    let svc = Cache::builder().key(key).build(up.clone()).unwrap();
    let slow = tokio::spawn(svc.clone().oneshot("k".to_string()));
    settle().await;
    svc.handle().insert("k", "written".to_string()).await;
    gate.add_permits(1);
    assert_eq!(slow.await.unwrap().unwrap(), "k#1");
    assert_eq!(
        svc.clone().oneshot("k".to_string()).await.unwrap(),
        "written"
    );
}

/// Writers bump a version in a "database", invalidate, then read through the
/// cache while readers hammer the same keys on another thread: a writer must
/// never read back a version older than its own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_invalidates_after_its_write_never_reads_its_old_value_back() {
    let db: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
    let reads = db.clone();
    let calls = Arc::new(AtomicU64::new(0));
    let inner = service_fn(move |k: u64| {
        let db = reads.clone();
        // Loads of varied length, so that some are still in flight when the
        // next write and invalidation of their key land.
        let n = calls.fetch_add(1, Ordering::Relaxed);
        let yields = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as usize;
        async move {
            let v = db[k as usize].load(Ordering::SeqCst);
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            Ok::<_, std::convert::Infallible>(v)
        }
    });
    let svc = Cache::builder()
        .ttl(Duration::from_secs(3600))
        .key(|k: &u64| Some(Key::from(*k)))
        .build(inner)
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let svc = svc.clone();
            let stop = stop.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                let mut i = r as u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = svc.clone().oneshot(i % 2).await;
                    progress.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for round in 0..1500u64 {
        // Let the readers make progress between writes, so that their loads
        // overlap the writes (bounded: this only paces the loop).
        let seen = progress.load(Ordering::Relaxed);
        for _ in 0..10_000 {
            if progress.load(Ordering::Relaxed) > seen {
                break;
            }
            tokio::task::yield_now().await;
        }
        let k = round % 2;
        let written = db[k as usize].fetch_add(1, Ordering::SeqCst) + 1;
        svc.handle().invalidate(Key::from(k)).await;
        // Every read from now on must see the write, including reads after
        // the loads that read the old version have finished.
        for _ in 0..8 {
            let read = svc.clone().oneshot(k).await.unwrap();
            assert!(
                read >= written,
                "round {round}: wrote {written}, read back {read}"
            );
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        }
    }
    assert!(svc.handle().snapshot().hits > 0, "the readers ran");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}

/// Requests named `write:<key>` change `<key>`, `peek:<key>` bypass the
/// cache; answers from the store say how long they were stored.
struct Modes;

impl tower_fleet::cache::Policy<String, String> for Modes {
    fn request_mode(&self, req: &String) -> tower_fleet::cache::RequestMode {
        use tower_fleet::cache::RequestMode;
        if req.starts_with("write:") {
            RequestMode::Invalidate
        } else if req.starts_with("peek:") {
            RequestMode::Bypass
        } else {
            RequestMode::Lookup
        }
    }
    fn freshness(
        &self,
        _response: &String,
        default: tower_fleet::cache::Freshness,
    ) -> Option<tower_fleet::cache::Freshness> {
        Some(default)
    }
    fn served(&self, response: String, age: Duration) -> String {
        format!("{response} aged {}s", age.as_secs())
    }
}

#[allow(clippy::ptr_arg)]
fn unprefixed(req: &String) -> Option<Key<'_>> {
    let k = req.split_once(':').map_or(req.as_str(), |(_, k)| k);
    Some(Key::from(k))
}

#[tokio::test(start_paused = true)]
async fn a_request_that_changes_its_key_invalidates_it_when_answered() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .key(unprefixed)
        .ttl(Duration::from_secs(60))
        .policy(Modes)
        .build(up.clone())
        .unwrap();
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#1");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(
        svc.clone().oneshot("k".to_string()).await.unwrap(),
        "k#1 aged 3s",
        "answers from the store pass through `served`"
    );
    // Passed through, never answered from the store nor stored.
    assert_eq!(
        svc.clone().oneshot("peek:k".to_string()).await.unwrap(),
        "peek:k#2"
    );
    assert_eq!(
        svc.clone().oneshot("k".to_string()).await.unwrap(),
        "k#1 aged 3s"
    );
    // A write goes upstream and invalidates the key.
    assert_eq!(
        svc.clone().oneshot("write:k".to_string()).await.unwrap(),
        "write:k#3"
    );
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#4");
    assert_eq!(up.calls(), 4);
    assert_eq!(svc.handle().snapshot().passed_through, 2);
}

#[tokio::test(start_paused = true)]
async fn a_write_dropped_after_it_was_sent_still_invalidates_its_key() {
    let (up, gate) = Upstream::gated();
    let svc = Cache::builder()
        .key(unprefixed)
        .policy(Modes)
        .build(up.clone())
        .unwrap();
    gate.add_permits(1);
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#1");
    let write = tokio::spawn(svc.clone().oneshot("write:k".to_string()));
    settle().await;
    assert_eq!(up.calls(), 2, "the write was sent");
    write.abort();
    let _ = write.await;
    gate.add_permits(1);
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#3");
}
