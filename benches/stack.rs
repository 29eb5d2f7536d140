//! The whole stack against its layers alone, in one run: the added cost of
//! the full stack on the cache-hit path and on the miss path, and each
//! layer's added cost over a bare ready service.
//!
//! ```text
//! cargo bench --bench stack
//! ../shared/tools/criterion-table --filter stack/ --anchor bare
//! ```
//!
//! Every service answers at once with a `Bytes`; each iteration is
//! `poll_ready`, `call` and one poll of the response future with a no-op
//! waker, inside an entered tokio runtime (so timers can be created), so no
//! executor is measured. Requests are `u64` keys; the miss rows use a new key
//! every iteration.

use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
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

type Bare = tower::util::ServiceFn<fn(u64) -> Ready<Result<Bytes, BoxError>>>;

fn bare() -> Bare {
    service_fn(|_key: u64| ready(Ok(Bytes::from_static(b"value"))))
}

fn key_of(k: &u64) -> Option<Key<'_>> {
    Some(Key::from(*k))
}

/// `poll_ready`, `call`, one poll of the future: the service must answer at once.
fn once<S: Service<u64>>(svc: &mut S, req: u64, cx: &mut Context<'_>) -> bool {
    if svc.poll_ready(cx).is_pending() {
        return false;
    }
    let fut = pin!(svc.call(req));
    matches!(Future::poll(fut, cx), Poll::Ready(Ok(_)))
}

fn bench<S: Service<u64>>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
    fresh_keys: bool,
) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut n = 0u64;
    // Fill first, so the hit rows hit.
    assert!(once(&mut svc, 0, &mut cx), "{name} did not answer at once");
    c.bench_function(name, |b| {
        b.iter(|| {
            if fresh_keys {
                n += 1;
            }
            black_box(once(&mut svc, black_box(n), &mut cx))
        })
    });
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = rt.enter();
    let mut g = c.benchmark_group("stack");

    bench(&mut g, "bare", bare(), false);

    // Each layer alone, over bare services, configured as in the stack.
    let cache = || {
        Cache::builder()
            .max_entries(1_000_000)
            .ttl(Duration::from_secs(3600))
            .key_fn(key::from_fn(key_of))
            .build(bare())
            .expect("valid")
    };
    bench(&mut g, "layer/cache-hit", cache(), false);
    bench(&mut g, "layer/cache-miss", cache(), true);
    let retry = Retry::builder()
        .config(RetryConfig {
            max_attempts: 3,
            ..RetryConfig::default()
        })
        .build(bare())
        .expect("valid");
    bench(&mut g, "layer/retry", retry, true);
    let shard = Shard::builder()
        .key_fn(key::from_fn(key_of))
        .members((0..4).map(|i| Member::new(format!("s{i}"), bare())))
        .build()
        .expect("valid");
    bench(&mut g, "layer/shard", shard, true);
    let balance = Balance::builder()
        .replicas((0..3).map(|i| Replica::new(format!("r{i}"), bare())))
        .build()
        .expect("valid");
    bench(&mut g, "layer/balance", balance, true);
    let breaker = CircuitBreaker::builder()
        .config(BreakerConfig {
            consecutive_failures: Some(5),
            open_mode: OpenMode::NotReady,
            ..BreakerConfig::default()
        })
        .build(bare())
        .expect("valid");
    bench(&mut g, "layer/breaker", breaker, true);
    bench(
        &mut g,
        "layer/timeout",
        tower::timeout::Timeout::new(bare(), Duration::from_secs(1)),
        true,
    );

    // The whole stack, on the hit path and on the miss path.
    let config: StackConfig = toml::from_str(STACK).expect("a valid stack");
    let (hits, _handle) = StackBuilder::new(config.clone())
        .connector(|_address: &str| bare())
        .key(key_of)
        .build()
        .expect("builds");
    bench(&mut g, "stack/hit", hits, false);
    let (misses, _handle) = StackBuilder::new(config)
        .connector(|_address: &str| bare())
        .key(key_of)
        .build()
        .expect("builds");
    bench(&mut g, "stack/miss", misses, true);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = stack
}
criterion_main!(benches);
