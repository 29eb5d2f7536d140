//! An HTTP server on a loopback port that can be stopped gracefully or killed.
//!
//! [`serve`] binds, spawns the accept loop and returns a [`ServerHandle`] at
//! once, so the address is known before the first request. The handle:
//!
//! - [`ServerHandle::stop`]: stop accepting, let in-flight requests finish
//!   (idle keep-alive connections are closed), then drop whatever is left
//!   (upgraded connections such as WebSockets) and return;
//! - [`ServerHandle::kill`]: a crash. The listener closes (new connections are
//!   refused) and every open connection, upgraded ones included, fails its next
//!   read or write with `ConnectionReset` and is dropped, so clients see
//!   connection errors rather than answers.
//!
//! Connections are HTTP/1.1 with upgrades (the `chat` example's WebSockets).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long [`ServerHandle::stop`] lets in-flight requests finish before it
/// drops their connections.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Draining,
    Killed,
}

/// Stops or kills one server; clones control the same server.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    state: Arc<watch::Sender<State>>,
    done: watch::Receiver<bool>,
}

/// Binds `127.0.0.1:0` (an ephemeral port) and serves `router` there.
pub async fn serve_local(router: Router) -> io::Result<ServerHandle> {
    serve(SocketAddr::from(([127, 0, 0, 1], 0)), router).await
}

/// Binds `addr` and serves `router` there until stopped or killed.
///
/// Fails only if the address cannot be bound.
pub async fn serve(addr: SocketAddr, router: Router) -> io::Result<ServerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (state, state_rx) = watch::channel(State::Running);
    let (done_tx, done) = watch::channel(false);
    tokio::spawn(async move {
        accept_loop(listener, router, state_rx).await;
        let _ = done_tx.send(true);
    });
    Ok(ServerHandle {
        addr,
        state: Arc::new(state),
        done,
    })
}

impl ServerHandle {
    /// The bound address (with the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server still accepts connections.
    pub fn is_running(&self) -> bool {
        *self.state.borrow() == State::Running && !*self.done.borrow()
    }

    /// Graceful stop: no new connections, in-flight requests finish (up to
    /// [`DRAIN_GRACE`]), then the rest is dropped. Returns once the listener is
    /// closed and every connection is gone.
    pub async fn stop(&self) {
        self.state.send_if_modified(|s| {
            let running = *s == State::Running;
            if running {
                *s = State::Draining;
            }
            running
        });
        self.stopped().await;
    }

    /// Crash: closes the listener and breaks every open connection at once.
    /// Returns once the listener is closed (new connections are refused).
    pub async fn kill(&self) {
        self.state.send_replace(State::Killed);
        self.stopped().await;
    }

    /// Waits until the server has stopped (by `stop` or `kill`).
    pub async fn stopped(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

async fn accept_loop(listener: TcpListener, router: Router, mut state: watch::Receiver<State>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, router.clone(), state.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            changed = state.changed() => {
                if changed.is_err() || *state.borrow() != State::Running {
                    break;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    if *state.borrow() == State::Killed {
        conns.abort_all();
    } else {
        let drained = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN_GRACE, drained).await.is_err() {
            conns.abort_all();
        }
    }
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(stream: TcpStream, router: Router, mut state: watch::Receiver<State>) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(KillableIo::new(stream, state.clone()));
    let service = hyper::service::service_fn(move |req| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
    });
    let conn = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = state.wait_for(|s| *s != State::Running) => {}
    }
    if *state.borrow() == State::Draining {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// A TCP stream that fails every read and write once its server is killed, so
/// that connections handed to other tasks (HTTP upgrades) break too.
struct KillableIo {
    inner: TcpStream,
    /// Resolves when the server is killed; `None` once it has (a finished
    /// future must not be polled again).
    killed: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl KillableIo {
    fn new(inner: TcpStream, mut state: watch::Receiver<State>) -> Self {
        let killed = Box::pin(async move {
            if state.wait_for(|s| *s == State::Killed).await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        Self {
            inner,
            killed: Some(killed),
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let reset = || io::Error::new(io::ErrorKind::ConnectionReset, "server killed");
        let Some(killed) = self.killed.as_mut() else {
            return Err(reset());
        };
        match killed.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.killed = None;
                Err(reset())
            }
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
