//! The Kubernetes manifests in `deploy/` are well-formed YAML and agree with
//! the `kv-fleet` binary's flags, with each other, and with the README:
//! kinds and names, headless Services per shard, ports, the gateway's
//! configuration naming each shard's DNS name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every document of every `.yaml` file, with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{file} is not well-formed YAML: {e}"));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

/// The value at a dotted path (`spec.template.spec.containers.0.args`).
fn at<'v>(v: &'v Value, path: &str) -> &'v Value {
    let mut here = v;
    for part in path.split('.') {
        here = match part.parse::<usize>() {
            Ok(i) => here.get(i),
            Err(_) => here.get(part),
        }
        .unwrap_or_else(|| panic!("no {path} (stopped at {part}) in {v:?}"));
    }
    here
}

fn str_at<'v>(v: &'v Value, path: &str) -> &'v str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn u64_at(v: &Value, path: &str) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number"))
}

/// The manifests by (kind, name).
fn by_kind_and_name() -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    for (file, doc) in manifests() {
        let kind = str_at(&doc, "kind").to_string();
        let name = str_at(&doc, "metadata.name").to_string();
        assert!(
            doc.get("apiVersion").is_some(),
            "{file}: {kind} {name} has no apiVersion"
        );
        if kind != "Namespace" {
            assert_eq!(
                str_at(&doc, "metadata.namespace"),
                NAMESPACE,
                "{file}: {kind} {name}"
            );
        }
        let previous = all.insert((kind.clone(), name.clone()), doc);
        assert!(previous.is_none(), "{file}: {kind} {name} appears twice");
    }
    all
}

fn get<'m>(all: &'m BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'m Value {
    all.get(&(kind.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"))
}

const NAMESPACE: &str = "kv";
const SHARDS: [&str; 2] = ["s0", "s1"];

/// The flags `kv-fleet` takes, per role: (flag, required).
fn flags(role: &str) -> &'static [(&'static str, bool)] {
    match role {
        "node" => &[
            ("--role", true),
            ("--listen", true),
            ("--shard", true),
            ("--peers", false),
            ("--capacity", false),
            ("--service-time", false),
        ],
        "gateway" => &[
            ("--role", true),
            ("--listen", true),
            ("--config", true),
            ("--redis", false),
            ("--id", false),
        ],
        other => panic!("unknown role {other}"),
    }
}

/// A container's args as flag -> value, checked against the role's flags.
fn args(container: &Value) -> BTreeMap<String, String> {
    let list: Vec<&str> = at(container, "args")
        .as_sequence()
        .expect("args is a list")
        .iter()
        .map(|a| a.as_str().expect("every arg is a string"))
        .collect();
    assert!(
        list.len() % 2 == 0,
        "args come in flag/value pairs: {list:?}"
    );
    let mut map = BTreeMap::new();
    for pair in list.chunks(2) {
        assert!(pair[0].starts_with("--"), "{} is not a flag", pair[0]);
        let previous = map.insert(pair[0].to_string(), pair[1].to_string());
        assert!(previous.is_none(), "{} given twice", pair[0]);
    }
    let role = map.get("--role").expect("--role is given").clone();
    let known = flags(&role);
    for flag in map.keys() {
        assert!(
            known.iter().any(|(f, _)| f == flag),
            "kv-fleet --role {role} has no flag {flag}"
        );
    }
    for (flag, required) in known {
        assert!(
            !required || map.contains_key(*flag),
            "--role {role} needs {flag}"
        );
    }
    map
}

/// The port of a `--listen` address (`0.0.0.0:8080`).
fn listen_port(listen: &str) -> u64 {
    let (host, port) = listen.rsplit_once(':').expect("--listen is host:port");
    assert_eq!(host, "0.0.0.0", "a pod must listen on every interface");
    port.parse().expect("--listen has a numeric port")
}

/// The container's port named `http`, which must be the one it listens on.
fn http_port(container: &Value, listen: &str) -> u64 {
    let port = u64_at(container, "ports.0.containerPort");
    assert_eq!(str_at(container, "ports.0.name"), "http");
    assert_eq!(
        port,
        listen_port(listen),
        "containerPort is the --listen port"
    );
    port
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .expect("labels are a map")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
        .collect()
}

/// `selector` picks exactly what `template_labels` carries.
fn selects(selector: &Value, template_labels: &Value) {
    let template = labels(template_labels);
    for (k, v) in labels(selector) {
        assert_eq!(
            template.get(&k),
            Some(&v),
            "selector {k}={v} matches no pod label"
        );
    }
}

/// The gateway's configuration file, from its ConfigMap.
fn gateway_text(all: &BTreeMap<(String, String), Value>) -> &str {
    at(get(all, "ConfigMap", "kv-gateway"), "data")
        .get("gateway.toml")
        .and_then(Value::as_str)
        .expect("the ConfigMap holds gateway.toml")
}

fn gateway_toml(all: &BTreeMap<(String, String), Value>) -> toml::Table {
    toml::from_str(gateway_text(all)).expect("gateway.toml is TOML")
}

#[test]
fn every_manifest_parses_and_has_the_kinds_the_readme_lists() {
    let all = by_kind_and_name();
    get(&all, "Namespace", NAMESPACE);
    for shard in SHARDS {
        get(&all, "Service", &format!("kv-{shard}"));
        get(&all, "StatefulSet", &format!("kv-{shard}"));
    }
    get(&all, "Deployment", "kv-gateway");
    get(&all, "Service", "kv-gateway");
    get(&all, "ConfigMap", "kv-gateway");
    get(&all, "Deployment", "redis");
    get(&all, "Service", "redis");
}

#[test]
fn each_shard_is_a_statefulset_behind_a_headless_service() {
    let all = by_kind_and_name();
    for shard in SHARDS {
        let name = format!("kv-{shard}");
        let service = get(&all, "Service", &name);
        assert_eq!(
            str_at(service, "spec.clusterIP"),
            "None",
            "{name} must be headless"
        );
        assert_eq!(
            at(service, "spec.publishNotReadyAddresses").as_bool(),
            Some(false),
            "{name}: nodes still catching up must stay out of DNS"
        );
        let set = get(&all, "StatefulSet", &name);
        assert_eq!(
            str_at(set, "spec.serviceName"),
            name,
            "stable names need the headless Service"
        );
        assert_eq!(u64_at(set, "spec.replicas"), 3);
        selects(
            at(service, "spec.selector"),
            at(set, "spec.template.metadata.labels"),
        );
        selects(
            at(set, "spec.selector.matchLabels"),
            at(set, "spec.template.metadata.labels"),
        );

        let container = at(set, "spec.template.spec.containers.0");
        let args = args(container);
        assert_eq!(args["--role"], "node");
        assert_eq!(args["--shard"], shard);
        let port = http_port(container, &args["--listen"]);
        assert_eq!(u64_at(service, "spec.ports.0.port"), port);
        assert_eq!(str_at(container, "readinessProbe.httpGet.path"), "/healthz");
        if let Some(capacity) = args.get("--capacity") {
            assert!(
                capacity.parse::<u32>().is_ok_and(|c| c > 0),
                "--capacity {capacity}"
            );
        }
        if let Some(time) = args.get("--service-time") {
            tower_fleet::config::parse_duration(time).expect("--service-time is a duration");
        }
        // --peers: every node of the shard by its stable name.
        let peers: BTreeSet<&str> = args["--peers"].split(',').collect();
        let expected: BTreeSet<String> = (0..3)
            .map(|i| format!("{name}-{i}.{name}.{NAMESPACE}.svc.cluster.local:{port}"))
            .collect();
        assert_eq!(peers, expected.iter().map(String::as_str).collect());
    }
}

#[test]
fn the_gateway_config_names_each_shards_dns_name() {
    let all = by_kind_and_name();
    let config = gateway_toml(&all);
    let shards = config["shards"].as_array().expect("[[shards]]");
    let ids: Vec<&str> = shards.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, SHARDS);
    for shard in shards {
        let id = shard["id"].as_str().unwrap();
        let discovery = shard["discovery"].as_str().expect("shards name a DNS name");
        let service = format!("kv-{id}");
        let port = u64_at(get(&all, "Service", &service), "spec.ports.0.port");
        assert_eq!(
            discovery,
            format!("{service}.{NAMESPACE}.svc.cluster.local:{port}")
        );
        assert!(
            shard.get("replicas").is_none(),
            "{id}: addresses come from DNS"
        );
    }
}

#[cfg(feature = "dns")]
#[test]
fn the_gateway_config_is_a_valid_stack() {
    use tower_fleet::stack::StackConfig;
    use tower_fleet::Validate;
    let all = by_kind_and_name();
    let config: StackConfig =
        toml::from_str(gateway_text(&all)).expect("gateway.toml is a StackConfig");
    config.validate().expect("gateway.toml validates");
    let quorum = config
        .balance
        .quorum
        .expect("the kv gateway uses quorum reads and writes");
    assert!(
        quorum.read + quorum.write > 3,
        "R + W > N gives read-your-writes"
    );
}

#[test]
fn the_gateway_runs_with_its_config_and_redis_is_there_for_the_cache_tier() {
    let all = by_kind_and_name();
    let deployment = get(&all, "Deployment", "kv-gateway");
    let pod = at(deployment, "spec.template.spec");
    let container = at(pod, "containers.0");
    let args = args(container);
    assert_eq!(args["--role"], "gateway");
    http_port(container, &args["--listen"]);
    assert_eq!(str_at(container, "readinessProbe.httpGet.path"), "/healthz");

    // --config is the ConfigMap's key, where the volume is mounted.
    let mount = str_at(container, "volumeMounts.0.mountPath");
    let volume = str_at(container, "volumeMounts.0.name");
    assert_eq!(str_at(pod, "volumes.0.name"), volume);
    assert_eq!(str_at(pod, "volumes.0.configMap.name"), "kv-gateway");
    assert_eq!(args["--config"], format!("{mount}/gateway.toml"));

    // The gateways share the Redis tier: --redis names the redis Service.
    let redis = get(&all, "Service", "redis");
    let redis_port = u64_at(redis, "spec.ports.0.port");
    assert_eq!(redis_port, 6379);
    assert_eq!(
        args["--redis"],
        format!("redis://redis.kv.svc.cluster.local:{redis_port}")
    );
    let redis_pod = at(get(&all, "Deployment", "redis"), "spec.template");
    selects(at(redis, "spec.selector"), at(redis_pod, "metadata.labels"));
    assert_eq!(
        u64_at(redis_pod, "spec.containers.0.ports.0.containerPort"),
        redis_port
    );

    let service = get(&all, "Service", "kv-gateway");
    assert_eq!(str_at(service, "spec.ports.0.targetPort"), "http");
    assert_eq!(u64_at(service, "spec.ports.0.port"), 80);
    selects(
        at(service, "spec.selector"),
        at(deployment, "spec.template.metadata.labels"),
    );
}
#[test]
fn the_dockerfile_builds_the_binary_with_its_features() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let build = text
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("the Dockerfile builds with cargo");
    assert!(build.contains("--bin kv-fleet"), "{build}");
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap(),
    )
    .unwrap();
    let bin = manifest["bin"]
        .as_array()
        .and_then(|bins| bins.iter().find(|b| b["name"].as_str() == Some("kv-fleet")))
        .expect("Cargo.toml has the kv-fleet binary");
    for feature in bin["required-features"].as_array().unwrap() {
        let feature = feature.as_str().unwrap();
        assert!(
            build.contains(feature),
            "the image needs feature {feature}: {build}"
        );
    }
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/kv-fleet\"]"));
}
