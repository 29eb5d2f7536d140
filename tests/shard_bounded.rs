//! Bounded loads: no shard is admitted a request at or over the cap
//! `ceil(c × (in flight + 1) / N)`, hot keys spill along their preference
//! list, and come back to their owner when its load falls.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};
use tower_fleet::key::Key;
use tower_fleet::shard::{
    BoundedLoadsConfig, Member, PlacementConfig, Shard, ShardConfig, ShardSnapshot,
};

/// A shard that answers with its name after `latency`, or once `gate` lets it.
#[derive(Clone)]
struct Slow {
    name: String,
    latency: Duration,
    gate: Option<Arc<Semaphore>>,
}

impl Service<String> for Slow {
    type Response = String;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _key: String) -> Self::Future {
        let (name, latency, gate) = (self.name.clone(), self.latency, self.gate.clone());
        Box::pin(async move {
            match gate {
                Some(gate) => drop(gate.acquire().await),
                None => tokio::time::sleep(latency).await,
            }
            Ok(name)
        })
    }
}

type KeyOf = fn(&String) -> Option<Key<'_>>;

#[allow(clippy::ptr_arg)] // the key function takes the request type, String
fn by_key(k: &String) -> Option<Key<'_>> {
    Some(Key::from(k.as_str()))
}

fn fleet(n: usize, latency: Duration, gate: Option<Arc<Semaphore>>) -> Shard<Slow, KeyOf> {
    let config = ShardConfig {
        placement: PlacementConfig::ring(160),
        bounded_loads: Some(BoundedLoadsConfig::default()),
        ..ShardConfig::default()
    };
    Shard::builder()
        .config(config)
        .key_fn(by_key as KeyOf)
        .members((0..n).map(|i| {
            let name = format!("shard-{i:03}");
            Member::new(
                name.as_str(),
                Slow {
                    name: name.clone(),
                    latency,
                    gate: gate.clone(),
                },
            )
        }))
        .build()
        .unwrap()
}

/// The cap a request is admitted under: ceil(1.25 × (in flight + 1) / N).
fn cap(in_flight_before: u64, n: u64) -> u64 {
    (1250 * (in_flight_before + 1)).div_ceil(1000 * n)
}

/// A Zipf(s) sampler over `n` keys.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

fn loads(s: &ShardSnapshot) -> Vec<u64> {
    s.shards.iter().map(|x| x.in_flight).collect()
}

#[tokio::test(start_paused = true)]
async fn a_zipf_hot_key_workload_never_admits_a_request_at_or_over_the_cap() {
    const N: u64 = 100;
    let shard = fleet(N as usize, Duration::from_millis(20), None);
    let handle = shard.handle();
    let zipf = Zipf::new(1_000, 1.1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut tasks = Vec::new();
    let (mut cold, mut cold_to_owner) = (0u64, 0u64);
    let mut peak_in_flight = 0u64;
    // 60 ms of arrivals, 50 requests every millisecond, each 20 ms long:
    // about 1,000 in flight, 10 per shard on average, with one key taking
    // about a sixth of all requests.
    for _ms in 0..60 {
        for _ in 0..50 {
            let rank = zipf.sample(&mut rng);
            let key = format!("key-{rank}");
            let before = handle.snapshot();
            let before_loads = loads(&before);
            let mut svc = shard.clone();
            let fut = svc.ready().await.unwrap().call(key.clone());
            let after = handle.snapshot();
            let grew: Vec<usize> = loads(&after)
                .iter()
                .zip(&before_loads)
                .enumerate()
                .filter(|(_, (a, b))| a > b)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(grew.len(), 1, "exactly one shard admitted the request");
            let limit = cap(before.in_flight, N);
            assert!(
                before_loads[grew[0]] < limit,
                "admitted to a shard at {} with cap {limit}",
                before_loads[grew[0]]
            );
            let to_owner = after.shards[grew[0]].id == handle.route(key.as_bytes()).unwrap();
            if rank >= 100 {
                cold += 1;
                cold_to_owner += u64::from(to_owner);
            }
            peak_in_flight = peak_in_flight.max(after.in_flight);
            tasks.push(tokio::spawn(fut));
        }
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = handle.snapshot();
    assert_eq!(stats.in_flight, 0, "every admission was given back");
    assert!(
        peak_in_flight > 500,
        "the workload loaded the fleet ({peak_in_flight} in flight)"
    );
    assert!(stats.failovers > 0, "the hot key spilled past its owner");
    assert!(
        cold_to_owner > 0 && cold_to_owner < cold,
        "under this load even cold keys spill sometimes"
    );

    // The load has fallen: the hot key goes back to its owner.
    let hot = "key-0".to_string();
    let owner = handle.route(hot.as_bytes()).unwrap();
    let answer = shard.clone().oneshot(hot).await.unwrap();
    assert_eq!(answer, owner.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_callers_never_push_a_shard_over_the_cap() {
    const N: u64 = 8;
    const REQUESTS: u64 = 800;
    let gate = Arc::new(Semaphore::new(0));
    let shard = fleet(N as usize, Duration::ZERO, Some(gate.clone()));
    let handle = shard.handle();
    // Every caller wants the same key, so all of them race for its owner's
    // last slot under the cap, then for the next shard's, and so on.
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let shard = shard.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                for _ in 0..REQUESTS / 8 {
                    let mut svc = shard.clone();
                    pending.push(svc.ready().await.unwrap().call("hot".to_string()));
                    tokio::task::yield_now().await;
                }
                futures::future::join_all(pending).await
            })
        })
        .collect();
    // Requests are held by the gate, so loads only grow: wait until all are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while handle.snapshot().in_flight < REQUESTS {
        assert!(
            std::time::Instant::now() < deadline,
            "requests were not admitted"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = handle.snapshot();
    // Loads only grew, so the cap of every admission was at most the final
    // one: a shard above it was admitted a request over its cap.
    let limit = cap(REQUESTS - 1, N);
    for s in &stats.shards {
        assert!(
            s.in_flight <= limit,
            "{} holds {} with cap {limit}",
            s.id,
            s.in_flight
        );
    }
    assert_eq!(
        stats.shards.iter().map(|s| s.in_flight).sum::<u64>(),
        REQUESTS
    );
    gate.add_permits(REQUESTS as usize);
    for c in callers {
        assert!(c.await.unwrap().into_iter().all(|r| r.is_ok()));
    }
    assert_eq!(handle.snapshot().in_flight, 0);
}
