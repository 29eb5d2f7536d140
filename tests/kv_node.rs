//! The kv example's storage node and hybrid logical clock
//! (`examples/kv_cluster/{node,hlc}.rs`) over real loopback HTTP.

#[path = "../examples/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/kv_cluster/fleet.rs"]
mod fleet;
#[allow(dead_code)]
#[path = "../examples/kv_cluster/hlc.rs"]
mod hlc;
#[allow(dead_code)]
#[path = "../examples/kv_cluster/node.rs"]
mod node;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;

use hlc::{Hlc, Version};
use node::{DumpEntry, Entry, NodeConfig};

async fn call(
    client: &common::http::HttpClient,
    method: Method,
    url: String,
    body: Option<String>,
) -> Result<(StatusCode, String), String> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn entry(value: &str, millis: u64) -> Entry {
    Entry {
        value: value.into(),
        version: Version {
            millis,
            counter: 0,
            gateway: 1,
        },
        tombstone: false,
    }
}

#[test]
fn hlc_orders_writes_in_the_same_millisecond_and_never_goes_back() {
    let a = Hlc::new(1);
    let v1 = a.tick(100);
    let v2 = a.tick(100);
    let v3 = a.tick(90);
    assert!(v1 < v2 && v2 < v3, "{v1:?} {v2:?} {v3:?}");
    let b = Hlc::new(2);
    b.observe(v3);
    assert!(b.tick(50) > v3);
    // Same millis and counter: the gateway id decides, so versions never tie.
    assert!(Hlc::new(2).tick(7) > Hlc::new(1).tick(7));
}

#[test]
fn versions_round_trip_through_their_header() {
    let v = Version {
        millis: 1_700_000_000_123,
        counter: 7,
        gateway: 42,
    };
    assert_eq!(Version::from_header(&v.to_header()), Some(v));
    for bad in ["", "1.2", "1.2.3.4", "a.2.3", "1.-2.3"] {
        assert_eq!(Version::from_header(bad), None, "{bad:?}");
    }
}

#[tokio::test]
async fn node_keeps_the_newest_version_and_tombstones() {
    let node = node::start("s0r0", NodeConfig::default()).await.unwrap();
    let client = common::http::client();
    let url = format!("http://{}/kv/k", node.addr());
    let put = |e: &Entry| Some(serde_json::to_string(e).unwrap());

    let (status, _) = call(&client, Method::GET, url.clone(), None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    call(&client, Method::PUT, url.clone(), put(&entry("new", 20)))
        .await
        .unwrap();
    // An older write arriving late does not overwrite the newer one.
    let (status, body) = call(&client, Method::PUT, url.clone(), put(&entry("old", 10)))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Entry>(&body).unwrap().value, "new");

    let del = Version {
        millis: 30,
        counter: 0,
        gateway: 1,
    };
    call(
        &client,
        Method::DELETE,
        url.clone(),
        Some(serde_json::to_string(&del).unwrap()),
    )
    .await
    .unwrap();
    // A stale write after the delete does not resurrect the key.
    call(&client, Method::PUT, url.clone(), put(&entry("stale", 25)))
        .await
        .unwrap();
    let (_, body) = call(&client, Method::GET, url.clone(), None).await.unwrap();
    let got: Entry = serde_json::from_str(&body).unwrap();
    assert!(got.tombstone && got.version == del, "{got:?}");

    let (_, body) = call(
        &client,
        Method::GET,
        format!("http://{}/dump", node.addr()),
        None,
    )
    .await
    .unwrap();
    let dump: Vec<DumpEntry> = serde_json::from_str(&body).unwrap();
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].key, "k");
    assert!(dump[0].entry.tombstone);
}

#[tokio::test]
async fn node_faults_are_injected_and_counted() {
    let node = node::start("s0r1", NodeConfig::default()).await.unwrap();
    let client = common::http::client();
    let url = format!("http://{}/kv/k", node.addr());
    node.set_flaky(1.0);
    let (status, _) = call(&client, Method::GET, url.clone(), None).await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    node.set_flaky(0.0);
    node.set_slow(3);
    let (status, _) = call(&client, Method::GET, url.clone(), None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(node.served(), 2);
    let (status, _) = call(&client, Method::PUT, url.clone(), Some("{not json".into()))
        .await
        .unwrap();
    assert!(status.is_client_error(), "{status}");

    node.kill().await;
    assert!(!node.is_running());
    assert!(call(&client, Method::GET, url, None).await.is_err());
}

#[tokio::test]
async fn fleet_names_its_nodes_by_shard_and_replica() {
    let fleet = fleet::Fleet::start(2, 3, NodeConfig::default())
        .await
        .unwrap();
    let addresses = fleet.addresses();
    assert_eq!(addresses.len(), 2);
    assert_eq!(addresses[1].0, "s1");
    assert_eq!(addresses[1].1.len(), 3);
    let node = fleet.node("s1r2").expect("s1r2 exists");
    assert_eq!(node.addr().to_string(), addresses[1].1[2]);
    assert!(fleet.node("s2r0").is_none());
    fleet.stop_all().await;
    assert!(fleet.nodes().all(|n| !n.is_running()));
}

#[test]
fn the_kv_config_file_parses_and_validates() {
    use tower_fleet::config::Validate;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/kv_cluster.toml"
    ))
    .unwrap();
    let config: tower_fleet::stack::StackConfig = toml::from_str(&text).unwrap();
    config.validate().unwrap();
    assert_eq!(config.shards.len(), 4);
    assert!(config.shards.iter().all(|s| s.replicas.len() == 3));
}
