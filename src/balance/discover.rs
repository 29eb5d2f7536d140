//! The discovery worker: feeds a `tower::discover::Discover` stream into the
//! replica set.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use futures_util::{FutureExt, StreamExt};
use tower::discover::{Change, Discover};

use super::core::Core;
use super::replica::{Replica, ReplicaSpec};
use crate::BoxError;

/// A discovery stream with its keys turned into replica specs.
pub(crate) type BoxDiscover<In> =
    Pin<Box<dyn Stream<Item = Result<Change<ReplicaSpec, In>, BoxError>> + Send>>;

/// How a discovered service becomes a member (the per-replica layer).
pub(crate) type Wrap<In, S> = Arc<dyn Fn(In) -> S + Send + Sync>;

pub(crate) fn boxed<D>(discover: D) -> BoxDiscover<D::Service>
where
    D: Discover + Send + 'static,
    D::Key: Into<ReplicaSpec>,
    D::Error: Into<BoxError>,
{
    let mut d = Box::pin(discover);
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        d.as_mut().poll_discover(cx).map(|next| {
            next.map(|r| {
                r.map_err(Into::into).map(|c| match c {
                    Change::Insert(k, s) => Change::Insert(k.into(), s),
                    Change::Remove(k) => Change::Remove(k.into()),
                })
            })
        })
    }))
}

/// Spawns the worker on `rt`. It applies every change that is ready at once
/// as one membership change (one set rebuild), and stops when the stream
/// ends or the last clone of the balancer and its handles is dropped.
pub(crate) fn spawn<In, S>(
    rt: &tokio::runtime::Handle,
    core: &Arc<Core<S>>,
    mut stream: BoxDiscover<In>,
    wrap: Wrap<In, S>,
) where
    In: Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    let mut stop_rx = core.workers.stop_signal();
    let weak = Arc::downgrade(core);
    rt.spawn(async move {
        loop {
            let first = tokio::select! {
                _ = &mut stop_rx => return,
                first = stream.next() => first,
            };
            let Some(first) = first else {
                tracing::info!("replica discovery stream ended; keeping the last set");
                return;
            };
            let mut batch = vec![first];
            while let Some(Some(next)) = stream.next().now_or_never() {
                batch.push(next);
            }
            let Some(core) = weak.upgrade() else { return };
            apply(&core, batch, &wrap);
        }
    });
}

fn apply<In, S: Clone>(
    core: &Core<S>,
    batch: Vec<Result<Change<ReplicaSpec, In>, BoxError>>,
    wrap: &Wrap<In, S>,
) {
    let _ = core.change(|members, joining| {
        for change in batch {
            match change {
                Ok(Change::Insert(spec, service)) => {
                    let replica = Replica {
                        spec,
                        service: wrap(service),
                        health: None,
                    };
                    match core.entry(members.get(&replica.spec.id), replica, joining) {
                        Ok(entry) => {
                            members.insert(entry.spec.id.clone(), entry);
                        }
                        Err(e) => {
                            core.shared.stats.discovery_errors.inc();
                            tracing::warn!(error = %e, "discovered replica refused");
                        }
                    }
                }
                Ok(Change::Remove(spec)) => {
                    members.remove(&spec.id);
                }
                Err(e) => {
                    core.shared.stats.discovery_errors.inc();
                    tracing::warn!(error = %e, "replica discovery error; keeping the last set");
                }
            }
        }
        Ok(())
    });
}
