//! The kv fleet: `shards x replicas` storage nodes in this process, each on its
//! own ephemeral loopback port, named `s{shard}r{replica}` (0-based, `s1r2`)
//! in shards `s{shard}`.

use super::node::{self, NodeConfig, NodeControl};

/// The running nodes, shard by shard.
#[derive(Clone, Debug)]
pub struct Fleet {
    shards: Vec<Vec<NodeControl>>,
}

/// A shard's id: `s{shard}`.
pub fn shard_id(shard: usize) -> String {
    format!("s{shard}")
}

/// A node's name: `s{shard}r{replica}`.
pub fn node_name(shard: usize, replica: usize) -> String {
    format!("s{shard}r{replica}")
}

impl Fleet {
    /// Starts `shards x replicas` nodes with the same capacity.
    pub async fn start(
        shards: usize,
        replicas: usize,
        config: NodeConfig,
    ) -> std::io::Result<Self> {
        Self::start_shaped(&vec![replicas; shards], config).await
    }

    /// Starts `shape[s]` nodes for each shard `s`, with the same capacity.
    pub async fn start_shaped(shape: &[usize], config: NodeConfig) -> std::io::Result<Self> {
        let mut all = Vec::with_capacity(shape.len());
        for (s, &replicas) in shape.iter().enumerate() {
            let mut nodes = Vec::with_capacity(replicas);
            for r in 0..replicas {
                nodes.push(node::start(&node_name(s, r), config).await?);
            }
            all.push(nodes);
        }
        Ok(Self { shards: all })
    }

    /// The nodes, shard by shard.
    pub fn shards(&self) -> &[Vec<NodeControl>] {
        &self.shards
    }

    /// Every node.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeControl> {
        self.shards.iter().flatten()
    }

    /// The node named `name` (`s1r2`), if there is one.
    pub fn node(&self, name: &str) -> Option<&NodeControl> {
        self.nodes().find(|n| n.name() == name)
    }

    /// Each shard's id with its replicas' addresses, in the fleet's order.
    pub fn addresses(&self) -> Vec<(String, Vec<String>)> {
        self.shards
            .iter()
            .enumerate()
            .map(|(s, nodes)| {
                (
                    shard_id(s),
                    nodes.iter().map(|n| n.addr().to_string()).collect(),
                )
            })
            .collect()
    }

    /// Kills every node (connections reset, ports released at once).
    pub async fn kill_all(&self) {
        for node in self.nodes() {
            node.kill().await;
        }
    }

    /// Stops every node gracefully.
    pub async fn stop_all(&self) {
        for node in self.nodes() {
            node.stop().await;
        }
    }
}
