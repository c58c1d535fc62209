//! Requests that the admin console (or any other operator surface) makes of the daemon:
//! reload the configuration, shut down. The daemon owns the receiving end; the console only
//! sends, so it needs no knowledge of how the daemon reloads or drains.

use tokio::sync::mpsc;

/// What an operator asked the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRequest {
    /// Re-read the configuration file, as SIGHUP does.
    Reload,
    /// Drain and exit, as SIGTERM does.
    Shutdown,
}

/// The sending side, kept in [`Admin`](crate::Admin).
#[derive(Debug)]
pub(crate) struct ControlChannel {
    sender: mpsc::UnboundedSender<ControlRequest>,
    receiver: std::sync::Mutex<Option<mpsc::UnboundedReceiver<ControlRequest>>>,
}

impl Default for ControlChannel {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        ControlChannel {
            sender,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }
}

impl ControlChannel {
    /// False when nobody listens (the daemon took no receiver or has stopped).
    pub(crate) fn send(&self, request: ControlRequest) -> bool {
        self.sender.send(request).is_ok()
    }

    /// The receiving end; the first caller gets it, later callers get `None`.
    pub(crate) fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<ControlRequest>> {
        match self.receiver.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}
