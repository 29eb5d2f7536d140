//! The discovery worker: feeds a `tower::discover::Discover` stream into a
//! shard membership.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tower::discover::{Change, Discover};

use super::placement::ShardSpec;
use super::service::Core;
use crate::{BoxError, NoRuntime};

/// Spawns the worker on the current runtime. It applies changes in batches
/// (every change that is ready at once makes one table build), builds tables
/// on the blocking pool, and stops when the discovery stream ends or when the
/// last clone of the shard and its handles is dropped.
pub(crate) fn spawn<S, D>(core: &Arc<Core<S>>, discover: D) -> Result<(), NoRuntime>
where
    D: Discover<Service = S> + Send + 'static,
    D::Key: Into<ShardSpec> + Send,
    D::Error: Into<BoxError>,
    S: Clone + Send + Sync + 'static,
{
    let rt =
        tokio::runtime::Handle::try_current().map_err(|_| NoRuntime::new("shard discovery"))?;
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    core.workers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(stop_tx);
    let weak = Arc::downgrade(core);
    rt.spawn(async move {
        let mut discover = pin!(discover);
        loop {
            let batch = tokio::select! {
                _ = &mut stop_rx => return,
                batch = next_batch(discover.as_mut()) => batch,
            };
            let Some(batch) = batch else {
                tracing::info!("shard discovery stream ended; keeping the last membership");
                return;
            };
            let Some(core) = weak.upgrade() else { return };
            let applied = tokio::task::spawn_blocking(move || apply(&core, batch)).await;
            if applied.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Waits for the next change, then takes every change that is ready at once.
/// `None` when the stream has ended.
#[allow(clippy::type_complexity)]
async fn next_batch<D: Discover>(
    mut discover: std::pin::Pin<&mut D>,
) -> Option<Vec<Result<Change<D::Key, D::Service>, BoxError>>>
where
    D::Error: Into<BoxError>,
{
    let first = poll_fn(|cx| discover.as_mut().poll_discover(cx)).await?;
    let mut batch = vec![first.map_err(Into::into)];
    while let Some(Some(next)) = poll_fn(|cx| discover.as_mut().poll_discover(cx)).now_or_never() {
        batch.push(next.map_err(Into::into));
    }
    Some(batch)
}

fn apply<S, K>(core: &Core<S>, batch: Vec<Result<Change<K, S>, BoxError>>)
where
    S: Clone,
    K: Into<ShardSpec>,
{
    let _ = core.change(|members| {
        for change in batch {
            match change {
                Ok(Change::Insert(key, service)) => {
                    let spec: ShardSpec = key.into();
                    match core.entry(members.get(&spec.id), spec, service, None) {
                        Ok(entry) => {
                            members.insert(entry.spec.id.clone(), entry);
                        }
                        Err(e) => {
                            core.stats.discovery_errors.inc();
                            tracing::warn!(error = %e, "discovered shard refused");
                        }
                    }
                }
                Ok(Change::Remove(key)) => {
                    let spec: ShardSpec = key.into();
                    members.remove(&spec.id);
                }
                Err(e) => {
                    core.stats.discovery_errors.inc();
                    tracing::warn!(error = %e, "shard discovery error; keeping the last membership");
                }
            }
        }
        Ok(())
    });
}
