//! Instruction counts of one cache hit, for callgrind: numbers that do not
//! move with machine noise. BENCHMARKS.md has the command:
//!
//! ```text
//! benches/cache_callgrind.sh [HITS]
//! valgrind --tool=callgrind --toggle-collect='*measured*' BIN SUBJECT HITS
//! ```
//!
//! `SUBJECT` is one of [`SUBJECTS`]; only the `measured` function (HITS hits
//! on warm keys, after a warm-up) is counted, so the total divided by HITS is
//! the cost of one hit. The subjects are the rows of `cache/hit/*` in
//! `benches/cache.rs`, built the same way. Run without arguments (as
//! `cargo bench` does) it makes a few hits of each subject and exits.

mod cache_common;

use std::hint::black_box;

use cache_common::{Subject, SUBJECTS};

#[inline(never)]
fn measured(subject: &mut Subject, keys: &[u64], hits: usize) -> usize {
    let mut found = 0;
    for n in 0..hits {
        found += usize::from(subject.hit(black_box(keys[n & (keys.len() - 1)])));
    }
    found
}

/// The warm-up: the same loop, not counted.
#[inline(never)]
fn warm(subject: &mut Subject, keys: &[u64]) {
    for &k in keys {
        subject.hit(k);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("{}", SUBJECTS.join(" "));
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let hits: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let names: Vec<&str> = match args.first() {
        Some(s) => vec![s.as_str()],
        None => SUBJECTS.to_vec(),
    };
    // The coarse clock needs a runtime to tick on.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let keys = cache_common::keys();
    for name in names {
        let Some(mut subject) = Subject::new(name, &rt) else {
            eprintln!("unknown subject {name}; one of {SUBJECTS:?}");
            std::process::exit(2);
        };
        // Warm up: touch every key's slot once.
        warm(&mut subject, &keys);
        let found = measured(&mut subject, &keys, hits);
        assert_eq!(found, hits, "{name}: every lookup should hit");
    }
}
