//! The FIFO queue of parked checkouts: the only lock in the pool, taken only
//! by checkouts that must wait and by whoever hands them something.
//!
//! A waiter is an entry with a oneshot sender. [`WaitQueue::dispatch`] pops
//! front entries and sends each a [`Grant`] while holding the lock, so a
//! waiter that is no longer in the queue has either been sent its grant or
//! was dropped by [`WaitQueue::close`]. [`WaitQueue::cancel`] relies on that
//! to hand back a grant that arrived too late.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::shared::Pooled;

/// What a waiter is handed. Either way it carries one unit of the pool's
/// `total` count, which the receiver now owns.
#[derive(Debug)]
pub(crate) enum Grant<C> {
    /// An idle connection (not yet checked for expiry or liveness).
    Conn(Pooled<C>),
    /// A reserved slot: the waiter may open a new connection.
    Slot,
}

/// Why a checkout could not join the queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// The pool is closed.
    Closed,
    /// `max_waiting` checkouts are already waiting.
    Full,
}

/// A place in the queue: its id and the receiving end of its grant.
#[derive(Debug)]
pub(crate) struct Ticket<C> {
    id: u64,
    pub(crate) rx: oneshot::Receiver<Grant<C>>,
}

#[derive(Debug)]
struct Entry<C> {
    id: u64,
    tx: oneshot::Sender<Grant<C>>,
}

#[derive(Debug)]
struct Queue<C> {
    entries: VecDeque<Entry<C>>,
    next_id: u64,
    closed: bool,
}

/// FIFO of parked checkouts plus a lock-free count of them.
#[derive(Debug)]
pub(crate) struct WaitQueue<C> {
    queue: Mutex<Queue<C>>,
    /// Always equal to `queue.entries.len()`; only changed under the lock,
    /// read without it (SeqCst: see `Shared::push_idle`).
    waiting: AtomicUsize,
}

impl<C> WaitQueue<C> {
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                next_id: 0,
                closed: false,
            }),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Number of parked checkouts.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Queue<C>> {
        // Nothing that can panic runs under this lock; recover anyway.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the back of the queue. The caller must then make a dispatch
    /// attempt (after a SeqCst fence) so it cannot sleep next to an idle
    /// connection or a free slot.
    pub(crate) fn register(&self, max_waiting: usize) -> Result<Ticket<C>, RegisterError> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(RegisterError::Closed);
        }
        if queue.entries.len() >= max_waiting {
            return Err(RegisterError::Full);
        }
        let id = queue.next_id;
        queue.next_id = queue.next_id.wrapping_add(1);
        let (tx, rx) = oneshot::channel();
        queue.entries.push_back(Entry { id, tx });
        self.waiting.fetch_add(1, SeqCst);
        Ok(Ticket { id, rx })
    }

    /// Leaves the queue. Returns the grant if one was already sent, so the
    /// caller can give it back (or use it).
    pub(crate) fn cancel(&self, ticket: &mut Ticket<C>) -> Option<Grant<C>> {
        {
            let mut queue = self.lock();
            // Timed-out waiters are the oldest, so search from the front.
            if let Some(pos) = queue.entries.iter().position(|e| e.id == ticket.id) {
                queue.entries.remove(pos);
                self.waiting.fetch_sub(1, SeqCst);
                return None;
            }
        }
        // Not queued any more: dispatched (grant sent under the lock, so it is
        // in the channel by now) or dropped by close (nothing to receive).
        ticket.rx.close();
        ticket.rx.try_recv().ok()
    }

    /// Hands grants to front waiters, oldest first, while `acquire` finds
    /// something to give. A grant that cannot be delivered goes to the next
    /// waiter, or to `restore` if none is left. Both closures run under the
    /// lock and must not call back into the queue.
    pub(crate) fn dispatch(
        &self,
        mut acquire: impl FnMut() -> Option<Grant<C>>,
        restore: impl FnOnce(Grant<C>),
    ) {
        let mut queue = self.lock();
        let mut spare = None;
        while !queue.entries.is_empty() {
            let grant = match spare.take() {
                Some(grant) => grant,
                None => match acquire() {
                    Some(grant) => grant,
                    None => break,
                },
            };
            let Some(entry) = queue.entries.pop_front() else {
                spare = Some(grant);
                break;
            };
            self.waiting.fetch_sub(1, SeqCst);
            // Fails only if the receiver vanished without cancelling.
            if let Err(grant) = entry.tx.send(grant) {
                spare = Some(grant);
            }
        }
        drop(queue);
        if let Some(grant) = spare {
            restore(grant);
        }
    }

    /// Refuses new waiters and drops the parked ones: their receivers see the
    /// sender gone, which they report as a closed pool.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut queue = self.lock();
            queue.closed = true;
            self.waiting.store(0, SeqCst);
            std::mem::take(&mut queue.entries)
        };
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_source(mut n: usize) -> impl FnMut() -> Option<Grant<()>> {
        move || {
            if n == 0 {
                None
            } else {
                n -= 1;
                Some(Grant::Slot)
            }
        }
    }

    #[test]
    fn dispatch_serves_oldest_first_and_stops_when_nothing_to_give() {
        let q = WaitQueue::<()>::new();
        let mut tickets: Vec<_> = (0..3).map(|_| q.register(10).expect("register")).collect();
        assert_eq!(q.waiting(), 3);
        q.dispatch(slot_source(2), |_| panic!("nothing to restore"));
        assert_eq!(q.waiting(), 1);
        assert!(matches!(tickets[0].rx.try_recv(), Ok(Grant::Slot)));
        assert!(matches!(tickets[1].rx.try_recv(), Ok(Grant::Slot)));
        assert!(tickets[2].rx.try_recv().is_err());
    }

    #[test]
    fn register_refuses_beyond_max_waiting_and_after_close() {
        let q = WaitQueue::<()>::new();
        let _a = q.register(1).expect("register");
        assert_eq!(q.register(1).err(), Some(RegisterError::Full));
        q.close();
        assert_eq!(q.waiting(), 0);
        assert_eq!(q.register(1).err(), Some(RegisterError::Closed));
    }

    #[test]
    fn cancel_before_grant_leaves_no_trace() {
        let q = WaitQueue::<()>::new();
        let mut a = q.register(10).expect("register");
        let mut b = q.register(10).expect("register");
        assert!(q.cancel(&mut a).is_none());
        assert_eq!(q.waiting(), 1);
        q.dispatch(slot_source(1), |_| panic!("nothing to restore"));
        assert!(matches!(b.rx.try_recv(), Ok(Grant::Slot)));
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn cancel_after_grant_returns_the_grant() {
        let q = WaitQueue::<()>::new();
        let mut a = q.register(10).expect("register");
        q.dispatch(slot_source(1), |_| panic!("nothing to restore"));
        assert!(matches!(q.cancel(&mut a), Some(Grant::Slot)));
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn undeliverable_grant_goes_to_next_waiter_or_back() {
        let q = WaitQueue::<()>::new();
        let gone = q.register(10).expect("register");
        let mut b = q.register(10).expect("register");
        drop(gone); // receiver vanished without cancelling
        q.dispatch(slot_source(1), |_| panic!("b should get it"));
        assert!(matches!(b.rx.try_recv(), Ok(Grant::Slot)));

        let gone = q.register(10).expect("register");
        drop(gone);
        let mut restored = 0;
        q.dispatch(slot_source(1), |_| restored += 1);
        assert_eq!(restored, 1);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn close_wakes_waiters_with_a_dropped_sender() {
        let q = WaitQueue::<()>::new();
        let mut a = q.register(10).expect("register");
        q.close();
        assert!(matches!(
            a.rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(q.cancel(&mut a).is_none());
    }
}
