//! Which quorum a request needs: R for reads, W for writes, or its own.

use super::config::{FanOut, QuorumConfig};
use super::error::QuorumError;

/// The quorum a request needs, chosen per request by a [`ChooseQuorum`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuorumKind {
    /// A read: `read` (R) successes of the [`QuorumConfig`](super::QuorumConfig).
    Read,
    /// A write: `write` (W) successes.
    Write,
    /// Every replica asked: n successes (with `n = "all"`, one per replica
    /// of the set, available or not).
    All,
    /// This many successes, from 1 to n.
    Count(u32),
}

impl QuorumKind {
    /// The successes this kind needs under `config`, in a set of `set`
    /// replicas, or why it is out of range.
    pub(crate) fn needed(self, config: &QuorumConfig, set: usize) -> Result<usize, QuorumError> {
        let q = match self {
            QuorumKind::Read => config.read as usize,
            QuorumKind::Write => config.write as usize,
            QuorumKind::All => config.n.of(set).max(1),
            QuorumKind::Count(q) => q as usize,
        };
        // With "all", n bounds nothing here: a quorum larger than the set
        // fails as unreachable, like one larger than the replicas available.
        let (limit, n) = match config.n {
            FanOut::Best(n) => (n as usize, n),
            FanOut::All => (usize::MAX, u32::try_from(set).unwrap_or(u32::MAX)),
        };
        if q == 0 || q > limit {
            return Err(QuorumError::InvalidQuorum {
                needed: u32::try_from(q).unwrap_or(u32::MAX),
                n,
            });
        }
        Ok(q)
    }
}

/// Chooses the quorum of each request (from its method, a header, an enum
/// variant...).
///
/// Implemented for closures `Fn(&Req) -> QuorumKind`, and by [`QuorumKind`]
/// itself for a quorum that every request shares:
///
/// ```
/// use tower_fleet::balance::{ChooseQuorum, QuorumKind};
///
/// enum Op { Get(String), Put(String, Vec<u8>) }
/// let by_op = |op: &Op| match op {
///     Op::Get(_) => QuorumKind::Read,
///     Op::Put(..) => QuorumKind::Write,
/// };
/// assert_eq!(by_op.choose(&Op::Get("k".into())), QuorumKind::Read);
/// assert_eq!(QuorumKind::Write.choose(&Op::Get("k".into())), QuorumKind::Write);
/// ```
pub trait ChooseQuorum<Req> {
    /// The quorum `req` needs.
    fn choose(&self, req: &Req) -> QuorumKind;
}

impl<Req, F> ChooseQuorum<Req> for F
where
    F: Fn(&Req) -> QuorumKind,
{
    #[inline]
    fn choose(&self, req: &Req) -> QuorumKind {
        self(req)
    }
}

impl<Req> ChooseQuorum<Req> for QuorumKind {
    #[inline]
    fn choose(&self, _req: &Req) -> QuorumKind {
        *self
    }
}
