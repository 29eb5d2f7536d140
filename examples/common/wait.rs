//! Waiting on a condition instead of a duration.

use std::future::Future;
use std::time::Duration;

/// How often [`wait_until`] checks its condition.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// A deadline generous enough that only a hang reaches it.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// Polls `condition` every 10ms until it returns `true`, or fails with a message
/// naming `what` once `deadline` has passed.
pub async fn wait_until<F, Fut>(
    what: &str,
    deadline: Duration,
    mut condition: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= end {
            return Err(format!("timed out after {deadline:?} waiting until {what}"));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
