//! `kv-fleet`'s command line, parsed by hand (no CLI crate for two roles).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage:
  kv-fleet --role node --listen ADDR --shard ID [--peers ADDR,ADDR...] [--capacity N] [--service-time DUR]
  kv-fleet --role gateway --listen ADDR --config FILE [--redis URL] [--id N]

  --listen ADDR       where to serve (ip:port; port 0 picks a free one; the
                      bound address is printed as `listening on ADDR`)
  --shard ID          the shard this node belongs to (as the gateway config names it)
  --peers ADDR,...    the shard's other nodes (host:port): an empty node copies
                      the shard from them before /healthz reports ready
  --capacity N        requests the node serves at once (default 64)
  --service-time DUR  simulated work per request, e.g. 1ms (default 0s)
  --config FILE       the gateway's stack (TOML): shards by addresses or DNS names
  --redis URL         the shared cache tier, e.g. redis://redis:6379
  --id N              this gateway's id in write versions (default: random)";

/// What to run.
#[derive(Debug, PartialEq)]
pub enum Role {
    /// A storage node.
    Node(NodeArgs),
    /// A gateway.
    Gateway(GatewayArgs),
}

#[derive(Debug, PartialEq)]
pub struct NodeArgs {
    pub listen: SocketAddr,
    pub shard: String,
    pub peers: Vec<String>,
    pub capacity: Option<usize>,
    pub service_time: Option<Duration>,
}

#[derive(Debug, PartialEq)]
pub struct GatewayArgs {
    pub listen: SocketAddr,
    pub config: PathBuf,
    pub redis: Option<String>,
    pub id: Option<u16>,
}

/// Parses the arguments after the program name; `Err` is a message for the
/// user (the caller prints it with the usage and exits non-zero).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Role, String> {
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if !flag.starts_with("--") {
            return Err(format!("unexpected argument {flag:?}"));
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flags.iter().any(|(f, _)| *f == flag) {
            return Err(format!("{flag} given twice"));
        }
        flags.push((flag, value));
    }
    let mut take = |name: &str| {
        flags
            .iter()
            .position(|(f, _)| f == name)
            .map(|i| flags.remove(i).1)
    };
    let role = take("--role").ok_or("--role is required (node or gateway)")?;
    let listen = take("--listen").ok_or("--listen is required")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen {listen:?}: expected ip:port, e.g. 0.0.0.0:8080"))?;
    let parsed = match role.as_str() {
        "node" => {
            let shard = take("--shard").ok_or("--role node needs --shard")?;
            let peers = take("--peers")
                .map(|p| {
                    p.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let capacity = take("--capacity")
                .map(|c| match c.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("--capacity {c:?}: expected a number above 0")),
                })
                .transpose()?;
            let service_time = take("--service-time")
                .map(|d| {
                    tower_fleet::config::parse_duration(&d)
                        .map_err(|e| format!("--service-time {d:?}: {}", e.reason()))
                })
                .transpose()?;
            Role::Node(NodeArgs {
                listen,
                shard,
                peers,
                capacity,
                service_time,
            })
        }
        "gateway" => {
            let config = take("--config").ok_or("--role gateway needs --config")?;
            let redis = take("--redis");
            let id = take("--id")
                .map(|i| {
                    i.parse::<u16>()
                        .map_err(|_| format!("--id {i:?}: expected a number 0-65535"))
                })
                .transpose()?;
            Role::Gateway(GatewayArgs {
                listen,
                config: PathBuf::from(config),
                redis,
                id,
            })
        }
        other => return Err(format!("--role {other:?}: expected node or gateway")),
    };
    if let Some((flag, _)) = flags.first() {
        return Err(format!("--role {role} takes no {flag}"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Role, String> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn a_node_with_every_flag() {
        let role = parse_str(
            "--role node --listen 0.0.0.0:8080 --shard s0 --peers a:1,b:2 --capacity 8 --service-time 2ms",
        )
        .unwrap();
        assert_eq!(
            role,
            Role::Node(NodeArgs {
                listen: "0.0.0.0:8080".parse().unwrap(),
                shard: "s0".into(),
                peers: vec!["a:1".into(), "b:2".into()],
                capacity: Some(8),
                service_time: Some(Duration::from_millis(2)),
            })
        );
    }

    #[test]
    fn a_gateway_with_every_flag() {
        let role = parse_str(
            "--role gateway --listen 127.0.0.1:0 --config g.toml --redis redis://r:6379 --id 7",
        )
        .unwrap();
        assert_eq!(
            role,
            Role::Gateway(GatewayArgs {
                listen: "127.0.0.1:0".parse().unwrap(),
                config: "g.toml".into(),
                redis: Some("redis://r:6379".into()),
                id: Some(7),
            })
        );
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        for (line, says) in [
            ("--listen 0.0.0.0:1", "--role is required"),
            ("--role node --shard s0", "--listen is required"),
            (
                "--role node --listen localhost:80 --shard s0",
                "expected ip:port",
            ),
            ("--role node --listen 0.0.0.0:1", "needs --shard"),
            (
                "--role node --listen 0.0.0.0:1 --shard s0 --capacity 0",
                "above 0",
            ),
            (
                "--role node --listen 0.0.0.0:1 --shard s0 --service-time soon",
                "--service-time",
            ),
            (
                "--role node --listen 0.0.0.0:1 --shard s0 --config x",
                "takes no --config",
            ),
            ("--role gateway --listen 0.0.0.0:1", "needs --config"),
            (
                "--role gateway --listen 0.0.0.0:1 --config x --id -1",
                "--id",
            ),
            ("--role cache --listen 0.0.0.0:1", "node or gateway"),
            ("--role node --role node", "given twice"),
            ("--role", "needs a value"),
            ("node", "unexpected argument"),
        ] {
            let err = parse_str(line).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}
