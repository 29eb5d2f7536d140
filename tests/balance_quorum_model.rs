//! Read-your-writes from quorums: with N = 3 replicas, writes that need
//! W = 2 and reads that need R = 2 (R + W > N), every read returns the
//! newest acknowledged write, whichever single replica fails at each step
//! (answering errors, or too slow to wait for) and whatever the latencies.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use tower::Service;
use tower_fleet::balance::{newest, Balance, OutlierConfig, QuorumConfig, QuorumKind, Replica};
use tower_fleet::signal::Carrier;
use tower_fleet::BoxError;

#[derive(Clone, Copy, Debug)]
enum Op {
    Put { key: u8, value: u32 },
    Get { key: u8 },
}

impl Carrier for Op {}

/// What a replica answers: the version and value it holds for the key.
type Held = Option<(u64, u32)>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Answers an error (after its latency).
    Errors,
    /// Answers, and applies the write, only after 10s: a straggler.
    Slow,
}

/// How a replica behaves for the copies sent to it now.
#[derive(Clone, Copy, Default)]
struct Script {
    latency_ms: u64,
    fault: Option<Fault>,
}

/// One replica: a small versioned in-memory store. Writes carry their
/// version; a replica keeps the highest version it has seen of each key.
#[derive(Clone, Default)]
struct Store {
    data: Arc<Mutex<HashMap<u8, (u64, u32)>>>,
    script: Arc<Mutex<Script>>,
}

#[derive(Clone, Copy, Debug)]
struct Versioned {
    op: Op,
    version: u64,
}

impl Carrier for Versioned {}

impl Service<Versioned> for Store {
    type Response = Held;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Held, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Versioned) -> Self::Future {
        // The script at send time decides this copy's fate.
        let script = *self.script.lock().unwrap();
        let data = self.data.clone();
        Box::pin(async move {
            let mut ms = script.latency_ms;
            if script.fault == Some(Fault::Slow) {
                ms += 10_000;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if script.fault == Some(Fault::Errors) {
                return Err("replica down".into());
            }
            let mut data = data.lock().unwrap();
            if let Op::Put { key, value } = req.op {
                let slot = data.entry(key).or_insert((0, 0));
                if req.version > slot.0 {
                    *slot = (req.version, value);
                }
            }
            let key = match req.op {
                Op::Put { key, .. } | Op::Get { key } => key,
            };
            Ok(data.get(&key).copied())
        })
    }
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Per replica latency for this step.
    latency_ms: [u64; 3],
    /// At most one replica misbehaves at a time.
    fault: Option<(usize, Fault)>,
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        (0u8..4, any::<u32>()).prop_map(|(key, value)| Op::Put { key, value }),
        (0u8..4).prop_map(|key| Op::Get { key }),
    ];
    let fault = prop_oneof![
        Just(None),
        (
            0usize..3,
            prop_oneof![Just(Fault::Errors), Just(Fault::Slow)]
        )
            .prop_map(Some),
    ];
    (op, [0u64..5, 0u64..5, 0u64..5], fault).prop_map(|(op, latency_ms, fault)| Step {
        op,
        latency_ms,
        fault,
    })
}

/// Plays `steps` against three stores with reads of `read` and writes of
/// two; per read, what it returned and the newest acknowledged write.
fn play(read: u32, steps: &[Step]) -> Result<Vec<(Held, Held)>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let stores: Vec<Store> = (0..3).map(|_| Store::default()).collect();
        let quorum = Balance::builder()
            // The property is the quorum's; ejection would only add failures.
            .outlier(OutlierConfig {
                enabled: false,
                ..OutlierConfig::default()
            })
            .quorum(QuorumConfig {
                read,
                write: 2,
                ..QuorumConfig::default()
            })
            .replicas(
                stores
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Replica::new(format!("r{i}"), s.clone())),
            )
            .build_quorum(
                |req: &Versioned| match req.op {
                    Op::Put { .. } => QuorumKind::Write,
                    Op::Get { .. } => QuorumKind::Read,
                },
                newest(|held: &Held| held.map(|(v, _)| v)),
            )
            .unwrap();
        let mut acknowledged: HashMap<u8, (u64, u32)> = HashMap::new();
        let mut reads = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            for (r, store) in stores.iter().enumerate() {
                *store.script.lock().unwrap() = Script {
                    latency_ms: step.latency_ms[r],
                    fault: step.fault.filter(|(f, _)| *f == r).map(|(_, f)| f),
                };
            }
            let version = i as u64 + 1;
            let answer = quorum
                .clone()
                .call(Versioned {
                    op: step.op,
                    version,
                })
                .await
                .map_err(|e| format!("step {i} {step:?} failed with one replica down: {e}"))?;
            match step.op {
                Op::Put { key, value } => {
                    if answer.replies.len() < 2 {
                        return Err(format!("step {i}: a write acknowledged by fewer than 2"));
                    }
                    acknowledged.insert(key, (version, value));
                }
                Op::Get { key } => reads.push((answer.merged, acknowledged.get(&key).copied())),
            }
        }
        Ok(reads)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn reads_of_two_see_every_write_of_two_of_three(steps in prop::collection::vec(step(), 1..40)) {
        let reads = play(2, &steps).map_err(TestCaseError::fail)?;
        for (i, (got, newest)) in reads.into_iter().enumerate() {
            prop_assert_eq!(got, newest, "read {} missed the newest acknowledged write", i);
        }
    }
}

#[test]
fn a_read_of_one_can_miss_a_write_of_two() {
    // The counter-check: with R + W = N the property does not hold, so the
    // test above does not pass by accident. r2 misses the write, then
    // answers the read first, alone.
    let steps = [
        Step {
            op: Op::Put { key: 1, value: 7 },
            latency_ms: [0, 0, 0],
            fault: Some((2, Fault::Errors)),
        },
        Step {
            op: Op::Get { key: 1 },
            latency_ms: [5, 5, 0],
            fault: None,
        },
    ];
    assert_eq!(play(1, &steps).unwrap(), [(None, Some((1, 7)))]);
}
