//! A distributed chat service built from tower-fleet's layers.
//!
//! Chat nodes (HTTP servers) own rooms by consistent hashing and copy each
//! post to the next node of the room's preference list before
//! acknowledging it; gateways serve WebSocket clients and a web page, reach
//! the nodes through the canonical stack (cache -> retry -> shard -> breaker
//! -> timeout -> HTTP client), and follow each room's owner with one
//! subscription per room. `node.rs` explains placement, replication and the
//! fenced takeover; `gateway.rs` the failover, caching and delivery.
//!
//! ```text
//! cargo run --release --features http --example chat                 # the demo: load, node-1 killed midway
//! cargo run --release --features http --example chat -- --users 200 --rooms 20 --duration 20 --kill node-2 --at 8
//! cargo run --release --features http --example chat -- --serve      # prints the page's address, stays up
//! ```

// tests/chat.rs includes these modules too and uses parts this program does
// not (a node's stall for the fence test, the cache's counters).
#[allow(dead_code)]
mod cluster;
#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
mod gateway;
mod load;
#[allow(dead_code)]
mod node;
#[allow(dead_code)]
mod room;
#[allow(dead_code)]
mod upstream;
mod wire;

use std::time::Duration;

use cluster::{Cluster, ClusterConfig};
use load::LoadConfig;
use tower_fleet::BoxError;

const USAGE: &str =
    "usage: chat [--nodes N] [--gateways G] [--users N] [--rooms M] [--duration S] \
[--pace MS] [--kill NODE|none] [--at S] [--serve] [--port P]";

struct Args {
    cluster: ClusterConfig,
    load: LoadConfig,
    serve: bool,
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value:?}\n{USAGE}"))
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut cluster = ClusterConfig::default();
    let mut load = LoadConfig {
        users: 40,
        rooms: 8,
        duration: Duration::from_secs(6),
        pace: Duration::from_millis(100),
        kill: None,
        progress: true,
    };
    let mut serve = false;
    let mut kill = Some("node-1".to_string());
    let mut at: Option<f64> = None;
    while let Some(flag) = argv.next() {
        match flag.as_str() {
            "--nodes" => cluster.nodes = number(&flag, argv.next())?,
            "--gateways" => cluster.gateways = number(&flag, argv.next())?,
            "--users" => load.users = number(&flag, argv.next())?,
            "--rooms" => load.rooms = number(&flag, argv.next())?,
            "--duration" => {
                load.duration = Duration::from_secs_f64(number::<f64>(&flag, argv.next())?.max(0.5))
            }
            "--pace" => {
                load.pace = Duration::from_millis(number::<u64>(&flag, argv.next())?.max(1))
            }
            "--kill" => {
                let node = argv
                    .next()
                    .ok_or_else(|| format!("--kill needs a node\n{USAGE}"))?;
                kill = (node != "none").then_some(node);
            }
            "--at" => at = Some(number::<f64>(&flag, argv.next())?.max(0.0)),
            "--serve" => serve = true,
            "--port" => cluster.first_gateway_port = number(&flag, argv.next())?,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let at = at.map_or(load.duration / 2, Duration::from_secs_f64);
    load.kill = kill.map(|node| (node, at));
    Ok(Args {
        cluster,
        load,
        serve,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut cluster = Cluster::start(&args.cluster).await?;
    for n in &cluster.nodes {
        println!("{} on {}", n.node.id(), n.server.addr());
    }
    for (i, g) in cluster.gateways.iter().enumerate() {
        println!("gateway-{i}: chat page {}", g.page_url());
    }
    if args.serve {
        println!("serving; open a chat page above in a browser, stop with Ctrl-C");
        tokio::signal::ctrl_c().await?;
        cluster.stop().await;
        return Ok(());
    }
    let l = &args.load;
    println!(
        "{} users in {} rooms for {:.1}s, posting every {:?}{}",
        l.users,
        l.rooms,
        l.duration.as_secs_f64(),
        l.pace,
        l.kill
            .as_ref()
            .map(|(n, at)| format!(", {n} killed at {:.1}s", at.as_secs_f64()))
            .unwrap_or_default()
    );
    let summary = load::run(&mut cluster, &args.load).await?;
    for (i, g) in cluster.gateways.iter().enumerate() {
        let down = g.gateway.down();
        if !down.is_empty() {
            println!(
                "gateway-{i} gave up on {} and moved its rooms on",
                down.join(", ")
            );
        }
    }
    println!("{summary}");
    cluster.stop().await;
    if summary.lost + summary.duplicated + summary.out_of_order > 0 {
        eprintln!("FAILED: lost, duplicated or out-of-order messages");
        std::process::exit(1);
    }
    Ok(())
}
