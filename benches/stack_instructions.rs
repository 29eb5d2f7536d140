//! Instruction counts of one request through the whole stack and through
//! each layer alone, for callgrind: numbers that do not move with machine
//! noise, so the stack's composition cost can be compared with the sum of
//! its layers' costs. `benches/stack_callgrind.sh` runs it:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*measured*' BIN SUBJECT CALLS
//! ```
//!
//! `SUBJECT` is `bare`, `cache-hit`, `cache-miss`, `retry`, `shard`,
//! `balance`, `breaker`, `timeout`, `stack-hit` or `stack-miss`, configured
//! as in `benches/stack.rs`. Every service answers at once with a `Bytes`;
//! the miss subjects use a new key every call. Only the `measured` function
//! (CALLS calls after a warm-up) is counted, so its total divided by CALLS is
//! the cost of one request. Run without arguments (as `cargo bench` does) it
//! makes a few calls of each subject and exits.

use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tower::{service_fn, Service};
use tower_fleet::balance::{Balance, Replica};
use tower_fleet::breaker::{BreakerConfig, CircuitBreaker, OpenMode};
use tower_fleet::cache::Cache;
use tower_fleet::key::{self, Key};
use tower_fleet::retry::{Retry, RetryConfig};
use tower_fleet::shard::{Member, Shard};
use tower_fleet::stack::{StackBuilder, StackConfig};
use tower_fleet::BoxError;

const STACK: &str = r#"
[cache]
max_entries = 1000000
ttl = "1h"
[retry]
max_attempts = 3
[breaker]
consecutive_failures = 5
[timeout]
request = "1s"
[[shards]]
id = "s0"
replicas = ["r00", "r01", "r02"]
[[shards]]
id = "s1"
replicas = ["r10", "r11", "r12"]
[[shards]]
id = "s2"
replicas = ["r20", "r21", "r22"]
[[shards]]
id = "s3"
replicas = ["r30", "r31", "r32"]
"#;

const SUBJECTS: [&str; 10] = [
    "bare",
    "cache-hit",
    "cache-miss",
    "retry",
    "shard",
    "balance",
    "breaker",
    "timeout",
    "stack-hit",
    "stack-miss",
];

type Bare = tower::util::ServiceFn<fn(u64) -> Ready<Result<Bytes, BoxError>>>;

fn bare() -> Bare {
    service_fn(|_key: u64| ready(Ok(Bytes::from_static(b"value"))))
}

fn key_of(k: &u64) -> Option<Key<'_>> {
    Some(Key::from(*k))
}

/// `poll_ready`, `call`, one poll of the future: whether it answered at once.
fn once<S: Service<u64>>(svc: &mut S, req: u64) -> bool {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    if svc.poll_ready(&mut cx).is_pending() {
        return false;
    }
    let fut = pin!(svc.call(req));
    matches!(Future::poll(fut, &mut cx), Poll::Ready(Ok(_)))
}

#[inline(never)]
fn measured<S: Service<u64>>(svc: &mut S, first: u64, calls: u64, fresh: bool) -> u64 {
    let mut ok = 0;
    for i in 0..calls {
        let key = if fresh { first + i } else { 0 };
        ok += u64::from(once(black_box(&mut *svc), black_box(key)));
    }
    ok
}

fn run<S: Service<u64>>(mut svc: S, calls: u64, fresh: bool) {
    // Warm up (and fill key 0 for the hit subjects) outside the count.
    assert_eq!(measured(&mut svc, 1 << 40, 1_000, fresh), 1_000);
    assert_eq!(
        measured(&mut svc, 0, calls, fresh),
        calls,
        "every call should answer at once"
    );
}

fn cache() -> impl Service<u64> {
    Cache::builder()
        .max_entries(1_000_000)
        .ttl(Duration::from_secs(3600))
        .key_fn(key::from_fn(key_of))
        .build(bare())
        .expect("valid")
}

fn stack() -> impl Service<u64> {
    let config: StackConfig = toml::from_str(STACK).expect("a valid stack");
    let (stack, _handle) = StackBuilder::new(config)
        .connector(|_address: &str| bare())
        .key(key_of)
        .build()
        .expect("builds");
    stack
}

fn subject(name: &str, calls: u64) {
    match name {
        "bare" => run(bare(), calls, true),
        "cache-hit" => run(cache(), calls, false),
        "cache-miss" => run(cache(), calls, true),
        "retry" => run(
            Retry::builder()
                .config(RetryConfig {
                    max_attempts: 3,
                    ..RetryConfig::default()
                })
                .build(bare())
                .expect("valid"),
            calls,
            true,
        ),
        "shard" => run(
            Shard::builder()
                .key_fn(key::from_fn(key_of))
                .members((0..4).map(|i| Member::new(format!("s{i}"), bare())))
                .build()
                .expect("valid"),
            calls,
            true,
        ),
        "balance" => run(
            Balance::builder()
                .replicas((0..3).map(|i| Replica::new(format!("r{i}"), bare())))
                .build()
                .expect("valid"),
            calls,
            true,
        ),
        "breaker" => run(
            CircuitBreaker::builder()
                .config(BreakerConfig {
                    consecutive_failures: Some(5),
                    open_mode: OpenMode::NotReady,
                    ..BreakerConfig::default()
                })
                .build(bare())
                .expect("valid"),
            calls,
            true,
        ),
        "timeout" => run(
            tower::timeout::Timeout::new(bare(), Duration::from_secs(1)),
            calls,
            true,
        ),
        "stack-hit" => run(stack(), calls, false),
        "stack-miss" => run(stack(), calls, true),
        other => {
            eprintln!("unknown subject {other:?}; one of {SUBJECTS:?}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = rt.enter();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first(), args.get(1).and_then(|n| n.parse().ok())) {
        (Some(name), Some(calls)) if !name.starts_with('-') => subject(name, calls),
        _ => {
            for name in SUBJECTS {
                subject(name, 100);
            }
        }
    }
}
