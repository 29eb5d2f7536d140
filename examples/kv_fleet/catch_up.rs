//! A node that starts empty copies its shard from its peers before it says
//! it is ready.
//!
//! Nodes keep their data in memory, so a restarted node has nothing. Before
//! `/healthz` answers 200 it asks each peer of `--peers` whether it is ready
//! (`GET /healthz`), and copies every ready peer's `GET /dump` into its own
//! store, keeping the newest version of each key. Copying from every ready
//! peer, not just the first, is what makes the copy hold every acknowledged
//! write: a write acknowledged by W of the shard's N nodes is on at least one
//! peer that is not this node (W >= 2 here), unless that peer is down too.
//! Writes that arrive while the copy is under way reach the node directly (it
//! serves data requests at once; only its health says "not ready"), and
//! whatever the copy still misses is repaired by the gateways' read repair
//! the first time the key is read with this node in the quorum.
//!
//! When no peer is ready for `PEER_WAIT` (a new fleet, where every node
//! starts empty, or every node of the shard restarting at once) the node
//! starts empty: there is nothing to copy from, and waiting longer would
//! keep the whole shard down.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

use crate::common::http::send;

/// The client a node copies its peers with.
pub type HttpClient = crate::common::http::HttpClient<Full<Bytes>>;

/// How long a node waits for a ready peer before it starts empty.
pub const PEER_WAIT: Duration = Duration::from_secs(10);
/// How long one peer may take to answer `/healthz`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one peer may take to send its whole `/dump`.
const DUMP_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between rounds of asking the peers.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// What the catch-up did.
#[derive(Debug, Default)]
pub struct CaughtUp {
    /// The peers whose dump was copied.
    pub from: Vec<String>,
    /// Entries copied (summed over peers; a key several peers hold counts
    /// once per peer).
    pub entries: usize,
}

/// Copies the dumps of every ready peer through `load` (which parses one
/// dump and merges it into the node's store, returning the entry count).
/// Returns once at least one peer was copied, or after `wait` with none.
pub async fn catch_up(
    client: &HttpClient,
    peers: &[String],
    wait: Duration,
    mut load: impl FnMut(&[u8]) -> Result<usize, String>,
) -> CaughtUp {
    let mut done = CaughtUp::default();
    if peers.is_empty() {
        return done;
    }
    let give_up = Instant::now() + wait;
    loop {
        for peer in peers {
            if get(client, peer, "/healthz", PROBE_TIMEOUT).await.is_none() {
                continue;
            }
            let Some(dump) = get(client, peer, "/dump", DUMP_TIMEOUT).await else {
                continue;
            };
            match load(&dump) {
                Ok(n) => {
                    done.entries += n;
                    done.from.push(peer.clone());
                }
                Err(e) => eprintln!("kv-fleet: ignoring the dump of {peer}: {e}"),
            }
        }
        if !done.from.is_empty() || Instant::now() >= give_up {
            return done;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// The body of a 200 answer to `GET http://{peer}{path}`, or `None`.
async fn get(client: &HttpClient, peer: &str, path: &str, limit: Duration) -> Option<Vec<u8>> {
    let url = format!("http://{peer}{path}");
    match send(client, http::Method::GET, &url, Default::default(), limit).await? {
        (http::StatusCode::OK, body) => Some(body.to_vec()),
        _ => None,
    }
}
