//! The `Store` trait: where entries live, in memory or elsewhere.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};

use super::entry::Entry;
use crate::key::Key;

/// An owned cache key: the key's bytes, compared and hashed as bytes.
///
/// Integer keys of up to 16 bytes are held inline; others own their bytes.
/// Lookups borrow instead: [`Store::lookup`] takes `&[u8]`, and
/// `CacheKey: Borrow<[u8]>`, so a hit never builds a `CacheKey`.
#[derive(Clone)]
pub struct CacheKey(Key<'static>);

impl CacheKey {
    /// The key's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// A key of these bytes (copied).
    pub fn copy_from(bytes: &[u8]) -> CacheKey {
        CacheKey(Key::borrowed(bytes).into_owned())
    }
}

impl From<Key<'_>> for CacheKey {
    fn from(key: Key<'_>) -> Self {
        CacheKey(key.into_owned())
    }
}

impl PartialEq for CacheKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    // Must hash exactly as `[u8]` does, for borrowed lookups.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for CacheKey {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for CacheKey {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cache{:?}", self.0)
    }
}

/// The answer of a synchronous [`Store::lookup`].
#[derive(Debug)]
pub enum Lookup<T> {
    /// The store holds this entry for the key.
    Found(Entry<T>),
    /// The store holds nothing for the key.
    Absent,
    /// The store cannot answer without waiting: the cache calls
    /// [`Store::get`] and awaits it.
    Pending,
}

/// Counters a store may report in the cache's snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Entries held now, if the store knows.
    pub entries: Option<u64>,
    /// Entries evicted to make room so far, if the store knows.
    pub evictions: Option<u64>,
}

impl StoreStats {
    /// Counters with these values.
    pub fn new(entries: Option<u64>, evictions: Option<u64>) -> StoreStats {
        StoreStats { entries, evictions }
    }
}

/// Where a cache keeps its entries.
///
/// The cache dispatches statically to its store, and asks the synchronous
/// [`lookup`](Store::lookup) first: an in-memory store answers there, so a hit
/// takes no allocation and no extra poll. A store that must wait (a remote
/// tier) answers [`Lookup::Pending`], and the cache then awaits
/// [`get`](Store::get) inside the response future.
///
/// The cache, not the store, judges an entry's age (fresh, stale, dead): a
/// store only keeps entries, and may drop one after its
/// [`Entry::expires_at`] (per-entry expiry) or to make room.
///
/// # Ordering contract
///
/// The cache never lets a load that started before an invalidation fill the
/// store after it: it decides a fill and calls [`insert`](Store::insert)
/// under the same per-key lock an invalidation takes before calling
/// [`invalidate`](Store::invalidate). A store must therefore apply writes in
/// the order of the *calls* (issue the write when `insert` or `invalidate` is
/// called, for example on an ordered connection), not in the order their
/// futures happen to be polled. The returned futures only report completion;
/// the cache completes them in the background, so no response waits for a
/// write. They must be `Unpin` (box them if need be).
pub trait Store<T>: Send + Sync + 'static {
    /// The future of an asynchronous [`get`](Store::get).
    type Get: Future<Output = Option<Entry<T>>> + Send + Unpin + 'static;
    /// The future of a write ([`insert`](Store::insert),
    /// [`invalidate`](Store::invalidate), [`invalidate_all`](Store::invalidate_all)).
    type Done: Future<Output = ()> + Send + Unpin + 'static;

    /// The entry for `key` if the store can tell without waiting.
    fn lookup(&self, key: &[u8]) -> Lookup<T>;

    /// Hands the entry for `key` (or `None`, when the store holds none) to
    /// `read` by reference, if the store can tell without waiting; `None`
    /// when it cannot (as [`Lookup::Pending`]).
    ///
    /// The cache's hit path calls this one: it judges the entry's age in
    /// `read` and clones only the response it serves, not the whole entry.
    /// The default calls [`lookup`](Store::lookup); an in-memory store
    /// overrides it to run `read` on the entry in place. `read` may run under
    /// a lock of the store: it is short and never calls back into the store.
    #[inline]
    fn lookup_with<R>(&self, key: &[u8], read: impl FnOnce(Option<&Entry<T>>) -> R) -> Option<R> {
        match self.lookup(key) {
            Lookup::Found(entry) => Some(read(Some(&entry))),
            Lookup::Absent => Some(read(None)),
            Lookup::Pending => None,
        }
    }

    /// The entry for `key`, waiting if need be. Called only after
    /// [`lookup`](Store::lookup) answered [`Lookup::Pending`]. A store that
    /// fails to read answers `None` (a miss) and reports the failure itself.
    fn get(&self, key: CacheKey) -> Self::Get;

    /// Stores `entry` for `key`, replacing any entry it had. The entry may be
    /// dropped after [`Entry::expires_at`].
    fn insert(&self, key: CacheKey, entry: Entry<T>) -> Self::Done;

    /// Removes the entry for `key`.
    fn invalidate(&self, key: &[u8]) -> Self::Done;

    /// Removes every entry.
    fn invalidate_all(&self) -> Self::Done;

    /// The store's counters, for [`CacheHandle::snapshot`](super::CacheHandle::snapshot).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}
