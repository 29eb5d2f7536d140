//! Discovery of a shard's replicas by DNS (feature `dns`).
//!
//! One DNS name per shard gives that shard's replicas: that is how a
//! Kubernetes headless Service in front of a StatefulSet publishes them (one
//! A/AAAA record per ready pod). [`DnsDiscover`] resolves the name every
//! interval, compares the answer with the membership it published last, and
//! yields [`tower::discover::Change`]s: an insert for each address that
//! appeared, with the service your connector made for it (address in,
//! service out), and a remove for each that went away. It is a
//! [`tower::discover::Discover`], so the balancer's
//! [`discover`](crate::balance::BalanceBuilder::discover) (or tower's) takes
//! it as it is; the [stack builder](crate::stack) starts one per shard whose
//! configuration names a `discovery` name instead of addresses.
//!
//! ```
//! use std::net::SocketAddr;
//! use futures::StreamExt;
//! use tower::discover::Change;
//! use tower_fleet::discover::{DnsConfig, DnsDiscover};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The connector: here each replica's "service" is just its address.
//! let connect = |address: SocketAddr| address.to_string();
//! let mut replicas = DnsDiscover::new("localhost:8080", DnsConfig::default(), connect).unwrap();
//! let handle = replicas.handle();
//! match replicas.next().await {
//!     Some(Ok(Change::Insert(address, service))) => {
//!         assert!(address.ip().is_loopback());
//!         assert_eq!(service, address.to_string());
//!     }
//!     other => panic!("expected a replica, got {other:?}"),
//! }
//! assert_eq!(handle.snapshot().resolutions, 1);
//! # }
//! ```
//!
//! # Failures keep the membership
//!
//! A resolution that fails (a resolver error, no answer within
//! [`DnsConfig::timeout`]) changes nothing: the last membership stays, the
//! error is counted and kept in the [`DnsHandle`], and a `tracing` warning
//! names it. DNS going away for a minute must not empty a shard that is
//! still serving. The stream itself never yields an error, because some
//! consumers (tower's p2c balancer) treat a discovery error as fatal.
//!
//! **An empty answer is treated like a failure.** A name that suddenly has
//! no address is far more often a transient condition (a DNS server
//! restarting, every pod briefly unready during a rollout, a typo deployed
//! by mistake) than a shard that really has no replicas left, and acting on
//! it would turn every request for the shard's keys into an error at once.
//! With stateful shards (the default failover model) an empty shard cannot
//! be rescued by another one anyway. The cost: a shard that really loses
//! every replica keeps its last addresses, whose breakers then open and
//! whose requests fail as unavailable, which is the same outcome, reported
//! more honestly. To retire a shard, remove it from the configuration.
//!
//! # Guarantees
//!
//! - Changes come inserts first, then removes, so a consumer that applies
//!   them one at a time never sees the set emptier than it must be.
//! - Each address is inserted once until it is removed (duplicates in an
//!   answer are merged); members are keyed by `ip:port`.
//! - One resolution at a time per name; the next starts
//!   [`DnsConfig::interval`] after the previous one ended, so a slow DNS
//!   server is never queried faster than it answers.
//! - The stream never ends; drop it (or the balancer that drives it) to stop.
//!
//! [`SystemResolver`] uses the operating system's resolver (A and AAAA
//! records, with the search domains of `/etc/resolv.conf`); implement
//! [`Resolve`] to use another (SRV records, a scripted resolver in tests).

mod config;
mod dns;
mod handle;
mod resolve;

pub use config::DnsConfig;
pub use dns::DnsDiscover;
pub use handle::{DnsHandle, DnsSnapshot};
pub use resolve::{DnsError, Resolve, ResolveFuture, SystemResolver};
