//! The resolver behind DNS discovery: a trait, so tests and users can bring
//! their own, and the system's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

/// The future a [`Resolve`] returns: every address the name has now.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves a name (`host:port`) to socket addresses.
///
/// [`SystemResolver`] asks the operating system; implement this to use
/// another resolver (hickory for SRV records, say) or to script answers in
/// tests. The future owns what it needs (`'static`), so a slow resolution
/// never borrows the discovery stream.
pub trait Resolve: Send + Sync {
    /// Every address `name` resolves to now. An `Err` or an empty list keeps
    /// the discovery's last membership.
    fn resolve(&self, name: &str) -> ResolveFuture;
}

impl<R: Resolve + ?Sized> Resolve for std::sync::Arc<R> {
    fn resolve(&self, name: &str) -> ResolveFuture {
        (**self).resolve(name)
    }
}

/// The operating system's resolver (`getaddrinfo` through
/// `tokio::net::lookup_host`, on tokio's blocking pool): A and AAAA records,
/// `/etc/hosts`, and whatever `/etc/resolv.conf` says, which in a Kubernetes
/// pod is the cluster DNS with its search domains.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: &str) -> ResolveFuture {
        let name = name.to_string();
        Box::pin(async move { Ok(tokio::net::lookup_host(name).await?.collect()) })
    }
}

/// Why one resolution failed. The discovery keeps its last membership and
/// reports the error through its [`DnsHandle`](super::DnsHandle) and a
/// `tracing` warning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The resolver failed (no such name, no DNS server, ...).
    #[error("resolving {name}: {source}")]
    Lookup {
        /// The name.
        name: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The answer held no address. Treated like a failure: see the module
    /// docs for why.
    #[error("resolving {name}: the answer holds no address; keeping the last membership")]
    Empty {
        /// The name.
        name: String,
    },
    /// The resolver did not answer within the configured timeout.
    #[error("resolving {name}: no answer within {timeout:?}")]
    Timeout {
        /// The name.
        name: String,
        /// The configured timeout.
        timeout: Duration,
    },
}
