//! Stores and policies: an asynchronous store, the weigher, evictions, and
//! the policy hook (secondary keys, per-response freshness, revalidation).

mod cache_common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_common::Upstream;
use tower::{service_fn, ServiceExt};
use tower_fleet::cache::{
    Cache, CacheKey, Entry, Freshness, Lookup, MemoryStore, Policy, Store, StoreStats,
};
use tower_fleet::key::Key;

/// A store that must wait for every read: the in-memory store behind a
/// 10ms delay, as a remote tier would be.
#[derive(Clone)]
struct Remote {
    inner: MemoryStore<String>,
    gets: Arc<AtomicUsize>,
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Store<String> for Remote {
    type Get = Boxed<Option<Entry<String>>>;
    type Done = Boxed<()>;

    fn lookup(&self, _key: &[u8]) -> Lookup<String> {
        Lookup::Pending
    }

    fn get(&self, key: CacheKey) -> Self::Get {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match inner.lookup(key.as_bytes()) {
                Lookup::Found(e) => Some(e),
                _ => None,
            }
        })
    }

    fn insert(&self, key: CacheKey, entry: Entry<String>) -> Self::Done {
        // Issued at the call, completed later: the ordering contract.
        drop(self.inner.insert(key, entry));
        Box::pin(tokio::time::sleep(Duration::from_millis(10)))
    }

    fn invalidate(&self, key: &[u8]) -> Self::Done {
        drop(self.inner.invalidate(key));
        Box::pin(tokio::time::sleep(Duration::from_millis(10)))
    }

    fn invalidate_all(&self) -> Self::Done {
        drop(self.inner.invalidate_all());
        Box::pin(async {})
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

#[allow(clippy::ptr_arg)] // the cache's request type is `String`
fn key(req: &String) -> Option<Key<'_>> {
    Some(Key::from(req.as_str()))
}

#[tokio::test(start_paused = true)]
async fn an_asynchronous_store_is_awaited_inside_the_response_future() {
    let up = Upstream::new(Duration::ZERO);
    let remote = Remote {
        inner: MemoryStore::new(100).unwrap(),
        gets: Arc::new(AtomicUsize::new(0)),
    };
    let svc = Cache::builder()
        .store(remote.clone())
        .key(key)
        .build(up.clone())
        .unwrap();
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#1");
    let start = tokio::time::Instant::now();
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#1");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(10),
        "the hit waited for the store"
    );
    assert_eq!((up.calls(), remote.gets.load(Ordering::SeqCst)), (1, 2));
    svc.handle().invalidate("k").await;
    assert_eq!(svc.clone().oneshot("k".to_string()).await.unwrap(), "k#2");
    assert_eq!(svc.handle().snapshot().entries, 1);
}

#[tokio::test(start_paused = true)]
async fn the_weigher_bounds_the_store_and_evictions_are_counted() {
    let up = Upstream::new(Duration::ZERO);
    let svc = Cache::builder()
        .max_entries(64)
        .weigher(1000, |_k: &[u8], v: &String| v.len() as u64 * 10)
        .key(key)
        .build(up.clone())
        .unwrap();
    for i in 0..200 {
        svc.clone().oneshot(format!("key-{i:03}")).await.unwrap();
    }
    let snap = svc.handle().snapshot();
    // Each answer ("key-000#1" and so on) weighs at least 90: at most 11 fit.
    assert!(snap.entries <= 11, "{snap:?}");
    assert!(snap.evictions >= 189, "{snap:?}");
}

#[test]
fn a_zero_capacity_is_a_config_error_naming_the_field() {
    let err = MemoryStore::<String>::new(0).unwrap_err();
    assert_eq!(err.field(), "max_entries");
    let err = Cache::<(), String>::builder()
        .max_entries(0)
        .key(key)
        .build(Upstream::new(Duration::ZERO))
        .unwrap_err();
    assert_eq!(err.field(), "max_entries");
    let err = Cache::<(), String>::builder()
        .ttl(Duration::ZERO)
        .key(key)
        .build(Upstream::new(Duration::ZERO))
        .unwrap_err();
    assert_eq!(err.field(), "ttl");
}

/// A toy HTTP-like policy: requests are `"path|lang|etag"`, responses
/// `"status body etag"`. The language is a secondary key (`Vary`); `max-age`
/// comes from the body; a stale entry is revalidated with its etag and a
/// `304` refreshes it.
struct Http {
    revalidations: Arc<AtomicUsize>,
}

impl Policy<String, String> for Http {
    fn secondary_key(&self, req: &String, out: &mut Vec<u8>) -> bool {
        let lang = req.split('|').nth(1).unwrap_or("");
        out.extend_from_slice(lang.as_bytes());
        true
    }

    fn freshness(&self, res: &String, default: Freshness) -> Option<Freshness> {
        if res.contains("no-store") {
            return None;
        }
        match res
            .split(' ')
            .nth(1)
            .and_then(|b| b.strip_prefix("max-age="))
        {
            Some(secs) => Some(Freshness::ttl(Duration::from_secs(secs.parse().ok()?))),
            None => Some(default),
        }
    }

    fn revalidation(&self, req: &String, stale: &String) -> Option<String> {
        self.revalidations.fetch_add(1, Ordering::SeqCst);
        let etag = stale.split(' ').nth(2)?;
        let mut parts: Vec<&str> = req.split('|').collect();
        parts.truncate(2);
        Some(format!(
            "{}|{}|{etag}",
            parts[0],
            parts.get(1).unwrap_or(&"")
        ))
    }

    fn revalidated(&self, stale: &String, answer: String) -> String {
        if answer.starts_with("304") {
            stale.clone()
        } else {
            answer
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_policy_hook_varies_keys_sets_freshness_and_revalidates_stale_entries() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // The origin: body per language, max-age 5s, etag "e1"; answers 304 to If-None-Match: e1.
    let origin = service_fn(move |req: String| {
        c.fetch_add(1, Ordering::SeqCst);
        let parts: Vec<String> = req.split('|').map(str::to_string).collect();
        async move {
            let answer = match parts.get(2).map(String::as_str) {
                Some("e1") => "304 max-age=5 e1".to_string(),
                _ => format!(
                    "200 max-age=5 e1 {}",
                    parts.get(1).cloned().unwrap_or_default()
                ),
            };
            Ok::<_, std::io::Error>(answer)
        }
    });
    let policy = Http {
        revalidations: Arc::new(AtomicUsize::new(0)),
    };
    let revalidations = policy.revalidations.clone();
    let svc = Cache::builder()
        .ttl(Duration::from_secs(3600))
        .key(|req: &String| req.split('|').next().map(Key::from))
        .policy(policy)
        .build(origin)
        .unwrap();
    let get = |r: &str| svc.clone().oneshot(r.to_string());
    assert_eq!(get("/a|en").await.unwrap(), "200 max-age=5 e1 en");
    assert_eq!(get("/a|fr").await.unwrap(), "200 max-age=5 e1 fr");
    assert_eq!(get("/a|en").await.unwrap(), "200 max-age=5 e1 en");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one load per variant");
    // max-age=5 from the response, not the configured hour.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(get("/a|en").await.unwrap(), "200 max-age=5 e1 en");
    assert_eq!(revalidations.load(Ordering::SeqCst), 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "revalidated with a conditional request"
    );
    // The 304 refreshed the entry: a hit again.
    assert_eq!(get("/a|en").await.unwrap(), "200 max-age=5 e1 en");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Invalidating the primary key drops every variant.
    svc.handle().invalidate("/a").await;
    get("/a|en").await.unwrap();
    get("/a|fr").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn a_slow_store_read_is_bounded_by_the_request_deadline() {
    use tower_fleet::cache::CacheError;
    use tower_fleet::signal::Envelope;
    let remote = Remote {
        inner: MemoryStore::new(100).unwrap(),
        gets: Arc::new(AtomicUsize::new(0)),
    };
    let svc = Cache::builder()
        .store(remote)
        .key(|r: &Envelope<String>| Some(Key::from(r.payload.as_str())))
        .build(Upstream::new(Duration::ZERO))
        .unwrap();
    let hurried = Envelope::new("k".to_string()).with_timeout(Duration::from_millis(5));
    let err = svc.clone().oneshot(hurried).await.unwrap_err();
    assert!(matches!(err, CacheError::DeadlineExceeded(_)), "{err:?}");
    let patient = Envelope::new("k".to_string());
    assert_eq!(svc.clone().oneshot(patient).await.unwrap(), "k#1");
}
