//! The console's KILL, as a flag and a future that completes once it is set.
//!
//! Sessions select on [`Killed`] around everything they do, so it is polled at every wake-up
//! of every session: that poll must cost a load and an atomic waker swap, not a lock (a tokio
//! `Notify` takes its waiter-list lock on each poll of a registered waiter, a measurable share
//! of the proxy's CPU at saturation). Each `Killed` future has its own waker slot, put on the
//! switch's list (under the lock) on its first poll and taken off when the future is dropped,
//! so every future waiting on one client is woken, however many there are.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use atomic_waker::AtomicWaker;

/// A one-way switch: off until [`KillSwitch::kill`], then on for good.
#[derive(Debug, Default)]
pub(crate) struct KillSwitch {
    killed: AtomicBool,
    slots: Mutex<Vec<Arc<AtomicWaker>>>,
}

impl KillSwitch {
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(SeqCst)
    }

    /// Turns the switch on and wakes every future waiting on it.
    pub(crate) fn kill(&self) {
        // Set before the slots are read: a future that registers after this lock sees the
        // flag in its check after registering.
        self.killed.store(true, SeqCst);
        for slot in self.lock().iter() {
            slot.wake();
        }
    }

    pub(crate) fn killed(&self) -> Killed<'_> {
        Killed {
            switch: self,
            registration: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<AtomicWaker>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Completes once the switch is on (at once if it already is).
#[derive(Debug)]
pub struct Killed<'a> {
    switch: &'a KillSwitch,
    /// Set at the first poll.
    registration: Option<Registration>,
}

/// This future's slot on the switch's list, and the waker last put in it: a task polls
/// with the same waker every time, and then there is nothing to swap.
#[derive(Debug)]
struct Registration {
    slot: Arc<AtomicWaker>,
    waker: Waker,
}

impl Future for Killed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.switch.is_killed() {
            return Poll::Ready(());
        }
        let this = &mut *self;
        match &mut this.registration {
            // Same task as last time: its waker is in the slot already.
            Some(r) if r.waker.will_wake(cx.waker()) => return Poll::Pending,
            Some(r) => {
                r.slot.register(cx.waker());
                r.waker = cx.waker().clone();
            }
            None => {
                let slot = Arc::new(AtomicWaker::new());
                slot.register(cx.waker());
                this.switch.lock().push(Arc::clone(&slot));
                this.registration = Some(Registration {
                    slot,
                    waker: cx.waker().clone(),
                });
            }
        }
        // Registered first, checked second: a kill in between wakes the slot.
        if this.switch.is_killed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Killed<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.registration.take() {
            self.switch.lock().retain(|s| !Arc::ptr_eq(s, &r.slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiting_future_is_woken_and_later_ones_complete_at_once() {
        let switch = Arc::new(KillSwitch::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = Arc::clone(&switch);
                tokio::spawn(async move { s.killed().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(switch.lock().len(), 3, "each waiter has its own slot");
        switch.kill();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(1), w)
                .await
                .expect("woken by the kill")
                .expect("task");
        }
        assert!(switch.lock().is_empty(), "slots go with their futures");
        tokio::time::timeout(Duration::from_millis(100), switch.killed())
            .await
            .expect("already killed");
    }

    #[tokio::test]
    async fn a_future_polled_from_two_tasks_in_turn_wakes_the_last_one() {
        let switch: &'static KillSwitch = Box::leak(Box::default());
        let mut fut = Box::pin(switch.killed());
        // First polled here, then moved into another task, which must be the one woken.
        assert!(futures_poll_once(fut.as_mut()).is_pending());
        let task = tokio::spawn(fut);
        tokio::task::yield_now().await;
        switch.kill();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("woken")
            .expect("task");
    }

    fn futures_poll_once(fut: Pin<&mut Killed<'_>>) -> Poll<()> {
        let waker = std::task::Waker::noop();
        fut.poll(&mut Context::from_waker(waker))
    }
}
