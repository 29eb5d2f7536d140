//! The chat example (examples/chat) over real sockets: nodes, gateways and
//! WebSocket clients on ephemeral loopback ports, waiting on conditions.

#[allow(dead_code)]
#[path = "../examples/chat/cluster.rs"]
mod cluster;
#[path = "../examples/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/chat/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "../examples/chat/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../examples/chat/node.rs"]
mod node;
#[allow(dead_code)]
#[path = "../examples/chat/room.rs"]
mod room;
#[allow(dead_code)]
#[path = "../examples/chat/upstream.rs"]
mod upstream;
#[allow(dead_code)]
#[path = "../examples/chat/wire.rs"]
mod wire;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use cluster::{Cluster, ClusterConfig};
use upstream::UpstreamConfig;
use wire::{ClientFrame, Message, Post, ServerFrame};

/// Catches hangs only: every wait ends as soon as its condition holds.
const PATIENCE: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket user of one gateway.
struct User {
    ws: Ws,
    /// Messages received, in arrival order.
    messages: Vec<Message>,
    /// Other frames not yet taken.
    frames: Vec<ServerFrame>,
}

impl User {
    async fn connect(url: &str) -> User {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        User {
            ws,
            messages: Vec::new(),
            frames: Vec::new(),
        }
    }

    async fn send(&mut self, frame: &ClientFrame) {
        let text = serde_json::to_string(frame).unwrap();
        self.ws
            .send(WsMessage::Text(text.into()))
            .await
            .expect("send");
    }

    /// Reads one frame (messages go to `messages`, others to `frames`).
    async fn read(&mut self) {
        let frame = tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("a frame within the patience")
            .expect("connection open")
            .expect("a readable frame");
        let WsMessage::Text(text) = frame else {
            panic!("unexpected frame {frame:?}");
        };
        match serde_json::from_str::<ServerFrame>(&text).expect("a server frame") {
            ServerFrame::Message(m) => self.messages.push(m),
            other => self.frames.push(other),
        }
    }

    /// Reads until a frame matches `pick`, and returns what it picked.
    async fn take<T>(&mut self, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> T {
        loop {
            if let Some(i) = self.frames.iter().position(|f| pick(f).is_some()) {
                let frame = self.frames.remove(i);
                return pick(&frame).unwrap();
            }
            self.read().await;
        }
    }

    async fn join(&mut self, room: &str, name: &str) -> Vec<Message> {
        self.send(&ClientFrame::Join {
            room: room.into(),
            user: name.into(),
        })
        .await;
        self.take(|f| match f {
            ServerFrame::Joined { room: r, messages } if r == room => Some(messages.clone()),
            _ => None,
        })
        .await
    }

    /// Posts and waits for the acknowledgement, resending the same id after
    /// an error frame; returns the sequence number.
    async fn post(&mut self, room: &str, id: &str, text: &str) -> u64 {
        let frame = ClientFrame::Post {
            room: room.into(),
            id: id.into(),
            text: text.into(),
        };
        self.send(&frame).await;
        loop {
            let got = self
                .take(|f| match f {
                    ServerFrame::Ack { id: i, seq, .. } if i == id => Some(Ok(*seq)),
                    ServerFrame::Error {
                        id: Some(i),
                        reason,
                    } if i == id => Some(Err(reason.clone())),
                    _ => None,
                })
                .await;
            match got {
                Ok(seq) => return seq,
                Err(_) => self.send(&frame).await,
            }
        }
    }

    async fn history(&mut self, room: &str) -> Vec<Message> {
        self.send(&ClientFrame::History { room: room.into() }).await;
        self.take(|f| match f {
            ServerFrame::History { room: r, messages } if r == room => Some(messages.clone()),
            _ => None,
        })
        .await
    }

    /// Reads until `n` messages have arrived.
    async fn until_messages(&mut self, n: usize) {
        while self.messages.len() < n {
            self.read().await;
        }
    }

    /// Reads until the gateway closes the connection; its close frame.
    async fn closed(&mut self) -> (CloseCode, String) {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a close within the patience");
            match frame {
                Some(Ok(WsMessage::Close(Some(close)))) => {
                    return (close.code, close.reason.to_string())
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn config() -> ClusterConfig {
    ClusterConfig {
        upstream: UpstreamConfig {
            attempt_timeout: Duration::from_secs(2),
            history_ttl: Duration::from_secs(60),
        },
        ..ClusterConfig::default()
    }
}

/// The room's owner and successor, as the gateways place it.
fn owners(cluster: &Cluster, room: &str) -> (String, String) {
    let list = cluster.gateways[0]
        .gateway
        .handles()
        .shard
        .preference_list(room.as_bytes(), 2);
    (list[0].as_str().to_string(), list[1].as_str().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_through_one_gateway_reaches_a_client_of_another() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let mut ann = User::connect(&cluster.gateways[0].ws_url()).await;
    let mut bob = User::connect(&cluster.gateways[1].ws_url()).await;
    assert!(ann.join("lobby", "ann").await.is_empty());
    assert!(bob.join("lobby", "bob").await.is_empty());
    assert_eq!(ann.post("lobby", "p1", "hello bob").await, 1);
    bob.until_messages(1).await;
    assert_eq!(bob.messages[0].text, "hello bob");
    assert_eq!(bob.messages[0].user, "ann");
    assert_eq!(bob.messages[0].seq, 1);

    // One subscription per room per gateway, ended with its last client.
    let gateway = cluster.gateways[1].gateway.clone();
    assert_eq!(gateway.rooms_followed(), 1);
    drop(bob);
    load::wait_for("the subscription to end", PATIENCE, || {
        gateway.rooms_followed() == 0
    })
    .await
    .unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_order_holds_under_many_concurrent_posters() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let mut reader = User::connect(&cluster.gateways[1].ws_url()).await;
    reader.join("busy", "reader").await;
    let (posters, each) = (8, 25);
    let mut tasks = Vec::new();
    for p in 0..posters {
        let url = cluster.gateways[p % 2].ws_url();
        tasks.push(tokio::spawn(async move {
            let mut user = User::connect(&url).await;
            user.join("busy", &format!("poster-{p}")).await;
            let mut acked = Vec::new();
            for i in 0..each {
                acked.push(
                    user.post("busy", &format!("p{p}-{i}"), &format!("{i}"))
                        .await,
                );
            }
            // A poster's own messages are numbered in the order it sent them.
            assert!(acked.windows(2).all(|w| w[0] < w[1]), "{acked:?}");
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let n = posters * each;
    assert_eq!(
        all,
        (1..=n as u64).collect::<Vec<_>>(),
        "numbers without gap or repeat"
    );
    reader.until_messages(n).await;
    assert_eq!(seqs(&reader.messages), (1..=n as u64).collect::<Vec<_>>());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_rooms_owner_loses_no_acknowledged_message() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let room = "survivors";
    let (owner, successor) = owners(&cluster, room);
    let mut ann = User::connect(&cluster.gateways[0].ws_url()).await;
    let mut bob = User::connect(&cluster.gateways[1].ws_url()).await;
    ann.join(room, "ann").await;
    bob.join(room, "bob").await;
    for i in 1..=5 {
        assert_eq!(ann.post(room, &format!("before-{i}"), "x").await, i);
    }
    bob.until_messages(5).await;
    assert!(cluster.kill(&owner).await);
    for i in 6..=10 {
        assert_eq!(
            ann.post(room, &format!("after-{i}"), "y").await,
            i,
            "the successor continues"
        );
    }
    let bob_id = bob.post(room, "from-bob", "z").await;
    assert_eq!(bob_id, 11);
    ann.until_messages(11).await;
    bob.until_messages(11).await;
    for user in [&ann, &bob] {
        assert_eq!(
            seqs(&user.messages),
            (1..=11).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
    }
    let kept = cluster.node(&successor).unwrap().messages(room).await;
    assert_eq!(seqs(&kept), (1..=11).collect::<Vec<_>>());
    assert!(cluster
        .gateways
        .iter()
        .all(|g| g.gateway.down() == vec![owner.clone()]));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_owner_given_up_on_cannot_acknowledge_after_the_takeover() {
    let mut config = config();
    config.upstream.attempt_timeout = Duration::from_secs(1);
    let mut cluster = Cluster::start(&config).await.unwrap();
    let room = "fenced";
    let (owner, successor) = owners(&cluster, room);
    let mut ann = User::connect(&cluster.gateways[0].ws_url()).await;
    let mut bob = User::connect(&cluster.gateways[1].ws_url()).await;
    ann.join(room, "ann").await;
    bob.join(room, "bob").await;
    assert_eq!(ann.post(room, "m1", "one").await, 1);

    // The owner turns slow: gateway 0 gives up on it and the successor
    // takes the room over.
    let slow = cluster.node(&owner).unwrap().clone();
    slow.stall();
    assert_eq!(ann.post(room, "m2", "two").await, 2);
    assert_eq!(cluster.gateways[0].gateway.down(), vec![owner.clone()]);
    assert!(
        cluster.gateways[1].gateway.down().is_empty(),
        "gateway 1 still trusts the owner"
    );
    // Gateway 0's subscription left the slow owner for the successor.
    ann.until_messages(2).await;
    assert_eq!(seqs(&ann.messages), [1, 2]);

    // A gateway that still trusts the old owner posts to it directly.
    let address = cluster
        .nodes
        .iter()
        .find(|n| n.node.id() == owner)
        .unwrap()
        .server
        .addr();
    let post = Post {
        id: "m3".into(),
        user: "eve".into(),
        text: "three".into(),
        down: vec![],
    };
    let url = format!("http://{address}/rooms/{room}/posts");
    let body = serde_json::to_vec(&post).unwrap();
    let direct = tokio::spawn(async move {
        upstream::send(&upstream::http_client(), Method::POST, url, body.into()).await
    });
    // (Lifting the stall lets the posts held at the old owner go on.)
    slow.resume();
    let answer = direct.await.unwrap().unwrap();
    assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
    assert!(String::from_utf8_lossy(&answer.body).contains("fenced"));
    assert_eq!(
        seqs(&slow.messages(room).await),
        [1],
        "the old owner stored nothing more"
    );

    // Gateway 1 learns of the takeover from the old owner's refusal.
    assert_eq!(bob.post(room, "m4", "four").await, 3);
    assert_eq!(cluster.gateways[1].gateway.down(), vec![owner.clone()]);
    let kept = cluster.node(&successor).unwrap().messages(room).await;
    assert_eq!(
        kept.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m1", "m2", "m4"]
    );
    for user in [&mut ann, &mut bob] {
        user.until_messages(3).await;
        assert_eq!(seqs(&user.messages), [1, 2, 3]);
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_post_id_makes_one_message() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let mut ann = User::connect(&cluster.gateways[0].ws_url()).await;
    let mut bob = User::connect(&cluster.gateways[1].ws_url()).await;
    ann.join("once", "ann").await;
    bob.join("once", "bob").await;
    assert_eq!(ann.post("once", "same", "hi").await, 1);
    assert_eq!(
        ann.post("once", "same", "hi").await,
        1,
        "a retry gets the first number"
    );
    assert_eq!(bob.post("once", "next", "ho").await, 2);
    ann.until_messages(2).await;
    assert_eq!(
        ann.messages
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["same", "next"]
    );
    assert_eq!(seqs(&ann.history("once").await), [1, 2]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_history_is_refreshed_after_a_post() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let mut ann = User::connect(&cluster.gateways[0].ws_url()).await;
    ann.join("cached", "ann").await;
    assert_eq!(ann.post("cached", "p1", "one").await, 1);
    assert_eq!(seqs(&ann.history("cached").await), [1]);
    let cache = cluster.gateways[0].gateway.handles().cache.clone();
    let hits = cache.snapshot().hits;
    assert_eq!(seqs(&ann.history("cached").await), [1]);
    assert_eq!(
        cache.snapshot().hits,
        hits + 1,
        "the second read is a cache hit"
    );
    assert_eq!(ann.post("cached", "p2", "two").await, 2);
    assert_eq!(
        seqs(&ann.history("cached").await),
        [1, 2],
        "the post invalidated the entry"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_its_connection_with_a_reason() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let url = cluster.gateways[0].ws_url();
    let mut ann = User::connect(&url).await;
    let mut bob = User::connect(&url).await;
    ann.join("calm", "ann").await;
    bob.join("calm", "bob").await;

    let mut garbled = User::connect(&url).await;
    garbled
        .ws
        .send(WsMessage::Text("{not json".into()))
        .await
        .unwrap();
    let (code, reason) = garbled.closed().await;
    assert_eq!(code, CloseCode::Invalid);
    assert!(reason.contains("malformed frame"), "{reason}");

    let mut unknown = User::connect(&url).await;
    unknown
        .ws
        .send(WsMessage::Text(r#"{"type":"shout","room":"calm"}"#.into()))
        .await
        .unwrap();
    let (code, reason) = unknown.closed().await;
    assert_eq!(code, CloseCode::Invalid);
    assert!(reason.contains("shout"), "{reason}");

    let mut huge = User::connect(&url).await;
    let text = format!(
        r#"{{"type":"post","room":"calm","id":"x","text":"{}"}}"#,
        "a".repeat(20_000)
    );
    huge.ws.send(WsMessage::Text(text.into())).await.unwrap();
    let (code, reason) = huge.closed().await;
    assert_eq!(code, CloseCode::Size);
    assert!(reason.contains("exceeds the limit of 8192"), "{reason}");

    let mut enormous = User::connect(&url).await;
    let text = "b".repeat(200_000);
    enormous
        .ws
        .send(WsMessage::Text(text.into()))
        .await
        .unwrap();
    let (code, reason) = enormous.closed().await;
    assert_eq!(code, CloseCode::Size, "{reason}");

    let mut binary = User::connect(&url).await;
    binary
        .ws
        .send(WsMessage::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(binary.closed().await.0, CloseCode::Unsupported);

    // A bad name is answered, not fatal.
    ann.send(&ClientFrame::Join {
        room: "no spaces".into(),
        user: "ann".into(),
    })
    .await;
    let reason = ann
        .take(|f| match f {
            ServerFrame::Error { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("room may hold only"), "{reason}");

    // The others carry on.
    assert_eq!(ann.post("calm", "still-here", "fine").await, 1);
    bob.until_messages(1).await;
    assert_eq!(bob.messages[0].id, "still-here");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_sees_no_loss_across_a_node_kill() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let summary = load::run(
        &mut cluster,
        &load::LoadConfig {
            users: 12,
            rooms: 6,
            duration: Duration::from_secs(2),
            pace: Duration::from_millis(50),
            kill: Some(("node-0".into(), Duration::from_secs(1))),
            progress: false,
        },
    )
    .await
    .unwrap();
    assert!(summary.acknowledged > 0, "{summary}");
    assert_eq!(
        summary.expected,
        summary.expected - summary.lost,
        "{summary}"
    );
    assert_eq!(
        (summary.lost, summary.duplicated, summary.out_of_order),
        (0, 0, 0),
        "{summary}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_bad_requests_with_a_clear_400() {
    let mut cluster = Cluster::start(&config()).await.unwrap();
    let address = cluster.nodes[0].server.addr();
    let client = upstream::http_client();
    for (path, body) in [
        ("rooms/r/posts", "{not json"),
        ("rooms/r/posts", r#"{"id":"a b","user":"u","text":"t"}"#),
        ("rooms/r/replicate", r#"{"epoch":"one"}"#),
    ] {
        let url = format!("http://{address}/{path}");
        let answer = upstream::send(&client, Method::POST, url, body.to_string().into())
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}");
        let refusal: wire::Refusal = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(refusal.kind, wire::RefusalKind::BadRequest);
        assert!(!refusal.reason.is_empty());
    }
    cluster.stop().await;
}
