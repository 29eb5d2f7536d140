//! Background tasks tied to a layer's shared state.

use std::sync::Mutex;

use tokio::sync::oneshot;

/// The stop signals of the background tasks (discovery, health checks) of
/// one layer's shared state. Dropped with that state, which resolves every
/// task's signal: a task stops when the last clone of its layer is dropped.
#[derive(Debug, Default)]
pub(crate) struct Workers(Mutex<Vec<oneshot::Sender<()>>>);

impl Workers {
    /// A signal that resolves (with an error) when these workers' owner is dropped.
    pub(crate) fn stop_signal(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }
}
