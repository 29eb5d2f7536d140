//! A shutdown signal: Ctrl-C from the terminal, or a stop requested by code.

use std::sync::Arc;

use tokio::sync::Notify;

/// A clonable trigger that ends [`Shutdown::wait`] on every clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    notify: Arc<Notify>,
    fired: Arc<std::sync::atomic::AtomicBool>,
}

impl Shutdown {
    /// A trigger not yet fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the trigger: every current and future `wait` returns.
    pub fn trigger(&self) {
        self.fired.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the trigger has fired.
    pub fn is_triggered(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until [`Shutdown::trigger`] is called.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }

    /// Waits for Ctrl-C (SIGINT) or a trigger, whichever comes first, then fires
    /// the trigger so every other waiter stops too.
    pub async fn ctrl_c_or_trigger(&self) {
        tokio::select! {
            res = tokio::signal::ctrl_c() => {
                if let Err(err) = res {
                    eprintln!("cannot listen for Ctrl-C ({err}); stop with a trigger instead");
                    self.wait().await;
                }
            }
            () = self.wait() => {}
        }
        self.trigger();
    }
}
