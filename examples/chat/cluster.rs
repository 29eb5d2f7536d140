//! Starts a chat fleet in one process: N nodes and G gateways, each a real
//! HTTP server on its own loopback port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_fleet::BoxError;

use crate::gateway::Gateway;
use crate::node::Node;
use crate::upstream::{http_client, UpstreamConfig};

/// A running HTTP server.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `router` on `listener`.
    pub fn start(listener: TcpListener, router: Router) -> Result<Server, BoxError> {
        let address = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Without Nagle's delay: subscriptions stream small lines.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(%e, "server stopped");
            }
        });
        Ok(Server {
            address,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets the requests in flight finish (for up to
    /// five seconds), then drops what is left.
    pub async fn stop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// The fleet's shape.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// How many nodes (at least 2: every room needs a replica).
    pub nodes: usize,
    /// How many gateways.
    pub gateways: usize,
    /// Messages kept per room.
    pub capacity: usize,
    /// How the gateways reach the nodes.
    pub upstream: UpstreamConfig,
    /// The first gateway's port (0: any free port).
    pub first_gateway_port: u16,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nodes: 3,
            gateways: 2,
            capacity: crate::room::DEFAULT_CAPACITY,
            upstream: UpstreamConfig::default(),
            first_gateway_port: 0,
        }
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeProcess {
    /// Its state.
    pub node: Arc<Node>,
    /// Its server.
    pub server: Server,
    /// Whether it was killed.
    pub killed: bool,
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayProcess {
    /// Its state.
    pub gateway: Arc<Gateway>,
    /// Its server.
    pub server: Server,
}

impl GatewayProcess {
    /// The WebSocket address.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.address())
    }

    /// The page's address.
    pub fn page_url(&self) -> String {
        format!("http://{}/", self.server.address())
    }
}

/// The fleet.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, `node-0`, `node-1`...
    pub nodes: Vec<NodeProcess>,
    /// The gateways.
    pub gateways: Vec<GatewayProcess>,
}

impl Cluster {
    /// Starts the fleet on loopback ports.
    pub async fn start(config: &ClusterConfig) -> Result<Cluster, BoxError> {
        if config.nodes < 2 || config.gateways == 0 {
            return Err("a chat fleet needs at least 2 nodes and 1 gateway".into());
        }
        let mut listeners = Vec::new();
        let mut fleet = Vec::new();
        for i in 0..config.nodes {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            fleet.push((format!("node-{i}"), listener.local_addr()?));
            listeners.push(listener);
        }
        let client = http_client();
        let mut nodes = Vec::new();
        for ((id, _), listener) in fleet.iter().zip(listeners) {
            let node = Node::new(id, config.capacity, client.clone());
            node.join(&fleet)?;
            let server = Server::start(listener, node.router())?;
            nodes.push(NodeProcess {
                node,
                server,
                killed: false,
            });
        }
        let mut gateways = Vec::new();
        for i in 0..config.gateways {
            let port = if i == 0 { config.first_gateway_port } else { 0 };
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            let gateway = Gateway::new(&fleet, &config.upstream)?;
            let server = Server::start(listener, gateway.router())?;
            gateways.push(GatewayProcess { gateway, server });
        }
        Ok(Cluster { nodes, gateways })
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().map(|n| &n.node).find(|n| n.id() == id)
    }

    /// Kills a node: it stops acknowledging, ends its subscriptions and
    /// closes its port. Returns whether there was such a live node.
    pub async fn kill(&mut self, id: &str) -> bool {
        let Some(process) = self
            .nodes
            .iter_mut()
            .find(|n| n.node.id() == id && !n.killed)
        else {
            return false;
        };
        process.killed = true;
        process.node.stop();
        process.server.stop().await;
        true
    }

    /// Stops everything.
    pub async fn stop(&mut self) {
        for g in &mut self.gateways {
            g.gateway.stop();
            g.server.stop().await;
        }
        for n in &mut self.nodes {
            n.node.stop();
            n.server.stop().await;
        }
    }
}
