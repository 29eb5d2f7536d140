//! The whole kv service in this process: the fleet of storage nodes and one
//! gateway in front of it, built from a [`StackConfig`] whose shards give
//! each shard's replica count (their addresses are placeholders: the fleet
//! binds ephemeral loopback ports and puts the real addresses in their place).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tower_fleet::stack::StackConfig;
use tower_fleet::Validate;

use super::common::server::{serve_local, ServerHandle};
use super::faults::FaultTarget;
use super::fleet::{shard_id, Fleet};
use super::gateway::{Gateway, GatewayOptions};
use super::load::ShardOf;
use super::node::{NodeConfig, NodeControl};

/// The example's default stack: 4 shards x 3 replicas, quorum W = 2, R = 2.
pub const DEFAULT_CONFIG: &str = include_str!("../kv_cluster.toml");

/// The default configuration, parsed.
pub fn default_config() -> StackConfig {
    toml::from_str(DEFAULT_CONFIG).expect("examples/kv_cluster.toml parses")
}

/// The stack configuration: the TOML file given, or the default. `Err`
/// names the file and what is wrong with it (a `ConfigError` names the field).
pub fn load_config(file: Option<&Path>) -> Result<StackConfig, String> {
    let Some(file) = file else {
        return Ok(default_config());
    };
    let path = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{path}: {e}"))?;
    let config: StackConfig = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    config.validate().map_err(|e| format!("{path}: {e}"))?;
    Ok(config)
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A shard names its replicas by DNS: the in-process fleet starts its own.
    #[error(
        "shards[{0}] uses `discovery`: the in-process fleet starts its own nodes, so give each \
         shard placeholder `replicas` addresses, one per replica (the kv-fleet binary resolves \
         DNS names)"
    )]
    Discovery(usize),
    /// The gateway could not be built from the configuration.
    #[error(transparent)]
    Gateway(#[from] super::gateway::GatewayError),
    /// A server could not bind.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// A running fleet and gateway.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The storage nodes.
    pub fleet: Fleet,
    /// The gateway's state (its stack, its counters).
    pub gateway: Gateway,
    /// The gateway's HTTP server.
    pub server: ServerHandle,
    /// The configuration the gateway was built from, real addresses in.
    pub config: StackConfig,
    /// Replica address -> node name, for display.
    pub names: Arc<BTreeMap<String, String>>,
}

impl Cluster {
    /// Starts one node per replica of each shard of `config` (each with
    /// `node`'s capacity), then the gateway built from `config` with the
    /// real addresses, serving its routes and `extra` ones (say `/metrics`).
    pub async fn start(
        mut config: StackConfig,
        node: NodeConfig,
        options: GatewayOptions,
        extra: impl FnOnce(&Gateway) -> axum::Router,
    ) -> Result<Cluster, ClusterError> {
        if let Some(i) = config.shards.iter().position(|s| s.discovery.is_some()) {
            return Err(ClusterError::Discovery(i));
        }
        let shape: Vec<usize> = config.shards.iter().map(|s| s.replicas.len()).collect();
        let fleet = Fleet::start_shaped(&shape, node).await?;
        let mut names = BTreeMap::new();
        for (entry, nodes) in config.shards.iter_mut().zip(fleet.shards()) {
            entry.replicas = nodes.iter().map(|n| n.addr().to_string()).collect();
            for n in nodes {
                names.insert(n.addr().to_string(), n.name().to_string());
            }
        }
        let gateway = match Gateway::new(config.clone(), options) {
            Ok(gateway) => gateway,
            Err(e) => {
                fleet.kill_all().await;
                return Err(e.into());
            }
        };
        let router = gateway.router().merge(extra(&gateway));
        let server = serve_local(router).await?;
        Ok(Cluster {
            fleet,
            gateway,
            server,
            config,
            names: Arc::new(names),
        })
    }

    /// The gateway's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://{gateway}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Which shard owns a key, for the load generator's per-shard counts.
    pub fn shard_of(&self) -> ShardOf {
        let gateway = self.gateway.clone();
        Arc::new(move |key: &str| gateway.shard_of(key).unwrap_or_else(|| "none".into()))
    }

    /// The nodes of shard `s{shard}`.
    pub fn shard(&self, shard: usize) -> &[NodeControl] {
        &self.fleet.shards()[shard]
    }

    /// A key owned by shard `s{shard}`, made from `prefix` and a counter.
    pub fn key_on(&self, shard: usize, prefix: &str) -> String {
        let want = shard_id(shard);
        (0u64..)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| self.gateway.shard_of(k).as_deref() == Some(want.as_str()))
            .expect("every shard owns some keys")
    }

    /// Stops the gateway, then every node, gracefully.
    pub async fn stop(&self) {
        self.server.stop().await;
        self.fleet.stop_all().await;
    }

    /// Kills the gateway and every node (fast; for the scale run's rows).
    pub async fn kill(&self) {
        self.server.kill().await;
        self.fleet.kill_all().await;
    }
}

/// Faults are injected into the fleet's nodes by name (`--kill s1r0`).
impl FaultTarget for NodeControl {
    fn kill(&self) {
        let node = self.clone();
        tokio::spawn(async move { node.kill().await });
    }

    fn set_slow(&self, factor: u32) {
        NodeControl::set_slow(self, factor);
    }

    fn set_flaky(&self, rate: f64) {
        NodeControl::set_flaky(self, rate);
    }
}
