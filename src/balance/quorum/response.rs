//! What a quorum call answers: the merged response and the report a
//! caller needs to repair the replicas that missed it.

use super::merge::Reply;
use crate::balance::ReplicaId;
use crate::BoxError;

/// A replica whose copy of a quorum call failed, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReplicaFailure {
    /// The replica.
    pub replica: ReplicaId,
    /// Its service's error, or a [`CopyError`](super::CopyError) when the
    /// copy failed otherwise (classified as a failure, not ready in time, or
    /// the replica left the set).
    pub error: BoxError,
}

/// The answer of a quorum call: the merged response, and who answered what.
///
/// `replies`, `failed` and `unanswered` together are every replica the call
/// sent a copy to (or meant to). For read repair, the replicas to write the
/// merged value back to are those whose reply is older, those that failed,
/// and those that did not answer: [`lagging`](Self::lagging) lists them.
#[derive(Debug)]
#[non_exhaustive]
pub struct QuorumResponse<Res, Out> {
    /// The merge of the successful replies.
    pub merged: Out,
    /// Every successful reply, in arrival order (at least `needed`).
    pub replies: Vec<Reply<Res>>,
    /// The replicas whose copy failed before the outcome was decided.
    pub failed: Vec<ReplicaFailure>,
    /// The replicas whose copy had not answered when the outcome was
    /// decided: they finish in the background (their outcomes reach the
    /// replicas' health), or had not been sent and never will be.
    pub unanswered: Vec<ReplicaId>,
    /// The quorum the request needed.
    pub needed: u32,
}

impl<Res, Out> QuorumResponse<Res, Out> {
    /// The merged response alone.
    pub fn into_merged(self) -> Out {
        self.merged
    }

    /// The replicas that may not hold the newest value by `version`: those
    /// whose reply is older than the newest reply, those that failed, and
    /// those that did not answer. A read repair writes the merged value back
    /// to them.
    pub fn lagging<K: Ord>(&self, version: impl Fn(&Res) -> K) -> Vec<ReplicaId> {
        let newest = self.replies.iter().map(|r| version(&r.response)).max();
        let behind = self
            .replies
            .iter()
            .filter(|r| Some(version(&r.response)) < newest)
            .map(|r| r.replica.clone());
        behind
            .chain(self.failed.iter().map(|f| f.replica.clone()))
            .chain(self.unanswered.iter().cloned())
            .collect()
    }
}
