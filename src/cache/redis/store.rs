//! `RedisStore`: the in-process first tier, then Redis.

use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{FutureExt, Shared};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::codec::Codec;
use super::link::{Op, Read, Token};
use super::stats::TierStats;
use crate::breaker::BreakerHandle;
use crate::cache::{CacheKey, Entry, Freshness, Lookup, MemoryStore, Store, StoreStats};
use crate::clock::Ticks;
use crate::worker::Workers;

/// Buckets of the invalidation fence (keys hash into one).
const FENCES: usize = 1024;
/// The most read tokens kept; past it they are dropped (their fills then
/// skip Redis, which is safe).
const MAX_TOKENS: usize = 65_536;
/// The header of a stored value: namespace version, stored (Unix ms), ttl,
/// stale-while-revalidate and stale-if-error (ms), each a u64 LE.
const HEADER: usize = 40;

type GetFuture<T> = Pin<Box<dyn Future<Output = Option<Entry<T>>> + Send>>;
type SharedGet<T> = Shared<GetFuture<T>>;

/// A two-tier cache store: an in-process [`MemoryStore`] first, a Redis
/// server shared by every gateway second. See the [module docs](super).
///
/// Clones share the tiers, the link and the subscriber; the background
/// tasks stop when the last clone is dropped.
pub struct RedisStore<T, C> {
    pub(crate) tier: Arc<Tier<T, C>>,
}

impl<T, C> Clone for RedisStore<T, C> {
    fn clone(&self) -> Self {
        RedisStore {
            tier: self.tier.clone(),
        }
    }
}

impl<T, C> fmt::Debug for RedisStore<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.tier.namespace)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Tier<T, C> {
    pub(crate) first: MemoryStore<T>,
    pub(crate) codec: C,
    pub(crate) tx: mpsc::UnboundedSender<Op>,
    pub(crate) namespace: String,
    /// This gateway's id, so that it skips its own invalidation messages.
    pub(crate) id: u64,
    /// Per bucket of keys, the last time one was invalidated.
    pub(crate) fences: Box<[AtomicU64]>,
    /// The last time everything was invalidated (or the first tier flushed).
    pub(crate) fence_all: AtomicU64,
    /// The versions seen by the oldest Redis read of a key not yet filled.
    pub(crate) tokens: Mutex<HashMap<CacheKey, Token>>,
    /// Redis reads in flight, shared by every miss of their key.
    pub(crate) inflight: Mutex<HashMap<CacheKey, SharedGet<T>>>,
    pub(crate) stats: Arc<TierStats>,
    pub(crate) breaker: BreakerHandle,
    pub(crate) _workers: Workers,
}

fn lock<M>(m: &Mutex<M>) -> MutexGuard<'_, M> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> Ticks {
    Ticks::from_instant(Instant::now())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(word)
}

impl<T, C> Tier<T, C> {
    fn fence_of(&self, key: &[u8]) -> &AtomicU64 {
        &self.fences[(xxhash_rust::xxh3::xxh3_64(key) as usize) % FENCES]
    }

    /// Whether the key (or everything) was invalidated at or after `since`.
    fn fenced(&self, key: &[u8], since: Ticks) -> bool {
        self.fence_of(key).load(Ordering::SeqCst) >= since.0
            || self.fence_all.load(Ordering::SeqCst) >= since.0
    }

    pub(crate) fn message(&self, kind: u8, key: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(9 + key.len());
        m.extend_from_slice(&self.id.to_le_bytes());
        m.push(kind);
        m.extend_from_slice(key);
        m
    }
}

// The first tier is a `MemoryStore`: its writes are done when called, and
// the futures they return are already complete (dropped unpolled).
impl<T: Clone + Send + Sync + 'static, C> Tier<T, C> {
    /// Drops a key from this gateway's first tier, and fences off the
    /// loads of it in progress.
    pub(crate) fn drop_local(&self, key: &[u8]) {
        self.fence_of(key).fetch_max(now().0, Ordering::SeqCst);
        drop(self.first.invalidate(key));
        lock(&self.tokens).remove(key);
    }

    /// Empties this gateway's first tier, and fences off every load in
    /// progress.
    pub(crate) fn flush_local(&self) {
        self.fence_all.fetch_max(now().0, Ordering::SeqCst);
        drop(self.first.invalidate_all());
        lock(&self.tokens).clear();
    }

    /// Puts an entry read from Redis (or loaded) in the first tier, unless
    /// an invalidation of its key came at or after `since`.
    fn fill_local(&self, key: CacheKey, entry: Entry<T>, since: Ticks) -> bool {
        if self.fenced(key.as_bytes(), since) {
            self.stats.fills_fenced.inc();
            return false;
        }
        let bytes = key.clone();
        drop(self.first.insert(key, entry));
        // An invalidation between the check and the insert: undo.
        if self.fenced(bytes.as_bytes(), since) {
            drop(self.first.invalidate(bytes.as_bytes()));
            self.stats.fills_fenced.inc();
            return false;
        }
        true
    }
}

impl<T: Clone + Send + Sync + 'static, C: Codec<T>> Tier<T, C> {
    /// An entry from a Redis read: `None` when absent, written under an
    /// older namespace version, or undecodable.
    fn decode(&self, read: &Read) -> Option<Entry<T>> {
        let data = read.data.as_deref()?;
        if data.len() < HEADER || u64_at(data, 0) != read.token.namespace as u64 {
            return None;
        }
        let value = match self.codec.decode(&data[HEADER..]) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "redis tier: a stored value does not decode");
                return None;
            }
        };
        let age = Duration::from_millis(unix_ms().saturating_sub(u64_at(data, 1)));
        let freshness = Freshness {
            ttl: Duration::from_millis(u64_at(data, 2)),
            stale_while_revalidate: Duration::from_millis(u64_at(data, 3)),
            stale_if_error: Duration::from_millis(u64_at(data, 4)),
        };
        let now = Instant::now();
        let stored = now.checked_sub(age).unwrap_or(now);
        Some(Entry::new(value, stored, freshness))
    }

    /// The bytes written to Redis for `entry`, and its PX: `None` for a
    /// negative entry, one already past its lifetime, or one that does
    /// not encode.
    fn encode(&self, entry: &Entry<T>, token: Token) -> Option<(Vec<u8>, u64)> {
        let value = entry.value().ok()?;
        let f = entry.freshness();
        let age = entry.stored_at().elapsed();
        let px = ms(f.lifetime().saturating_sub(age));
        if px == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(HEADER + 64);
        out.extend_from_slice(&(token.namespace as u64).to_le_bytes());
        out.extend_from_slice(&unix_ms().saturating_sub(ms(age)).to_le_bytes());
        for d in [f.ttl, f.stale_while_revalidate, f.stale_if_error] {
            out.extend_from_slice(&ms(d).to_le_bytes());
        }
        if let Err(e) = self.codec.encode(value, &mut out) {
            tracing::warn!(error = %e, "redis tier: a value does not encode; kept in the first tier only");
            return None;
        }
        Some((out, px))
    }

    /// One Redis read of `key`: fills the first tier from it, and keeps
    /// the versions it saw for the fill that follows a miss.
    async fn fetch(self: Arc<Self>, key: CacheKey) -> Option<Entry<T>> {
        let since = now();
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Op::Get {
            key: key.clone(),
            reply,
        });
        let read = match sent {
            Ok(()) => rx.await.ok().flatten(),
            Err(_) => None,
        };
        lock(&self.inflight).remove(key.as_bytes());
        let read = read?;
        match self.decode(&read) {
            Some(entry) => {
                self.stats.redis_hits.inc();
                self.fill_local(key, entry.clone(), since);
                Some(entry)
            }
            None => {
                let mut tokens = lock(&self.tokens);
                if tokens.len() >= MAX_TOKENS {
                    tokens.clear();
                }
                // The oldest read wins: a fill is checked against the
                // versions seen before its load began.
                tokens.entry(key).or_insert(read.token);
                None
            }
        }
    }
}

impl<T: Clone + Send + Sync + 'static, C: Codec<T>> Store<T> for RedisStore<T, C> {
    type Get = GetFuture<T>;
    type Done = Ready<()>;

    fn lookup(&self, key: &[u8]) -> Lookup<T> {
        match self.tier.first.lookup(key) {
            Lookup::Found(e) => Lookup::Found(e),
            Lookup::Absent | Lookup::Pending => Lookup::Pending,
        }
    }

    /// A first-tier hit is judged in place; a first-tier miss waits for
    /// Redis ([`get`](Store::get)).
    #[inline]
    fn lookup_with<R>(&self, key: &[u8], read: impl FnOnce(Option<&Entry<T>>) -> R) -> Option<R> {
        self.tier
            .first
            .lookup_with(key, |found| found.map(|e| read(Some(e))))
            .flatten()
    }

    /// Joins the Redis read of `key` in flight, or starts one: at most one
    /// per key at a time, however many misses wait for it.
    fn get(&self, key: CacheKey) -> Self::Get {
        let shared = {
            let mut inflight = lock(&self.tier.inflight);
            inflight
                .entry(key.clone())
                .or_insert_with(|| {
                    let fut: GetFuture<T> = Box::pin(self.tier.clone().fetch(key));
                    fut.shared()
                })
                .clone()
        };
        Box::pin(shared)
    }

    /// Into the first tier unless an invalidation came after its load
    /// began; into Redis, version-checked, when a Redis read of the key
    /// came first.
    fn insert(&self, key: CacheKey, entry: Entry<T>) -> Self::Done {
        let tier = &self.tier;
        let began = Ticks::from_instant(entry.stored_at())
            .0
            .saturating_sub(u64::try_from(entry.load_time().as_nanos()).unwrap_or(u64::MAX));
        let token = lock(&tier.tokens).remove(key.as_bytes());
        let written = token.and_then(|t| tier.encode(&entry, t).map(|w| (w, t)));
        if !tier.fill_local(key.clone(), entry, Ticks(began)) {
            return ready(());
        }
        if let Some(((payload, px), token)) = written {
            let _ = tier.tx.send(Op::Fill {
                key,
                payload,
                px,
                token,
            });
        }
        ready(())
    }

    /// From the first tier at once; from Redis and every other gateway's
    /// first tier in the order of the calls.
    fn invalidate(&self, key: &[u8]) -> Self::Done {
        let tier = &self.tier;
        tier.drop_local(key);
        let message = tier.message(b'k', key);
        let _ = tier.tx.send(Op::Invalidate {
            key: CacheKey::copy_from(key),
            message,
        });
        ready(())
    }

    fn invalidate_all(&self) -> Self::Done {
        let tier = &self.tier;
        tier.flush_local();
        let message = tier.message(b'a', &[]);
        let _ = tier.tx.send(Op::InvalidateAll { message });
        ready(())
    }

    fn stats(&self) -> StoreStats {
        self.tier.first.stats()
    }
}
