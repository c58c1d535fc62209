//! The process-wide drain notice, shared by every protocol. Once [`begin`] is called (the
//! daemon's graceful drain), client sessions that hold no server connection say goodbye in
//! their own protocol and end (PostgreSQL: FATAL 57P01; MySQL: the connection is closed,
//! a command already sent gets ERR 1053; MongoDB: a request outside a transaction gets
//! error 91 ShutdownInProgress and the connection is closed, hellos are still answered);
//! sessions in a transaction or request finish it first and then do the same.

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Sessions between accept and the end of their login. The drain waits for them (see
/// [`wait_for_logins`]): a process that exited under a client mid-login would reset its
/// connection, where a finished login gets a clean goodbye instead.
static LOGINS: AtomicUsize = AtomicUsize::new(0);

/// Counts one session as logging in until dropped.
#[derive(Debug)]
pub struct LoginInProgress(());

impl LoginInProgress {
    pub fn new() -> LoginInProgress {
        LOGINS.fetch_add(1, Ordering::SeqCst);
        LoginInProgress(())
    }
}

impl Default for LoginInProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LoginInProgress {
    fn drop(&mut self) {
        LOGINS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sessions logging in right now.
pub fn logins_in_progress() -> usize {
    LOGINS.load(Ordering::SeqCst)
}

/// Waits until no session is logging in, at most until `deadline`; true if none is.
pub async fn wait_for_logins(deadline: tokio::time::Instant) -> bool {
    while logins_in_progress() > 0 {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_drain_waits_for_logins_in_progress() {
        let login = LoginInProgress::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        assert!(!wait_for_logins(deadline).await, "gives up at the deadline");
        let waiter = tokio::spawn(wait_for_logins(
            tokio::time::Instant::now() + std::time::Duration::from_secs(5),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        drop(login);
        assert!(waiter.await.expect("task"));
    }
}
