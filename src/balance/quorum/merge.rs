//! Merging the successful replies of a quorum call into one answer.

use std::fmt;

use crate::balance::ReplicaId;

/// One replica's successful answer to a quorum call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply<Res> {
    /// The replica that answered.
    pub replica: ReplicaId,
    /// Its response.
    pub response: Res,
}

/// The successful replies of a quorum call, in the order they arrived:
/// never empty (a quorum is at least one success). Cheap to copy.
pub struct Replies<'a, Res> {
    first: &'a Reply<Res>,
    all: &'a [Reply<Res>],
}

impl<Res> Clone for Replies<'_, Res> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Res> Copy for Replies<'_, Res> {}

impl<Res: fmt::Debug> fmt::Debug for Replies<'_, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.all).finish()
    }
}

impl<'a, Res> Replies<'a, Res> {
    /// The replies, or `None` when there are none.
    pub(crate) fn new(all: &'a [Reply<Res>]) -> Option<Replies<'a, Res>> {
        all.first().map(|first| Replies { first, all })
    }

    /// The first reply to arrive (the fastest replica's).
    pub fn first(&self) -> &'a Reply<Res> {
        self.first
    }

    /// How many replies there are (at least the quorum).
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Always `false`: a quorum is at least one reply.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The replies as a slice, in arrival order.
    pub fn as_slice(&self) -> &'a [Reply<Res>] {
        self.all
    }

    /// The replies in arrival order.
    pub fn iter(&self) -> std::slice::Iter<'a, Reply<Res>> {
        self.all.iter()
    }

    /// The reply whose response has the greatest `key` (a version, a
    /// timestamp); of equal keys, the first to arrive.
    pub fn max_by_key<K: Ord>(&self, key: impl Fn(&Res) -> K) -> &'a Reply<Res> {
        let mut best = self.first;
        let mut best_key = key(&best.response);
        for r in self.all.iter().skip(1) {
            let k = key(&r.response);
            if k > best_key {
                best = r;
                best_key = k;
            }
        }
        best
    }
}

impl<'a, Res> IntoIterator for Replies<'a, Res> {
    type Item = &'a Reply<Res>;
    type IntoIter = std::slice::Iter<'a, Reply<Res>>;
    fn into_iter(self) -> Self::IntoIter {
        self.all.iter()
    }
}

/// Makes one answer from the successful replies of a quorum call.
///
/// Which reply wins is the merge's business, not the balancer's: the newest
/// version ([`newest`]), the first to arrive ([`FirstReply`]), a merge of
/// several (a union of sets, a CRDT join), or nothing at all for writes that
/// only need the acknowledgements. Implemented for closures
/// `Fn(Replies<'_, Res>) -> Out`; annotate the argument's type when the
/// compiler cannot infer it:
///
/// ```
/// use tower_fleet::balance::{Merge, Replies};
///
/// // The sum of the counts every replica reported.
/// let total = |replies: Replies<'_, u64>| replies.iter().map(|r| r.response).sum::<u64>();
/// # let _ = &total;
/// ```
pub trait Merge<Res> {
    /// The merged answer.
    type Output;

    /// Merges the successful replies (at least the quorum of them).
    fn merge(&self, replies: Replies<'_, Res>) -> Self::Output;
}

impl<Res, Out, F> Merge<Res> for F
where
    F: Fn(Replies<'_, Res>) -> Out,
{
    type Output = Out;

    #[inline]
    fn merge(&self, replies: Replies<'_, Res>) -> Out {
        self(replies)
    }
}

/// Newest wins: the response with the greatest version, cloned. Made by [`newest`].
#[derive(Clone, Copy, Debug)]
pub struct Newest<F>(F);

/// A merge that keeps the response with the greatest `version` (of equal
/// versions, the first to arrive): last-writer-wins when the version is a
/// write timestamp, or the highest version of a versioned store.
///
/// ```
/// use tower_fleet::balance::newest;
/// # let _ = newest(|r: &(u64, String)| r.0);
/// ```
pub fn newest<Res, K, F>(version: F) -> Newest<F>
where
    F: Fn(&Res) -> K,
    K: Ord,
{
    Newest(version)
}

impl<Res, K, F> Merge<Res> for Newest<F>
where
    Res: Clone,
    F: Fn(&Res) -> K,
    K: Ord,
{
    type Output = Res;

    fn merge(&self, replies: Replies<'_, Res>) -> Res {
        replies.max_by_key(&self.0).response.clone()
    }
}

/// The first reply to arrive wins (cloned): for replicas that always agree,
/// or when any successful answer will do.
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstReply;

impl<Res: Clone> Merge<Res> for FirstReply {
    type Output = Res;

    fn merge(&self, replies: Replies<'_, Res>) -> Res {
        replies.first().response.clone()
    }
}
