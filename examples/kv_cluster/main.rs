//! The kv example: a sharded, replicated key-value service over real HTTP,
//! in one process.
//!
//! ```text
//! cargo run --release --example kv_cluster --features http,metrics [-- FLAGS]
//! ```
//!
//! A fleet of storage nodes (4 shards x 3 replicas by default, each an HTTP
//! server on a loopback port with a bounded, simulated capacity) and a
//! gateway (`GET`/`PUT`/`DELETE /kv/{key}`, `/healthz`, `/metrics`) whose
//! client to the fleet is the crate's stack, built from
//! `examples/kv_cluster.toml`: cache, retry with a budget, consistent-hash
//! shards, and per shard a balancer in quorum mode (W = 2, R = 2 of 3) over
//! replicas guarded by breakers and timeouts.
//!
//! Without flags it takes a short tour through the gateway (a write, a
//! quorum read, a cache hit, a delete), then runs 16 seconds of load with
//! node `s1r0` killed half way, and prints what every layer did. See the
//! README for the output, explained line by line.
//!
//! Flags (see `USAGE`): `--serve` keeps the service up for curl; `--config
//! FILE` uses another stack; the load flags (`--rate`, `--concurrency`,
//! `--duration`, `--keys`, `--reads`, `--zipf`) shape the load and the fault
//! flags (`--kill NODE --at S`, `--slow NODE`, `--flaky NODE=RATE`) inject
//! faults; `--scale` measures throughput at 1, 2, 4 and 8 shards.

// The modules are shared with the tests, the kv_scale bench and the
// kv-fleet binary; each of them uses a different part.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod faults;
mod flags;
mod fleet;
mod gateway;
mod hlc;
mod load;
mod node;
mod prometheus;
mod report;
mod scale;
mod stack;
mod summary;
mod workload;
mod zipf;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower_fleet::stack::StackConfig;

use cluster::Cluster;
use common::http::HttpClient;
use flags::LoadFlags;
use gateway::GatewayOptions;
use node::NodeConfig;
use summary::{LayerCounters, Summary};

const USAGE: &str = "\
usage: kv_cluster [--serve] [--config FILE] [LOAD FLAGS] [FAULT FLAGS] | --scale

  (no flags)          a tour through the gateway, then 16s of load with s1r0 killed at 8s
  --serve             keep the fleet and gateway up for curl; Ctrl-C stops them
  --config FILE       the gateway's stack (TOML; default examples/kv_cluster.toml);
                      each shard's `replicas` count is how many nodes it gets
  --scale             throughput and CPU at 1, 2, 4 and 8 shards of 3 replicas

load (instead of the demonstration's):
  --rate N | --concurrency N   open loop at N req/s, or N requests outstanding (default 32)
  --duration S                 seconds of load (default 15)
  --keys N                     key space size (default 10000)
  --reads F                    fraction of GETs (default 0.9)
  --zipf S                     key popularity exponent, 0 = uniform (default 1.0)

faults (node names are s<shard>r<replica>, e.g. s1r0):
  --kill NODE [--at S]         kill NODE S seconds in (default: half way)
  --slow NODE                  NODE serves 10x slower
  --flaky NODE=RATE            NODE answers 500 to that fraction of requests";

/// What the command line asks for.
struct Args {
    config: Option<PathBuf>,
    serve: bool,
    load: LoadFlags,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let (load, rest) = flags::parse(args).map_err(|e| e.to_string())?;
    let mut parsed = Args {
        config: None,
        serve: false,
        load,
    };
    let mut rest = rest.into_iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--serve" => parsed.serve = true,
            "--config" => {
                let file = rest.next().ok_or("--config needs a file")?;
                parsed.config = Some(PathBuf::from(file));
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.serve && parsed.load.given {
        return Err("--serve runs no load: give it no load, fault or --scale flags".into());
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("kv_cluster: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match cluster::load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("kv_cluster: {message}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = if args.load.scale {
        run_scale(config).await
    } else {
        run(config, args).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kv_cluster: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the fleet and the gateway (with `/metrics`).
async fn start(config: StackConfig, node: NodeConfig) -> Result<Cluster, String> {
    let options = GatewayOptions { id: 1, redis: None };
    Cluster::start(config, node, options, |gateway| {
        let gateway = gateway.clone();
        prometheus::metrics_route_with(move || gateway.publish_metrics())
    })
    .await
    .map_err(|e| e.to_string())
}

async fn run(config: StackConfig, args: Args) -> Result<(), String> {
    let cluster = start(config, NodeConfig::default()).await?;
    print_layout(&cluster);
    if args.serve {
        return serve(&cluster).await;
    }
    tour(&cluster).await?;
    let flags = if args.load.given {
        args.load
    } else {
        faults::demonstration()
    };
    run_load(&cluster, &flags).await?;
    cluster.stop().await;
    Ok(())
}

fn print_layout(cluster: &Cluster) {
    let c = &cluster.config;
    println!(
        "fleet: {} shards x {} replicas, each node serving {} requests at once in {:?}",
        cluster.fleet.shards().len(),
        cluster.fleet.shards().first().map_or(0, |s| s.len()),
        NodeConfig::default().concurrency,
        NodeConfig::default().service_time,
    );
    for nodes in cluster.fleet.shards() {
        let list: Vec<String> = nodes
            .iter()
            .map(|n| format!("{} {}", n.name(), n.addr()))
            .collect();
        println!("  {}", list.join("   "));
    }
    let quorum = c
        .balance
        .quorum
        .as_ref()
        .map_or("no quorum".to_string(), |q| {
            format!("write W={} read R={}", q.write, q.read)
        });
    println!(
        "gateway: http://{} (stack: cache -> retry -> shard -> balancer ({quorum}) -> breaker + timeout per replica)",
        cluster.addr()
    );
}

/// `--serve`: up until Ctrl-C.
async fn serve(cluster: &Cluster) -> Result<(), String> {
    let key = cluster.url("/kv/hello");
    println!();
    println!("try:");
    println!("  curl -X PUT --data world {key}");
    println!("  curl {key}");
    println!("  curl -X DELETE {key}");
    println!("  curl {}", cluster.url("/metrics"));
    println!("Ctrl-C stops the gateway and the fleet.");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping");
    cluster.stop().await;
    Ok(())
}

/// One request to the gateway: the status and the body.
async fn request(
    client: &HttpClient<Full<Bytes>>,
    method: http::Method,
    url: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let res = client
        .request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).trim().to_string(),
    ))
}

/// Requests served by the fleet's nodes so far.
fn fleet_served(cluster: &Cluster) -> u64 {
    cluster.fleet.nodes().map(|n| n.served()).sum()
}

/// Requests served by the fleet once it is idle: a write's or read's third
/// leg finishes after the quorum of two answered, and a read repair after
/// the read; waits (a bounded while) until no node is serving.
async fn settled(cluster: &Cluster) -> u64 {
    let mut last = fleet_served(cluster);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = fleet_served(cluster);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// A few requests through the gateway, saying what each layer did.
async fn tour(cluster: &Cluster) -> Result<(), String> {
    let client = common::http::client::<Full<Bytes>>();
    let key = "user:42";
    let shard = cluster.gateway.shard_of(key).unwrap_or_default();
    println!();
    println!("tour (key {key:?} lives on shard {shard}):");
    let path = format!("/kv/{key}");
    // (method, path, body, what it shows; `{n}` is the node requests it made)
    let steps = [
        (
            http::Method::PUT,
            path.as_str(),
            "ada",
            format!("sent to every replica of {shard}, answered once 2 acknowledged ({{n}} node requests)"),
        ),
        (
            http::Method::GET,
            &path,
            "",
            "answered once 2 replicas had, newest version wins ({n} node requests)".into(),
        ),
        (
            http::Method::GET,
            &path,
            "",
            "from the gateway's cache: {n} node requests".into(),
        ),
        (
            http::Method::DELETE,
            &path,
            "",
            "a versioned tombstone on the replicas; the cached copy is invalidated".into(),
        ),
        (
            http::Method::GET,
            &path,
            "",
            "the tombstone is the newest version".into(),
        ),
        (
            http::Method::PUT,
            "/kv/",
            "x",
            "bad input is a 4xx that says why".into(),
        ),
    ];
    for (method, path, body, note) in steps {
        let what = format!("{method} {path} {body}");
        let before = settled(cluster).await;
        let (status, answer) = request(&client, method, &cluster.url(path), body).await?;
        let n = settled(cluster).await - before;
        let answer = if answer.is_empty() {
            String::new()
        } else {
            format!(" {answer:?}")
        };
        let note = note.replace("{n}", &n.to_string());
        println!("  {what:<22} -> {status}{answer:<8} {note}");
    }
    Ok(())
}

/// Runs the load of `flags` with its faults, then prints the summary.
async fn run_load(cluster: &Cluster, flags: &LoadFlags) -> Result<(), String> {
    let events = faults::plan(&flags.faults, flags.load.duration, |name| {
        cluster.fleet.node(name).cloned()
    })
    .map_err(|e| e.to_string())?;
    println!();
    let pace = match flags.load.pace {
        load::Pace::Rate(r) => format!("{r} req/s"),
        load::Pace::Concurrency(n) => format!("{n} requests outstanding"),
    };
    println!(
        "load: {:.0}s, {pace}, {:.0}% reads, {} keys (Zipf {}){}",
        flags.load.duration.as_secs_f64(),
        flags.load.reads * 100.0,
        flags.load.keys,
        flags.load.zipf,
        if events.is_empty() {
            String::new()
        } else {
            let what: Vec<String> = events
                .iter()
                .map(|e| format!("{} at {:.0}s", e.what, e.at.as_secs_f64()))
                .collect();
            format!("; {}", what.join(", "))
        }
    );
    let before = LayerCounters::from_snapshot(&cluster.gateway.snapshot());
    let report = load::run(cluster.addr(), &flags.load, cluster.shard_of(), events)
        .await
        .map_err(|e| e.to_string())?;
    // Let read repairs and breaker probes that the last requests started land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let layers = LayerCounters::from_snapshot(&cluster.gateway.snapshot()).since(&before);
    println!();
    println!("summary:");
    print!(
        "{}",
        Summary {
            report: &report,
            layers: &layers,
            names: &cluster.names,
        }
    );
    Ok(())
}

/// `--scale`: the same closed-loop load against 1, 2, 4 and 8 shards.
async fn run_scale(base: StackConfig) -> Result<(), String> {
    let node = scale::node_config();
    println!(
        "scale: {} replicas per shard, each node serving {} requests at once in {:?}, no cache, uniform keys",
        scale::REPLICAS,
        node.concurrency,
        node.service_time
    );
    let rows = scale::run_example(&base).await.map_err(|e| e.to_string())?;
    println!("{}", scale::ScaleTable(&rows));
    Ok(())
}
