//! The process-wide shutdown notice. Once [`begin`] is called (the daemon's graceful
//! drain), client sessions that hold no server connection say goodbye with FATAL 57P01
//! `admin_shutdown` and end; sessions in a transaction finish it first and then do the
//! same.

use std::sync::OnceLock;
use tokio::sync::watch;

fn channel() -> &'static watch::Sender<bool> {
    static TX: OnceLock<watch::Sender<bool>> = OnceLock::new();
    TX.get_or_init(|| watch::Sender::new(false))
}

/// Tells every idle session to say goodbye, now and whenever one becomes idle.
pub fn begin() {
    channel().send_replace(true);
}

/// Whether [`begin`] was called.
pub fn started() -> bool {
    *channel().borrow()
}

/// Resolves once [`begin`] has been called (at once if it was already).
pub async fn wait() {
    let mut rx = channel().subscribe();
    let _ = rx.wait_for(|started| *started).await;
}
