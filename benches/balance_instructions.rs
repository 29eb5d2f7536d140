//! Instruction counts of one balancer call, single and quorum, for
//! callgrind: numbers that do not move with machine noise.
//! `benches/balance_callgrind.sh` runs it:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*measured*' BIN SUBJECT CALLS
//! ```
//!
//! `SUBJECT` is `single`, `quorum-w2` (a write of 2 of 3), or either with
//! `-least-request`; three ready replicas that answer at once. Only the
//! `measured` function (CALLS calls after a warm-up) is counted, so its
//! total divided by CALLS is the cost of one call. Run without arguments
//! (as `cargo bench` does) it makes a few calls of each subject and exits.

mod balance_common;

use std::hint::black_box;
use std::task::{Context, Poll};

use balance_common::Noop;
use futures_util::FutureExt;
use tower::Service;
use tower_fleet::balance::{Balance, FirstReply, QuorumKind, Replica, Strategy};

/// One call the tower way, driven by hand: whether it answered at once.
fn one_call<S: Service<()>>(svc: &mut S) -> bool {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(())))
        && matches!(svc.call(()).now_or_never(), Some(Ok(_)))
}

#[inline(never)]
fn measured<S: Service<()>>(svc: &mut S, calls: u64) -> u64 {
    let mut ok = 0;
    for _ in 0..calls {
        ok += u64::from(one_call(black_box(&mut *svc)));
    }
    ok
}

fn run<S: Service<()>>(mut svc: S, calls: u64) {
    for _ in 0..1_000 {
        one_call(&mut svc);
    }
    assert_eq!(
        measured(&mut svc, calls),
        calls,
        "every call should succeed"
    );
}

fn balance(strategy: Strategy) -> Balance<Noop> {
    Balance::builder()
        .strategy(strategy)
        .replicas(["a", "b", "c"].map(|id| Replica::new(id, Noop)))
        .build()
        .expect("a valid balancer")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let calls: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let subjects: Vec<&str> = match args.first() {
        Some(s) => vec![s.as_str()],
        None => vec![
            "single",
            "quorum-w2",
            "single-least-request",
            "quorum-w2-least-request",
        ],
    };
    for subject in subjects {
        let (mode, strategy) = match subject.strip_suffix("-least-request") {
            Some(mode) => (mode, Strategy::LeastRequest {}),
            None => (subject, Strategy::peak_ewma()),
        };
        match mode {
            "single" => run(balance(strategy), calls),
            "quorum-w2" => run(
                balance(strategy).quorum(QuorumKind::Write, FirstReply),
                calls,
            ),
            _ => {
                eprintln!("unknown subject {subject}");
                std::process::exit(2);
            }
        }
    }
}
