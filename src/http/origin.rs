//! `SetOriginLayer`: sends every request to one replica's address.

use std::task::{Context, Poll};

use http::uri::{Authority, Scheme, Uri};
use http::Request;
use tower::Layer;
use tower_service::Service;

use crate::config::ConfigError;

/// Sends every request to one origin (scheme and authority), keeping its
/// path and query: the per-replica piece between a balancer, which picks a
/// replica, and a client such as hyper's, which connects wherever the URI
/// says. The `Host` header, if the request has one, is left as it is.
///
/// ```
/// use tower::{service_fn, Layer, Service, ServiceExt};
/// use tower_fleet::http::SetOriginLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = SetOriginLayer::new("http://10.0.0.7:8080").unwrap();
/// let mut svc = layer.layer(service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.uri().to_string())
/// }));
/// let req = http::Request::get("/users/42?x=1").body(()).unwrap();
/// assert_eq!(svc.ready().await.unwrap().call(req).await.unwrap(), "http://10.0.0.7:8080/users/42?x=1");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SetOriginLayer {
    scheme: Scheme,
    authority: Authority,
}

impl SetOriginLayer {
    /// The origin `origin` (`http://host:port`); an error naming it if it is
    /// not a URI with a scheme and an authority.
    pub fn new(origin: &str) -> Result<SetOriginLayer, ConfigError> {
        let uri: Uri = origin
            .parse()
            .map_err(|_| ConfigError::new("origin", origin, "not a URI"))?;
        let parts = uri.into_parts();
        match (parts.scheme, parts.authority) {
            (Some(scheme), Some(authority)) => Ok(SetOriginLayer { scheme, authority }),
            _ => Err(ConfigError::new(
                "origin",
                origin,
                "needs a scheme and an authority (http://host:port)",
            )),
        }
    }
}

impl<S> Layer<S> for SetOriginLayer {
    type Service = SetOrigin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetOrigin {
            inner,
            origin: self.clone(),
        }
    }
}

/// The service of [`SetOriginLayer`]. Errors and responses pass through.
#[derive(Clone, Debug)]
pub struct SetOrigin<S> {
    inner: S,
    origin: SetOriginLayer,
}

impl<S> SetOrigin<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the layer.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for SetOrigin<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(self.origin.scheme.clone());
        parts.authority = Some(self.origin.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        // A scheme, an authority and a path always make a URI.
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        self.inner.call(req)
    }
}
