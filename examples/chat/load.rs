//! Simulated WebSocket users: each joins one room on one gateway, posts at
//! a steady pace (waiting for each acknowledgement, resending the same post
//! id when a post fails) and reads everything the room delivers. At the end
//! it checks every user's stream against the acknowledged messages.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tower_fleet::BoxError;

use crate::cluster::Cluster;
use crate::wire::{ClientFrame, ServerFrame};

/// A load run's shape.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Simulated users.
    pub users: usize,
    /// Rooms (user `i` joins room `i % rooms`).
    pub rooms: usize,
    /// How long the users post.
    pub duration: Duration,
    /// The pause between one user's posts.
    pub pace: Duration,
    /// Kill this node this long into the run.
    pub kill: Option<(String, Duration)>,
    /// Print a live progress line on stderr.
    pub progress: bool,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// How long the users posted.
    pub elapsed: Duration,
    /// Posts acknowledged (distinct post ids).
    pub acknowledged: u64,
    /// Messages delivered to users (all copies).
    pub delivered: u64,
    /// Acknowledged messages a user of the room should have received.
    pub expected: u64,
    /// Of those, never received.
    pub lost: u64,
    /// Messages a user received more than once (same number or same id).
    pub duplicated: u64,
    /// Messages a user received after a higher number.
    pub out_of_order: u64,
    /// Posts that got an error frame and were resent.
    pub resent: u64,
    /// Delivery latency (post sent to message received), median.
    pub p50: Duration,
    /// Delivery latency, 99th percentile.
    pub p99: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "messages/s     {:.0} acknowledged, {:.0} delivered",
            self.acknowledged as f64 / secs,
            self.delivered as f64 / secs
        )?;
        writeln!(
            f,
            "delivery       p50 {:.1} ms, p99 {:.1} ms",
            ms(self.p50),
            ms(self.p99)
        )?;
        writeln!(f, "acknowledged   {}", self.acknowledged)?;
        writeln!(
            f,
            "delivered      {} (expected {})",
            self.delivered, self.expected
        )?;
        writeln!(f, "resent posts   {}", self.resent)?;
        writeln!(f, "lost           {}", self.lost)?;
        writeln!(f, "duplicated     {}", self.duplicated)?;
        write!(f, "out of order   {}", self.out_of_order)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Default)]
struct UserLog {
    room: String,
    joined_after: u64,
    received: Vec<(u64, String)>,
}

#[derive(Default)]
struct Shared {
    sent: Mutex<HashMap<String, Instant>>,
    acked: Mutex<HashMap<String, BTreeMap<u64, String>>>,
    latencies_us: Mutex<Vec<u64>>,
    acknowledged: AtomicU64,
    delivered: AtomicU64,
    resent: AtomicU64,
    joined: AtomicU64,
}

/// Phases the users follow.
const RUN: u8 = 0;
const DRAIN: u8 = 1;
const CLOSE: u8 = 2;

/// Runs the users against the cluster's gateways, kills the configured node
/// on time, waits for every acknowledged message to reach its room's users
/// (30 s at most) and returns the summary.
pub async fn run(cluster: &mut Cluster, config: &LoadConfig) -> Result<Summary, BoxError> {
    if config.users == 0 || config.rooms == 0 {
        return Err("--users and --rooms must be at least 1".into());
    }
    let shared = Arc::new(Shared::default());
    let (phase, _) = watch::channel(RUN);
    let mut logs = Vec::new();
    let mut users = Vec::new();
    for i in 0..config.users {
        let url = cluster.gateways[i % cluster.gateways.len()].ws_url();
        let log = Arc::new(Mutex::new(UserLog {
            room: format!("room-{}", i % config.rooms),
            ..UserLog::default()
        }));
        logs.push(log.clone());
        let (shared, phase, pace) = (shared.clone(), phase.subscribe(), config.pace);
        users.push(tokio::spawn(user(i, url, log, shared, phase, pace)));
    }
    wait_for("users to join", Duration::from_secs(30), || {
        shared.joined.load(Ordering::Relaxed) == config.users as u64
            || users.iter().any(|u| u.is_finished())
    })
    .await?;
    if let Some(u) = users.iter_mut().find(|u| u.is_finished()) {
        return Err(format!("a user stopped early: {:?}", u.await).into());
    }
    let start = Instant::now();
    let mut kill = config.kill.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if let Some((node, at)) = &kill {
            if elapsed >= *at {
                let killed = cluster.kill(node).await;
                if config.progress {
                    eprintln!(
                        "\r{:>6.1}s  killed {node}{}",
                        elapsed.as_secs_f64(),
                        if killed { "" } else { " (no such node)" }
                    );
                }
                kill = None;
            }
        }
        if config.progress {
            let acked = shared.acknowledged.load(Ordering::Relaxed);
            eprint!(
                "\r{:>6.1}s  acknowledged {acked:>7}  delivered {:>8}  {:>6.0} msg/s ",
                elapsed.as_secs_f64(),
                shared.delivered.load(Ordering::Relaxed),
                acked as f64 / elapsed.as_secs_f64().max(1e-3),
            );
            let _ = std::io::stderr().flush();
        }
        if elapsed >= config.duration {
            break;
        }
    }
    phase.send_replace(DRAIN);
    let elapsed = start.elapsed();
    // Every acknowledged message reaches every user of its room, or 30 s pass.
    let complete = wait_for(
        "delivery of every acknowledged message",
        Duration::from_secs(30),
        || {
            let acked = shared.acked.lock().unwrap();
            logs.iter().all(|log| {
                let log = log.lock().unwrap();
                let newest = acked
                    .get(&log.room)
                    .and_then(|m| m.keys().next_back().copied())
                    .unwrap_or(0);
                log.received.last().map_or(log.joined_after, |r| r.0) >= newest
            })
        },
    )
    .await;
    phase.send_replace(CLOSE);
    for u in users {
        let _ = tokio::time::timeout(Duration::from_secs(5), u).await;
    }
    if config.progress {
        eprintln!();
        if let Err(e) = &complete {
            eprintln!("{e}");
        }
    }
    Ok(summarize(&shared, &logs, elapsed))
}

fn summarize(shared: &Shared, logs: &[Arc<Mutex<UserLog>>], elapsed: Duration) -> Summary {
    let acked = shared.acked.lock().unwrap();
    let mut summary = Summary {
        elapsed,
        acknowledged: shared.acknowledged.load(Ordering::Relaxed),
        delivered: shared.delivered.load(Ordering::Relaxed),
        resent: shared.resent.load(Ordering::Relaxed),
        ..Summary::default()
    };
    for log in logs {
        let log = log.lock().unwrap();
        let mut seqs = HashSet::new();
        let mut ids = HashSet::new();
        let mut highest = 0;
        for (seq, id) in &log.received {
            if !seqs.insert(*seq) || !ids.insert(id.as_str()) {
                summary.duplicated += 1;
            } else if *seq < highest {
                summary.out_of_order += 1;
            }
            highest = highest.max(*seq);
        }
        if let Some(room) = acked.get(&log.room) {
            for (seq, id) in room.range(log.joined_after + 1..) {
                summary.expected += 1;
                if !seqs.contains(seq) || !ids.contains(id.as_str()) {
                    summary.lost += 1;
                }
            }
        }
    }
    let mut latencies = shared.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_micros(latencies.get(i).copied().unwrap_or(0))
    };
    summary.p50 = at(0.50);
    summary.p99 = at(0.99);
    summary
}

/// Polls a plain condition with the shared `wait_until` (every 10 ms, up to
/// `limit`).
pub async fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), BoxError> {
    crate::common::wait::wait_until(what, limit, || std::future::ready(done()))
        .await
        .map_err(Into::into)
}

async fn user(
    i: usize,
    url: String,
    log: Arc<Mutex<UserLog>>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<u8>,
    pace: Duration,
) -> Result<(), BoxError> {
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let (mut sink, mut stream) = ws.split();
    let room = log.lock().unwrap().room.clone();
    let send = |frame: &ClientFrame| {
        WsMessage::Text(serde_json::to_string(frame).unwrap_or_default().into())
    };
    sink.send(send(&ClientFrame::Join {
        room: room.clone(),
        user: format!("user-{i}"),
    }))
    .await?;
    let mut ticker = tokio::time::interval(pace);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut joined = false;
    let mut outstanding: Option<ClientFrame> = None;
    let mut next = 0u64;
    loop {
        let posting = joined && outstanding.is_none() && *phase.borrow() == RUN;
        tokio::select! {
            _ = ticker.tick(), if posting => {
                next += 1;
                let id = format!("u{i}-{next}");
                shared.sent.lock().unwrap().insert(id.clone(), Instant::now());
                let post = ClientFrame::Post { room: room.clone(), id, text: format!("hello #{next} from user-{i}") };
                sink.send(send(&post)).await?;
                outstanding = Some(post);
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == CLOSE {
                    break;
                }
            }
            frame = stream.next() => {
                let Some(frame) = frame else { return Err("gateway closed the connection".into()) };
                let text = match frame? {
                    WsMessage::Text(text) => text,
                    WsMessage::Close(close) => return Err(format!("gateway closed the connection: {close:?}").into()),
                    _ => continue,
                };
                match serde_json::from_str::<ServerFrame>(&text)? {
                    ServerFrame::Joined { messages, .. } => {
                        log.lock().unwrap().joined_after = messages.last().map_or(0, |m| m.seq);
                        joined = true;
                        shared.joined.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerFrame::Message(m) => {
                        let now = Instant::now();
                        if let Some(sent) = shared.sent.lock().unwrap().get(&m.id) {
                            shared.latencies_us.lock().unwrap().push((now - *sent).as_micros() as u64);
                        }
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        log.lock().unwrap().received.push((m.seq, m.id));
                    }
                    ServerFrame::Ack { room, id, seq } => {
                        if matches!(&outstanding, Some(ClientFrame::Post { id: o, .. }) if *o == id) {
                            outstanding = None;
                            shared.acknowledged.fetch_add(1, Ordering::Relaxed);
                            shared.acked.lock().unwrap().entry(room).or_default().insert(seq, id);
                        }
                    }
                    ServerFrame::Error { id: Some(_), .. } => {
                        if let Some(post) = &outstanding {
                            shared.resent.fetch_add(1, Ordering::Relaxed);
                            sink.send(send(post)).await?;
                        }
                    }
                    ServerFrame::Error { id: None, reason } => return Err(reason.into()),
                    ServerFrame::History { .. } => {}
                }
            }
        }
    }
    let _ = sink.close().await;
    Ok(())
}
