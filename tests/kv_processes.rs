//! The kv example as separate processes: 2 shards x 3 nodes and 2 gateways,
//! each a `kv-fleet` process on a loopback port. Reads and writes go through
//! both gateways while one node is killed with SIGKILL and restarted empty;
//! no request fails, each gateway reads its own writes, the restarted node
//! becomes ready only once it holds the acknowledged writes, and none is lost.
//!
//! Every wait polls a condition up to a generous deadline that only catches
//! hangs; every child process is killed when its handle drops.

mod kv_procs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use kv_procs::{
    client, gateway_tables, ready, send, wait_until, HttpClient, Proc, TempFile, DEADLINE,
};

/// Six nodes (s0r0..s1r2) and two gateways, all on loopback.
struct Fleet {
    nodes: BTreeMap<String, Proc>,
    gateways: Vec<Proc>,
    _config: TempFile,
}

const SERVICE_TIME: &str = "1ms";

fn start_node(name: &str, shard: &str, listen: &str, peers: &[SocketAddr]) -> Proc {
    let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    let peers = peers.join(",");
    let mut args = vec![
        "--role",
        "node",
        "--listen",
        listen,
        "--shard",
        shard,
        "--capacity",
        "64",
        "--service-time",
        SERVICE_TIME,
    ];
    if !peers.is_empty() {
        args.extend(["--peers", peers.as_str()]);
    }
    Proc::start(name, &args)
}

/// The gateways' stack: quorum W=2 and R=2 of 3, strict shards, a cache.
fn gateway_config(nodes: &BTreeMap<String, Proc>) -> String {
    let mut text = gateway_tables("5s");
    for shard in ["s0", "s1"] {
        let replicas: Vec<String> = (0..3)
            .map(|r| format!("\"{}\"", nodes[&format!("{shard}r{r}")].addr))
            .collect();
        text.push_str(&format!(
            "\n[[shards]]\nid = \"{shard}\"\nreplicas = [{}]\n",
            replicas.join(", ")
        ));
    }
    text
}

impl Fleet {
    async fn start(client: &HttpClient) -> Fleet {
        let mut nodes = BTreeMap::new();
        for shard in ["s0", "s1"] {
            for r in 0..3 {
                let name = format!("{shard}r{r}");
                nodes.insert(name.clone(), start_node(&name, shard, "127.0.0.1:0", &[]));
            }
        }
        let path = std::env::temp_dir().join(format!(
            "kv-fleet-gateway-{}-{}.toml",
            std::process::id(),
            nodes["s0r0"].addr.port()
        ));
        std::fs::write(&path, gateway_config(&nodes)).unwrap();
        let config = TempFile(path);
        let path = config.0.to_str().unwrap().to_string();
        let gateways = (1..=2)
            .map(|id| {
                let id = id.to_string();
                Proc::start(
                    &format!("gateway {id}"),
                    &[
                        "--role",
                        "gateway",
                        "--listen",
                        "127.0.0.1:0",
                        "--config",
                        &path,
                        "--id",
                        &id,
                    ],
                )
            })
            .collect();
        let fleet = Fleet {
            nodes,
            gateways,
            _config: config,
        };
        for p in fleet.nodes.values().chain(&fleet.gateways) {
            wait_until(&format!("{} to be ready", p.name), DEADLINE, || {
                ready(client, p)
            })
            .await;
        }
        fleet
    }
}

/// What each gateway has had acknowledged: key -> value, its own keys only.
#[derive(Default)]
struct Acked(Vec<BTreeMap<String, String>>);

/// Writes `key = value` through gateway `g`: it must succeed, and the
/// gateway must then read it back (read-your-writes).
async fn write_and_read(
    client: &HttpClient,
    fleet: &Fleet,
    acked: &mut Acked,
    g: usize,
    key: &str,
    value: &str,
) {
    let gateway = &fleet.gateways[g];
    let (status, body) = send(client, "PUT", &gateway.url(&format!("/kv/{key}")), value).await;
    assert!(
        (200..300).contains(&status),
        "PUT {key} through gateway {g}: {status} {body}"
    );
    acked.0[g].insert(key.to_string(), value.to_string());
    let (status, body) = send(client, "GET", &gateway.url(&format!("/kv/{key}")), "").await;
    assert_eq!(
        (status, body.as_str()),
        (200, value),
        "gateway {g} must read its own write of {key}"
    );
}

/// Every acknowledged write, read through both gateways.
async fn assert_nothing_lost(client: &HttpClient, fleet: &Fleet, acked: &Acked) {
    for (g, writes) in acked.0.iter().enumerate() {
        for (key, value) in writes {
            for (through, gateway) in fleet.gateways.iter().enumerate() {
                let (status, body) =
                    send(client, "GET", &gateway.url(&format!("/kv/{key}")), "").await;
                assert_eq!(
                    (status, body.as_str()),
                    (200, value.as_str()),
                    "{key} (written through gateway {g}) read through gateway {through}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_costs_no_request_and_rejoins_only_after_catching_up() {
    let client = client();
    let mut fleet = Fleet::start(&client).await;
    let mut acked = Acked(vec![BTreeMap::new(), BTreeMap::new()]);
    const KEYS: usize = 40;

    // Bad input is a clear 4xx, and the fleet is unharmed.
    let long = "k".repeat(2000);
    let (status, body) = send(
        &client,
        "PUT",
        &fleet.gateways[0].url(&format!("/kv/{long}")),
        "v",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("at most"), "{body}");
    let (status, _) = send(
        &client,
        "GET",
        &fleet.gateways[1].url("/kv/never-written"),
        "",
    )
    .await;
    assert_eq!(status, 404);

    // Both gateways write and read their own keys.
    for i in 0..KEYS {
        for g in 0..2 {
            let (key, value) = (format!("g{g}-k{i}"), format!("v1-{g}-{i}"));
            write_and_read(&client, &fleet, &mut acked, g, &key, &value).await;
        }
    }

    // SIGKILL one node of s0; traffic goes on, overwriting and adding keys.
    let victim = "s0r1";
    let address = fleet.nodes[victim].addr;
    fleet.nodes.get_mut(victim).unwrap().kill();
    for i in 0..KEYS {
        for g in 0..2 {
            let (key, value) = if i % 2 == 0 {
                (format!("g{g}-k{i}"), format!("v2-{g}-{i}"))
            } else {
                (
                    format!("g{g}-k{}", KEYS + i),
                    format!("v1-{g}-{}", KEYS + i),
                )
            };
            write_and_read(&client, &fleet, &mut acked, g, &key, &value).await;
        }
    }

    // Restart it empty on the same address; it copies s0 from its peers.
    let peers = [fleet.nodes["s0r0"].addr, fleet.nodes["s0r2"].addr];
    let restarted = start_node(victim, "s0", &address.to_string(), &peers);
    wait_until("the restarted node to be ready", DEADLINE, || {
        ready(&client, &restarted)
    })
    .await;
    // Ready means caught up: it holds every acknowledged write of its shard.
    let mine = dump(&client, &restarted).await;
    let mut shard_keys = dump(&client, &fleet.nodes["s0r0"]).await;
    shard_keys.extend(dump(&client, &fleet.nodes["s0r2"]).await);
    let mut checked = 0;
    for (key, value) in acked.0.iter().flatten() {
        if shard_keys.contains_key(key) {
            assert_eq!(
                mine.get(key),
                Some(value),
                "{key} was acknowledged before the restart"
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "s0 owns some keys ({checked})");
    fleet.nodes.insert(victim.to_string(), restarted);

    // More traffic with the node back, then no acknowledged write is lost
    // through either gateway.
    for i in 0..KEYS / 2 {
        for g in 0..2 {
            let (key, value) = (format!("g{g}-k{i}"), format!("v3-{g}-{i}"));
            write_and_read(&client, &fleet, &mut acked, g, &key, &value).await;
        }
    }
    assert_nothing_lost(&client, &fleet, &acked).await;
}

/// A node's `/dump` as key -> value (deletes left out).
async fn dump(client: &HttpClient, node: &Proc) -> BTreeMap<String, String> {
    let (status, body) = send(client, "GET", &node.url("/dump"), "").await;
    assert_eq!(status, 200, "{}'s /dump: {body}", node.name);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&body).expect("a JSON list");
    entries
        .into_iter()
        .filter_map(|e| {
            if e["tombstone"].as_bool() == Some(true) {
                return None;
            }
            let key = e["key"].as_str()?.to_string();
            let value = e["value"].as_str()?.to_string();
            Some((key, value))
        })
        .collect()
}

#[test]
fn a_gateway_with_a_bad_config_names_the_file_and_exits_1() {
    let path = std::env::temp_dir().join(format!("kv-fleet-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[[shards]]\nid = \"s0\"\nreplicas = []\n").unwrap();
    let _cleanup = TempFile(path.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_kv-fleet"))
        .args(["--role", "gateway", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("shards[0].replicas"), "{stderr}");

    let missing = Command::new(env!("CARGO_BIN_EXE_kv-fleet"))
        .args([
            "--role",
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "/no/such.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such.toml"));

    let usage = Command::new(env!("CARGO_BIN_EXE_kv-fleet"))
        .args(["--role", "node", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("needs --shard"));
}
