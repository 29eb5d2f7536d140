//! DNS discovery: scripted answers become insert and remove changes, failed
//! and empty answers keep the membership, and `localhost` resolves for real.
#![cfg(feature = "dns")]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tower::discover::Change;
use tower_fleet::discover::{
    DnsConfig, DnsDiscover, DnsError, Resolve, ResolveFuture, SystemResolver,
};

/// One scripted answer: addresses, an error, or no answer at all.
#[derive(Clone)]
enum Answer {
    Addrs(Vec<SocketAddr>),
    Fail,
    Hang,
}

/// Answers from a script, one per resolution; the last one repeats.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Script {
    fn new(answers: impl IntoIterator<Item = Answer>) -> Script {
        Script {
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
            ..Script::default()
        }
    }
}

impl Resolve for Script {
    fn resolve(&self, name: &str) -> ResolveFuture {
        self.asked.lock().unwrap().push(name.to_string());
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().expect("script is not empty")
        };
        Box::pin(async move {
            match answer {
                Answer::Addrs(a) => Ok(a),
                Answer::Fail => Err(io::Error::new(io::ErrorKind::NotFound, "NXDOMAIN")),
                Answer::Hang => std::future::pending().await,
            }
        })
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 8080))
}

fn addrs(lasts: &[u8]) -> Answer {
    Answer::Addrs(lasts.iter().map(|&l| addr(l)).collect())
}

fn config() -> DnsConfig {
    DnsConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
    }
}

type Discovered = DnsDiscover<fn(SocketAddr) -> String, String, Script>;

fn discover(script: &Script) -> Discovered {
    let connect: fn(SocketAddr) -> String = |a| format!("svc@{a}");
    DnsDiscover::new("kv-s0.kv.svc.cluster.local:8080", config(), connect)
        .unwrap()
        .resolver(script.clone())
}

/// Takes the next change as (insert?, address, service).
async fn next(d: &mut Discovered) -> (bool, SocketAddr, Option<String>) {
    match d.next().await.expect("the stream never ends").unwrap() {
        Change::Insert(a, s) => (true, a, Some(s)),
        Change::Remove(a) => (false, a, None),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn appearing_and_disappearing_addresses_become_inserts_and_removes() {
    let script = Script::new([addrs(&[1, 2]), addrs(&[2, 3])]);
    let mut d = discover(&script);
    let handle = d.handle();

    // The first answer: both addresses join, each through the connector.
    let mut first = vec![next(&mut d).await, next(&mut d).await];
    first.sort();
    assert_eq!(
        first,
        vec![
            (true, addr(1), Some(format!("svc@{}", addr(1)))),
            (true, addr(2), Some(format!("svc@{}", addr(2)))),
        ]
    );
    // The second answer, one interval later: 3 joins (first), 1 leaves, 2 stays.
    assert_eq!(
        next(&mut d).await,
        (true, addr(3), Some(format!("svc@{}", addr(3))))
    );
    assert_eq!(next(&mut d).await, (false, addr(1), None));

    let snap = handle.snapshot();
    assert_eq!(snap.addresses, vec![addr(2), addr(3)]);
    assert_eq!((snap.inserted, snap.removed), (3, 1));
    assert_eq!(snap.resolutions, 2);
    assert_eq!(snap.failures, 0);
    assert_eq!(snap.name, "kv-s0.kv.svc.cluster.local:8080");
    assert!(script
        .asked
        .lock()
        .unwrap()
        .iter()
        .all(|n| n == "kv-s0.kv.svc.cluster.local:8080"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_resolution_error_keeps_the_membership_and_is_reported() {
    let script = Script::new([addrs(&[1]), Answer::Fail, Answer::Fail, addrs(&[1, 4])]);
    let mut d = discover(&script);
    let handle = d.handle();
    assert_eq!(next(&mut d).await.1, addr(1));

    // Two failed rounds change nothing: the next change is 4 joining, not 1 leaving.
    assert_eq!(
        next(&mut d).await,
        (true, addr(4), Some(format!("svc@{}", addr(4))))
    );
    let snap = handle.snapshot();
    assert_eq!(snap.failures, 2);
    assert_eq!(snap.removed, 0);
    assert_eq!(snap.consecutive_failures, 0, "the last round succeeded");
    let error = snap.last_error.expect("the failure is kept");
    assert!(matches!(*error, DnsError::Lookup { .. }), "{error}");
    assert!(error.to_string().contains("NXDOMAIN"), "{error}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_empty_answer_keeps_the_membership_like_an_error() {
    let script = Script::new([addrs(&[1, 2]), addrs(&[]), addrs(&[2])]);
    let mut d = discover(&script);
    let handle = d.handle();
    next(&mut d).await;
    next(&mut d).await;

    // The empty answer removed nothing; the answer after it removes only 1.
    assert_eq!(next(&mut d).await, (false, addr(1), None));
    let snap = handle.snapshot();
    assert_eq!(snap.failures, 1);
    assert!(matches!(*snap.last_error.unwrap(), DnsError::Empty { .. }));
    assert_eq!(snap.addresses, vec![addr(2)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_resolver_that_never_answers_times_out_and_keeps_the_membership() {
    let script = Script::new([addrs(&[1]), Answer::Hang, addrs(&[5])]);
    let mut d = discover(&script);
    let handle = d.handle();
    assert_eq!(next(&mut d).await.1, addr(1));

    assert_eq!(next(&mut d).await.1, addr(5));
    assert_eq!(next(&mut d).await, (false, addr(1), None));
    let snap = handle.snapshot();
    assert_eq!(snap.failures, 1);
    assert!(matches!(
        *snap.last_error.unwrap(),
        DnsError::Timeout { timeout, .. } if timeout == Duration::from_secs(1)
    ));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unchanged_answer_yields_no_change() {
    let script = Script::new([addrs(&[1]), addrs(&[1]), addrs(&[1]), addrs(&[1, 1, 2])]);
    let mut d = discover(&script);
    let handle = d.handle();
    assert_eq!(next(&mut d).await.1, addr(1));
    // Duplicates merge; the repeated answers in between yielded nothing.
    assert_eq!(next(&mut d).await.1, addr(2));
    let snap = handle.snapshot();
    assert_eq!(snap.resolutions, 4);
    assert_eq!(snap.inserted, 2);
}

#[tokio::test]
async fn localhost_resolves_for_real() {
    let addresses = SystemResolver.resolve("localhost:8080").await.unwrap();
    assert!(!addresses.is_empty());
    assert!(addresses
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 8080));

    let mut d =
        DnsDiscover::new("localhost:8080", DnsConfig::default(), |a: SocketAddr| a).unwrap();
    let change = tokio::time::timeout(Duration::from_secs(30), d.next())
        .await
        .expect("localhost resolves within 30s");
    match change {
        Some(Ok(Change::Insert(a, service))) => {
            assert!(a.ip().is_loopback());
            assert_eq!(a, service);
        }
        other => panic!("expected an insert, got {other:?}"),
    }
    assert_eq!(d.handle().snapshot().resolutions, 1);
}
