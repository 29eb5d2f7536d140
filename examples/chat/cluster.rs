//! Starts a chat fleet in one process: N nodes and G gateways, each a real
//! HTTP server on its own loopback port.

use std::net::SocketAddr;
use std::sync::Arc;

use tower_fleet::BoxError;

use crate::common::server::{serve, serve_local, ServerHandle};

use crate::gateway::Gateway;
use crate::node::Node;
use crate::upstream::{http_client, UpstreamConfig};

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
    pub server: ServerHandle,
    /// Whether it was killed.
    pub killed: bool,
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayProcess {
    /// Its state.
    pub gateway: Arc<Gateway>,
    /// Its server.
    pub server: ServerHandle,
}

impl GatewayProcess {
    /// The WebSocket address.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.addr())
    }

    /// The page's address.
    pub fn page_url(&self) -> String {
        format!("http://{}/", self.server.addr())
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
        let client = http_client();
        let mut nodes = Vec::new();
        let mut fleet = Vec::new();
        for i in 0..config.nodes {
            let node = Node::new(&format!("node-{i}"), config.capacity, client.clone());
            let server = serve_local(node.router()).await?;
            fleet.push((node.id().to_string(), server.addr()));
            nodes.push(NodeProcess {
                node,
                server,
                killed: false,
            });
        }
        for n in &nodes {
            n.node.join(&fleet)?;
        }
        let mut gateways = Vec::new();
        for i in 0..config.gateways {
            let port = if i == 0 { config.first_gateway_port } else { 0 };
            let gateway = Gateway::new(&fleet, &config.upstream)?;
            let server = serve(SocketAddr::from(([127, 0, 0, 1], port)), gateway.router()).await?;
            gateways.push(GatewayProcess { gateway, server });
        }
        Ok(Cluster { nodes, gateways })
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().map(|n| &n.node).find(|n| n.id() == id)
    }

    /// Kills a node, as a crash would: it stops acknowledging, its port
    /// closes and its open connections break. Returns whether there was such a live node.
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
        process.server.kill().await;
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
