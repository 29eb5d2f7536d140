//! Real hyper servers for the `http` feature's tests: over in-memory
//! `tokio::io::duplex` pipes (so that tokio's paused clock drives all time)
//! and over loopback TCP. Each handler sees the whole request body.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tower::Service;
use tower_fleet::BoxError;

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

type Handler = Arc<dyn Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync>;

/// A scripted origin: `handler(request, n)` answers the n-th request (from
/// 1) to reach it; every request is logged.
#[derive(Clone)]
pub struct Origin {
    handler: Handler,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    pub fn new(
        handler: impl Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Origin {
        Origin {
            handler: Arc::new(handler),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let seen = Seen {
            at: Instant::now(),
            method: parts.method,
            path: parts
                .uri
                .path_and_query()
                .map_or("/".to_string(), |p| p.to_string()),
            headers: parts.headers,
            body,
        };
        let n = {
            let mut log = self.seen.lock().unwrap();
            log.push(seen.clone());
            log.len()
        };
        (self.handler)(&seen, n)
    }

    /// Serves one connection.
    async fn serve<IO>(self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let svc = hyper::service::service_fn(move |req| {
            let origin = self.clone();
            async move { Ok::<_, Infallible>(origin.answer(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), svc)
            .await;
    }

    /// Serves on a loopback port until the runtime ends.
    pub async fn listen(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let origin = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(origin.clone().serve(stream));
            }
        });
        addr
    }

    /// A client whose every request goes to this origin over a new
    /// in-memory connection, through hyper on both ends.
    pub fn duplex(&self) -> Duplex {
        Duplex {
            origin: self.clone(),
        }
    }
}

/// A response with this status, headers and body.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// hyper's client over a fresh `tokio::io::duplex` pipe per request.
#[derive(Clone)]
pub struct Duplex {
    origin: Origin,
}

impl<B> Service<Request<B>> for Duplex
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let origin = self.origin.clone();
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(origin.serve(server));
            let (mut tx, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(client)).await?;
            tokio::spawn(conn);
            Ok(tx.send_request(req).await?)
        })
    }
}

/// A hyper client that fails to connect: nothing listens on the port.
pub async fn refused_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}
