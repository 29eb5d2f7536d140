//! Instruction counts of one closed-state call, for callgrind: numbers that
//! do not move with machine noise. BENCHMARKS.md has the command:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*measured*' BIN SUBJECT CALLS
//! ```
//!
//! `SUBJECT` is `bare`, `resilience` or one of the `fleet-*` configurations
//! of `benches/breaker_common`; only the `measured` function (CALLS calls
//! after a warm-up) is counted, so the total divided by CALLS is the cost of
//! one call. Run without arguments (as `cargo bench` does) it makes a few
//! calls of each subject and exits.

mod breaker_common;

use std::hint::black_box;

use breaker_common::{fleet, one_call, resilience, Noop, FLEET};
use tower::Service;

#[inline(never)]
fn measured<S: Service<u64>>(svc: &mut S, calls: u64) -> u64 {
    let mut ok = 0;
    for i in 0..calls {
        ok += u64::from(one_call(svc, black_box(i)));
    }
    ok
}

fn run<S: Service<u64>>(mut svc: S, calls: u64) {
    // Warm up: fill the window, touch every line.
    for i in 0..1_000 {
        one_call(&mut svc, i);
    }
    let ok = measured(&mut svc, calls);
    assert_eq!(ok, calls, "every call should succeed");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let calls: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let subjects: Vec<&str> = match args.first() {
        Some(s) => vec![s.as_str()],
        None => ["bare", "resilience"].into_iter().chain(FLEET).collect(),
    };
    // The coarse clock needs a runtime to tick on.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    for subject in subjects {
        match subject {
            "bare" => run(Noop, calls),
            "resilience" => run(resilience(Noop), calls),
            name => match fleet(name).map(|b| b.build(Noop)) {
                Some(Ok(breaker)) => run(breaker, calls),
                _ => {
                    eprintln!("unknown subject {name}");
                    std::process::exit(2);
                }
            },
        }
    }
}
