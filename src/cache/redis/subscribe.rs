//! The invalidation subscriber: drops keys other gateways invalidated from
//! this gateway's first tier, and flushes it whenever it (re)subscribes.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::store::Tier;
/// Runs until the store is dropped (its stop signal resolves).
pub(crate) async fn run<T, C>(
    client: redis::Client,
    tier: Weak<Tier<T, C>>,
    channel: Vec<u8>,
    retry: Duration,
    mut stop: oneshot::Receiver<()>,
) where
    T: Clone + Send + Sync + 'static,
    C: Send + Sync + 'static,
{
    loop {
        let session = async {
            let mut pubsub = match client.get_async_pubsub().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "redis tier: cannot connect the subscriber");
                    return;
                }
            };
            if let Err(e) = pubsub.subscribe(&channel[..]).await {
                tracing::debug!(error = %e, "redis tier: cannot subscribe");
                return;
            }
            {
                let Some(tier) = tier.upgrade() else { return };
                // Messages were lost while unsubscribed: whatever the first
                // tier holds may be stale.
                tier.flush_local();
                tier.stats.subscriptions.inc();
                tracing::info!("redis tier: subscribed to invalidations; first tier flushed");
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Some(tier) = tier.upgrade() else { return };
                handle(&tier, msg.get_payload_bytes());
            }
            tracing::warn!("redis tier: lost the invalidation subscription");
        };
        tokio::select! {
            _ = &mut stop => return,
            () = session => {}
        }
        if tier.strong_count() == 0 {
            return;
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// One invalidation message: this gateway's own are skipped.
fn handle<T, C>(tier: &Tier<T, C>, payload: &[u8])
where
    T: Clone + Send + Sync + 'static,
{
    if payload.len() < 9 || payload[..8] == tier.id.to_le_bytes() {
        return;
    }
    tier.stats.remote_invalidations.inc();
    match payload[8] {
        b'k' => tier.drop_local(&payload[9..]),
        b'a' => tier.flush_local(),
        _ => {}
    }
}
