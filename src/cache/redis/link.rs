//! The link to Redis: one task sends every command, in the order they were
//! asked for, batched into pipelines, through the breaker around Redis.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Pipeline, Value};
use tokio::sync::{mpsc, oneshot};
use tower::{Service, ServiceExt};

use super::stats::TierStats;
use crate::breaker::CircuitBreaker;
use crate::cache::CacheKey;
use crate::BoxError;

/// Sets a value only while neither the key's version nor the namespace's
/// has moved since the fill's reader saw them (KEYS: data, version,
/// namespace version; ARGV: version, namespace version, value, PX).
const FILL: &str = "if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] \
and (redis.call('GET', KEYS[3]) or '0') == ARGV[2] then \
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) return 1 end return 0";

/// How long a key's version outlives its last invalidation: far longer than
/// any load, so that a fill never finds it gone and reset.
const VERSION_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The versions a reader saw: a fill made under them is refused once an
/// invalidation has moved either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) version: i64,
    pub(crate) namespace: i64,
}

/// What one Redis read found.
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) data: Option<Vec<u8>>,
    pub(crate) token: Token,
}

/// The Redis names of one namespace.
#[derive(Debug)]
pub(crate) struct Names {
    data: Vec<u8>,
    version: Vec<u8>,
    pub(crate) namespace_version: Vec<u8>,
    pub(crate) channel: Vec<u8>,
}

impl Names {
    pub(crate) fn new(ns: &str) -> Names {
        Names {
            data: format!("{ns}:d:").into_bytes(),
            version: format!("{ns}:v:").into_bytes(),
            namespace_version: format!("{ns}:g").into_bytes(),
            channel: format!("{ns}:inv").into_bytes(),
        }
    }

    pub(crate) fn data(&self, key: &[u8]) -> Vec<u8> {
        [&self.data[..], key].concat()
    }

    fn version(&self, key: &[u8]) -> Vec<u8> {
        [&self.version[..], key].concat()
    }
}

/// One command asked of the link.
pub(crate) enum Op {
    Get {
        key: CacheKey,
        reply: oneshot::Sender<Option<Read>>,
    },
    Fill {
        key: CacheKey,
        payload: Vec<u8>,
        px: u64,
        token: Token,
    },
    Invalidate {
        key: CacheKey,
        message: Vec<u8>,
    },
    InvalidateAll {
        message: Vec<u8>,
    },
}

impl Op {
    /// Adds the op's commands to `pipe`; how many replies they make.
    fn add(&self, names: &Names, pipe: &mut Pipeline) -> usize {
        match self {
            Op::Get { key, .. } => {
                let k = key.as_bytes();
                pipe.cmd("MGET")
                    .arg(names.data(k))
                    .arg(names.version(k))
                    .arg(&names.namespace_version);
                1
            }
            Op::Fill {
                key,
                payload,
                px,
                token,
            } => {
                let k = key.as_bytes();
                pipe.cmd("EVAL")
                    .arg(FILL)
                    .arg(3)
                    .arg(names.data(k))
                    .arg(names.version(k))
                    .arg(&names.namespace_version)
                    .arg(token.version.to_string())
                    .arg(token.namespace.to_string())
                    .arg(&payload[..])
                    .arg(*px);
                1
            }
            // The version moves first: a fill between the two commands is
            // refused, and one before both is deleted.
            Op::Invalidate { key, message } => {
                let k = key.as_bytes();
                pipe.cmd("INCR").arg(names.version(k));
                pipe.cmd("PEXPIRE")
                    .arg(names.version(k))
                    .arg(VERSION_TTL_MS);
                pipe.cmd("DEL").arg(names.data(k));
                pipe.cmd("PUBLISH").arg(&names.channel).arg(&message[..]);
                4
            }
            // Entries written under an older namespace version read as
            // misses; they expire by their own TTL.
            Op::InvalidateAll { message } => {
                pipe.cmd("INCR").arg(&names.namespace_version);
                pipe.cmd("PUBLISH").arg(&names.channel).arg(&message[..]);
                2
            }
        }
    }
}

/// The connection as a service, for the breaker: one pipeline per call,
/// bounded by the command timeout.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) conn: ConnectionManager,
    pub(crate) timeout: Duration,
}

impl Service<Pipeline> for Link {
    type Response = Vec<Value>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Vec<Value>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, pipe: Pipeline) -> Self::Future {
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, pipe.query_async::<Vec<Value>>(&mut conn)).await {
                Ok(Ok(replies)) => Ok(replies),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err("redis command timed out".into()),
            }
        })
    }
}

/// Reads a `MGET data version namespace_version` reply.
fn read(value: Option<Value>) -> Option<Read> {
    let v = value?;
    let (data, version, namespace) =
        redis::from_redis_value::<(Option<Vec<u8>>, Option<i64>, Option<i64>)>(v).ok()?;
    Some(Read {
        data,
        token: Token {
            version: version.unwrap_or(0),
            namespace: namespace.unwrap_or(0),
        },
    })
}

/// Runs the link until every sender is gone (the last store clone dropped).
pub(crate) async fn run(
    mut rx: mpsc::UnboundedReceiver<Op>,
    mut breaker: CircuitBreaker<Link>,
    names: Names,
    max_batch: usize,
    stats: std::sync::Arc<TierStats>,
) {
    let mut ops = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut ops, max_batch).await > 0 {
        let mut pipe = redis::pipe();
        let counts: Vec<usize> = ops.iter().map(|op| op.add(&names, &mut pipe)).collect();
        let gets = ops.iter().filter(|op| matches!(op, Op::Get { .. })).count();
        stats.gets.add(gets as u64);
        let replies = match breaker.ready().await {
            Ok(svc) => svc.call(pipe).await,
            Err(e) => Err(e),
        };
        let mut replies = match replies {
            Ok(r) => Some(r.into_iter()),
            Err(e) => {
                stats.failures.inc();
                tracing::debug!(error = %e, ops = ops.len(), "redis tier: batch failed");
                None
            }
        };
        for (op, n) in ops.drain(..).zip(counts) {
            let first = replies.as_mut().and_then(Iterator::next);
            for _ in 1..n {
                replies.as_mut().and_then(Iterator::next);
            }
            match op {
                Op::Get { reply, .. } => {
                    let _ = reply.send(read(first));
                }
                Op::Fill { .. } => {
                    if matches!(first, Some(Value::Int(1))) {
                        stats.fills.inc();
                    } else if first.is_some() {
                        stats.fills_refused.inc();
                    }
                }
                Op::Invalidate { .. } | Op::InvalidateAll { .. } => {}
            }
        }
    }
    tracing::debug!("redis tier: link stopped");
}
