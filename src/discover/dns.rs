//! `DnsDiscover`: a name resolved every interval, as a stream of membership
//! changes.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::Stream;
use tokio::time::{Sleep, Timeout};
use tower::discover::Change;

use super::config::DnsConfig;
use super::handle::DnsHandle;
use super::resolve::{DnsError, Resolve, ResolveFuture, SystemResolver};
use crate::config::{ConfigError, Validate};

pin_project_lite::pin_project! {
    /// Resolves a name (`host:port`) every interval and yields
    /// [`Change::Insert`] for each address that appeared, with the service the
    /// connector made for it, and [`Change::Remove`] for each that went away.
    ///
    /// A [`tower::discover::Discover`]: give it to
    /// [`BalanceBuilder::discover`](crate::balance::BalanceBuilder::discover),
    /// or to tower's own balancers. It never yields an error (a failed
    /// resolution keeps the membership and is reported through
    /// [`handle`](Self::handle) and a `tracing` warning), and never ends. The
    /// first resolution starts at the first poll; the next starts `interval`
    /// after each one ends. It needs a tokio runtime with the time driver
    /// when polled. Dropping it cancels the resolution in flight.
    pub struct DnsDiscover<Conn, S, R = SystemResolver> {
        name: String,
        config: DnsConfig,
        resolver: R,
        connect: Conn,
        members: BTreeSet<SocketAddr>,
        pending: VecDeque<Change<SocketAddr, S>>,
        state: State,
        handle: DnsHandle,
    }
}

enum State {
    Idle,
    Resolving(Pin<Box<Timeout<ResolveFuture>>>),
    Waiting(Pin<Box<Sleep>>),
}

impl<Conn, S> DnsDiscover<Conn, S, SystemResolver>
where
    Conn: Fn(SocketAddr) -> S,
{
    /// Discovers the addresses of `name` (`host:port`, e.g.
    /// `"kv-s0.kv.svc.cluster.local:8080"`) with the system's resolver,
    /// turning each new address into a service with `connect`.
    ///
    /// Fails with a [`ConfigError`] if `name` has no `:port` or `config` is
    /// invalid.
    pub fn new(
        name: impl Into<String>,
        config: DnsConfig,
        connect: Conn,
    ) -> Result<Self, ConfigError> {
        let name = name.into();
        check_name(&name)?;
        config.validate()?;
        Ok(DnsDiscover {
            handle: DnsHandle::new(&name),
            name,
            config,
            resolver: SystemResolver,
            connect,
            members: BTreeSet::new(),
            pending: VecDeque::new(),
            state: State::Idle,
        })
    }
}

impl<Conn, S, R> DnsDiscover<Conn, S, R> {
    /// Resolves with `resolver` instead (another DNS client, or scripted
    /// answers in tests).
    pub fn resolver<R2: Resolve>(self, resolver: R2) -> DnsDiscover<Conn, S, R2> {
        DnsDiscover {
            name: self.name,
            config: self.config,
            resolver,
            connect: self.connect,
            members: self.members,
            pending: self.pending,
            state: self.state,
            handle: self.handle,
        }
    }

    /// The handle: membership, last error, counters.
    pub fn handle(&self) -> DnsHandle {
        self.handle.clone()
    }

    /// The name being resolved.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<Conn, S, R> fmt::Debug for DnsDiscover<Conn, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscover")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// `host:port`, as `lookup_host` and every resolver here expect it.
fn check_name(name: &str) -> Result<(), ConfigError> {
    let refuse = |reason| Err(ConfigError::new("name", format!("{name:?}"), reason));
    match name.rsplit_once(':') {
        None => refuse("must be host:port (the port is not in DNS A/AAAA records)"),
        Some((host, _)) if host.trim().is_empty() => refuse("the host must not be empty"),
        Some((_, port)) if port.parse::<u16>().is_err() => refuse("the port must be 0-65535"),
        Some(_) => Ok(()),
    }
}

impl<Conn, S, R> Stream for DnsDiscover<Conn, S, R>
where
    Conn: Fn(SocketAddr) -> S,
    R: Resolve,
{
    type Item = Result<Change<SocketAddr, S>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        loop {
            if let Some(change) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            match this.state {
                State::Idle => {
                    let resolution = this.resolver.resolve(this.name);
                    *this.state = State::Resolving(Box::pin(tokio::time::timeout(
                        this.config.timeout,
                        resolution,
                    )));
                }
                State::Resolving(resolution) => {
                    let answer = ready!(resolution.as_mut().poll(cx));
                    let answer = match answer {
                        Err(_) => Err(DnsError::Timeout {
                            name: this.name.clone(),
                            timeout: this.config.timeout,
                        }),
                        Ok(Err(source)) => Err(DnsError::Lookup {
                            name: this.name.clone(),
                            source,
                        }),
                        Ok(Ok(addresses)) if addresses.is_empty() => Err(DnsError::Empty {
                            name: this.name.clone(),
                        }),
                        Ok(Ok(addresses)) => Ok(addresses),
                    };
                    match answer {
                        Ok(addresses) => {
                            let now: BTreeSet<SocketAddr> = addresses.into_iter().collect();
                            // Inserts first: a consumer applying changes one by
                            // one never sees the set emptier than it must be.
                            let joined: Vec<SocketAddr> =
                                now.difference(this.members).copied().collect();
                            let left: Vec<SocketAddr> =
                                this.members.difference(&now).copied().collect();
                            for &address in &joined {
                                let service = (this.connect)(address);
                                this.pending.push_back(Change::Insert(address, service));
                            }
                            for &address in &left {
                                this.pending.push_back(Change::Remove(address));
                            }
                            if !joined.is_empty() || !left.is_empty() {
                                tracing::info!(
                                    name = %this.name,
                                    joined = ?joined,
                                    left = ?left,
                                    "DNS membership changed"
                                );
                            }
                            this.handle.succeeded(
                                now.iter().copied().collect(),
                                joined.len(),
                                left.len(),
                            );
                            *this.members = now;
                        }
                        Err(error) => {
                            tracing::warn!(
                                error = %error,
                                kept = this.members.len(),
                                "DNS resolution failed; keeping the last membership"
                            );
                            this.handle.failed(error);
                        }
                    }
                    *this.state =
                        State::Waiting(Box::pin(tokio::time::sleep(this.config.interval)));
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    *this.state = State::Idle;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_a_port_are_refused() {
        for bad in ["kv-s0.kv.svc", ":8080", "kv:http", "kv:70000"] {
            let err = DnsDiscover::new(bad, DnsConfig::default(), |a: SocketAddr| a).unwrap_err();
            assert_eq!(err.field(), "name", "{bad}");
        }
        assert!(DnsDiscover::new("kv:8080", DnsConfig::default(), |a: SocketAddr| a).is_ok());
    }
}
