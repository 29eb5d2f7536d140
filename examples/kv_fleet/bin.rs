//! `kv-fleet`: the kv example as separate processes, one binary for both
//! roles (see the README's "Running on Kubernetes" and `deploy/`).
//!
//! ```text
//! kv-fleet --role node --listen ADDR --shard ID [--peers ADDR,ADDR...] [--capacity N] [--service-time DUR]
//! kv-fleet --role gateway --listen ADDR --config FILE [--redis URL] [--id N]
//! ```
//!
//! A gateway also serves `GET /metrics` (Prometheus text). Each process
//! prints `kv-fleet <role> listening on ADDR` once it serves,
//! and stops on Ctrl-C or SIGTERM.

mod args;
mod catch_up;

// The node, gateway and clock of the in-process kv example, shared so that
// both run the same code.
#[allow(dead_code)] // the tests' views of the stack go unused here
#[path = "../kv_cluster/gateway.rs"]
mod gateway;
#[path = "../kv_cluster/hlc.rs"]
mod hlc;
#[allow(dead_code)] // the in-process fleet's controls go unused here
#[path = "../kv_cluster/node.rs"]
mod node;
#[allow(dead_code)] // the route from a stack handle goes unused here
#[path = "../kv_cluster/prometheus.rs"]
mod prometheus;
#[path = "../kv_cluster/stack.rs"]
mod stack;

// The HTTP client every example shares, so its timeouts are set in one place.
#[path = "../common/http.rs"]
mod common_http;
#[allow(dead_code)] // only what the node's in-process start uses
#[path = "../common/server.rs"]
mod common_server;

/// The examples' shared plumbing, where the shared modules look for it.
mod common {
    pub(crate) use crate::common_http as http;
    pub(crate) use crate::common_server as server;
}

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use args::{GatewayArgs, NodeArgs, Role};
use tower_fleet::stack::StackConfig;
use tower_fleet::Validate;

/// A node's default concurrency.
const DEFAULT_CAPACITY: usize = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let role = match args::parse(std::env::args().skip(1)) {
        Ok(role) => role,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("kv-fleet: {message}");
            }
            eprintln!("{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match role {
        Role::Node(args) => run_node(args).await,
        Role::Gateway(args) => run_gateway(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kv-fleet: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_node(args: NodeArgs) -> Result<(), String> {
    let config = node::NodeConfig {
        concurrency: args.capacity.unwrap_or(DEFAULT_CAPACITY),
        service_time: args.service_time.unwrap_or(Duration::ZERO),
    };
    let node = node::Node::new(&args.shard, config, args.peers.is_empty());
    let listener = bind(args.listen).await?;
    let shard = args.shard.clone();
    let served = serve(listener, node.router(), &format!("node {shard}"))?;
    if !args.peers.is_empty() {
        let client = common::http::client();
        let copied = catch_up::catch_up(&client, &args.peers, catch_up::PEER_WAIT, |dump| {
            node.load_dump(dump)
        })
        .await;
        if copied.from.is_empty() {
            eprintln!("kv-fleet: node {shard}: no peer was ready; starting empty");
        } else {
            eprintln!(
                "kv-fleet: node {shard}: copied {} entries from {}",
                copied.entries,
                copied.from.join(", ")
            );
        }
        node.set_ready();
    }
    served.await.map_err(|e| format!("node {shard}: {e}"))
}

async fn run_gateway(args: GatewayArgs) -> Result<(), String> {
    let path = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config).map_err(|e| format!("{path}: {e}"))?;
    let config: StackConfig = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    config.validate().map_err(|e| format!("{path}: {e}"))?;
    let options = gateway::GatewayOptions {
        id: u32::from(args.id.unwrap_or_else(random_id)),
        redis: args.redis.clone(),
    };
    let gateway = gateway::Gateway::new(config, options).map_err(|e| match e {
        gateway::GatewayError::Stack(e) => format!("{path}: {e}"),
        redis => redis.to_string(),
    })?;
    let listener = bind(args.listen).await?;
    let router = gateway.router().merge(prometheus::metrics_route_with({
        let gateway = gateway.clone();
        move || gateway.publish_metrics()
    }));
    serve(listener, router, "gateway")?
        .await
        .map_err(|e| format!("gateway: {e}"))
}

async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))
}

/// Serves `router` until Ctrl-C or SIGTERM, after saying where.
fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    what: &str,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, String> {
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("kv-fleet {what} listening on {address}");
    Ok(axum::serve(listener, router)
        .with_graceful_shutdown(stopped())
        .into_future())
}

async fn stopped() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A gateway id when none is given: different on every start (time and
/// process id mixed), so gateways of one Deployment differ.
fn random_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = xxhash_rust::xxh3::xxh3_64(
        &[nanos.to_le_bytes(), std::process::id().to_le_bytes()].concat(),
    );
    mixed as u16
}
