//! `DnsHandle`: what a DNS discovery knows, and how it has fared.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::resolve::DnsError;

/// Reaches a running [`DnsDiscover`](super::DnsDiscover): the membership it
/// last published, its last error and its counters. Cheap to clone; clones
/// see the same discovery.
#[derive(Clone, Debug)]
pub struct DnsHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    resolutions: AtomicU64,
    failures: AtomicU64,
    inserted: AtomicU64,
    removed: AtomicU64,
    // Written once per resolution, read by snapshots: never on a request path.
    status: Mutex<Status>,
}

#[derive(Debug, Default)]
struct Status {
    addresses: Vec<SocketAddr>,
    last_error: Option<Arc<DnsError>>,
    consecutive_failures: u64,
}

/// A [`DnsHandle`]'s view at one moment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DnsSnapshot {
    /// The name being resolved.
    pub name: String,
    /// The membership last published (sorted): the last non-empty answer.
    pub addresses: Vec<SocketAddr>,
    /// The most recent failed resolution, kept after later successes so it
    /// can still be read; `consecutive_failures` says whether it is current.
    pub last_error: Option<Arc<DnsError>>,
    /// Failed resolutions since the last successful one (0: healthy).
    pub consecutive_failures: u64,
    /// Successful resolutions (a non-empty answer).
    pub resolutions: u64,
    /// Failed resolutions: errors, timeouts and empty answers.
    pub failures: u64,
    /// Addresses that joined (each an insert change).
    pub inserted: u64,
    /// Addresses that left (each a remove change).
    pub removed: u64,
}

impl DnsHandle {
    pub(crate) fn new(name: &str) -> DnsHandle {
        DnsHandle {
            shared: Arc::new(Shared {
                name: name.to_string(),
                resolutions: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                inserted: AtomicU64::new(0),
                removed: AtomicU64::new(0),
                status: Mutex::new(Status::default()),
            }),
        }
    }

    /// The name being resolved (`host:port`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The membership, last error and counters now.
    pub fn snapshot(&self) -> DnsSnapshot {
        let s = &self.shared;
        let status = s.status.lock().unwrap_or_else(|p| p.into_inner());
        DnsSnapshot {
            name: s.name.clone(),
            addresses: status.addresses.clone(),
            last_error: status.last_error.clone(),
            consecutive_failures: status.consecutive_failures,
            resolutions: s.resolutions.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            inserted: s.inserted.load(Ordering::Relaxed),
            removed: s.removed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn succeeded(&self, addresses: Vec<SocketAddr>, inserted: usize, removed: usize) {
        let s = &self.shared;
        s.resolutions.fetch_add(1, Ordering::Relaxed);
        s.inserted.fetch_add(inserted as u64, Ordering::Relaxed);
        s.removed.fetch_add(removed as u64, Ordering::Relaxed);
        let mut status = s.status.lock().unwrap_or_else(|p| p.into_inner());
        status.addresses = addresses;
        status.consecutive_failures = 0;
    }

    pub(crate) fn failed(&self, error: DnsError) {
        let s = &self.shared;
        s.failures.fetch_add(1, Ordering::Relaxed);
        let mut status = s.status.lock().unwrap_or_else(|p| p.into_inner());
        status.last_error = Some(Arc::new(error));
        status.consecutive_failures += 1;
    }
}
