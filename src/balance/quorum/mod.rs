//! The quorum mode of the balancer: fan a request out to several replicas
//! and answer once a quorum succeeded. See the balance module's docs.

mod choose;
mod config;
mod error;
mod future;
mod layer;
mod leg;
mod merge;
mod response;
mod run;
mod service;
mod stats;
mod straggler;

pub use choose::{ChooseQuorum, QuorumKind};
pub use config::{FanOut, QuorumConfig};
pub use error::{CopyError, QuorumError, QuorumFailure};
pub use future::QuorumFuture;
pub use layer::QuorumLayer;
pub use merge::{newest, FirstReply, Merge, Newest, Replies, Reply};
pub use response::{QuorumResponse, ReplicaFailure};
pub use service::Quorum;
pub(crate) use stats::QuorumCounters;
pub use stats::QuorumStats;
