//! Uncoalesced loads: a waiter that stopped waiting after `coalesce_timeout`
//! calls upstream itself, fenced like any other load.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use tokio::time::Sleep;
use tower_service::Service;

use super::core::Core;
use super::flight::Fence;
use super::load::{Load, LoadOutput, Shared};
use super::miss::{CtxOf, State};
use super::policy::Policy;
use super::store::Store;

/// Polls the coalescing wait bound; when it has passed, the waiter stops
/// waiting and goes upstream alone.
pub(crate) fn poll_bound<S, Req, St, P, C>(
    mut bound: Pin<&mut Option<Sleep>>,
    ctx: &mut Option<CtxOf<S, Req, St, P, C>>,
    cx: &mut Context<'_>,
) -> Option<State<S, Req, St, P, C>>
where
    S: Service<Req>,
    S::Response: Clone,
    St: Store<S::Response>,
    P: Policy<Req, S::Response>,
{
    let ctx = ctx.as_mut()?;
    let wait = ctx.core.settings.coalesce_timeout?;
    if bound.is_none() {
        bound.set(Some(tokio::time::sleep(wait)));
    }
    let sleep = bound.as_mut().as_pin_mut()?;
    if sleep.poll(cx).is_pending() {
        return None;
    }
    let (svc, req) = (ctx.svc.take()?, ctx.req.take()?);
    let core = &ctx.core;
    core.stats.wait_timeouts.inc();
    core.stats.loads.inc();
    tracing::debug!(
        ?wait,
        "cache waiter stopped waiting for the load in flight and goes upstream"
    );
    let variant = ctx.bucket.map(|b| (b, core.variant_fence_bucket(b)));
    let fence = core.begin_solo(ctx.key.clone(), variant);
    Some(State::Solo {
        load: Load::new(svc, req, ctx.rules.clone(), None),
        solo: Solo {
            core: core.clone(),
            fence: Some(fence),
        },
    })
}

/// An uncoalesced load's registration: ended when the load finishes, or
/// when the future is dropped before that.
pub(crate) struct Solo<T: Clone, St: Store<T>> {
    core: Arc<Core<T, St>>,
    fence: Option<Fence>,
}

impl<T: Clone, St: Store<T>> Solo<T, St> {
    pub(crate) fn finish(&mut self, mut out: LoadOutput<T>) -> Shared<T> {
        if let Some(fence) = self.fence.take() {
            let keep = self.core.entry_of(&mut out, &fence);
            if out.shared.failure || out.shared.result.is_err() {
                self.core.stats.load_errors.inc();
            }
            self.core.end_load(&fence, None, keep);
        }
        out.shared
    }
}

impl<T: Clone, St: Store<T>> Drop for Solo<T, St> {
    fn drop(&mut self) {
        if let Some(fence) = self.fence.take() {
            self.core.end_load(&fence, None, None);
        }
    }
}
