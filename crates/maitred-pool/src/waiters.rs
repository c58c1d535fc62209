//! The FIFO queue of parked checkouts: the only lock in the pool, taken only
//! by checkouts that must wait and by whoever hands them something.
//!
//! A waiter is an entry with a oneshot sender and its deadline. [`WaitQueue::dispatch`]
//! pops front entries and sends each a [`Grant`] while holding the lock, so a
//! waiter that is no longer in the queue has either been sent its grant, been
//! told it timed out by [`WaitQueue::expire`], or was dropped by
//! [`WaitQueue::close`]. [`WaitQueue::cancel`] relies on that to hand back a
//! grant that arrived too late.
//!
//! `queue_timeout` is enforced by one sweeper per pool (`sweeper.rs`), not by a
//! timer per waiter: a timer inserted and removed for every parked checkout was
//! a measurable share of the proxy's CPU at saturation, where nearly every
//! checkout parks. Waiters join in FIFO order with the same timeout, so the
//! front one's deadline is the next to pass.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::ahead::{Affinity, Ahead};
use crate::shared::Pooled;

/// What a waiter is handed. Either way it carries one unit of the pool's
/// `total` count, which the receiver now owns.
#[derive(Debug)]
pub(crate) enum Grant<C> {
    /// An idle connection (not yet checked for expiry or liveness).
    Conn(Pooled<C>),
    /// A reserved slot: the waiter may open a new connection.
    Slot,
    /// A connection on which the waiter's [`Ahead`] request was already written by the
    /// previous holder (see `ahead.rs`): its reply is on the way, so the connection is not
    /// idle and must never be checked in as it is.
    Sent(Pooled<C>),
}

/// What a parked checkout learns.
#[derive(Debug)]
pub(crate) enum Outcome<C> {
    Granted(Grant<C>),
    /// Its deadline passed first (`queue_timeout`); it was taken off the queue.
    TimedOut,
    /// Its request was sent ahead on a connection that was then lost before the
    /// hand-over (the previous holder's client or server went away).
    Lost,
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
    pub(crate) rx: oneshot::Receiver<Outcome<C>>,
}

#[derive(Debug)]
struct Entry<C> {
    id: u64,
    deadline: Instant,
    tx: oneshot::Sender<Outcome<C>>,
    /// The request this waiter lets the holder of a connection send for it.
    ahead: Option<Ahead>,
}

/// A waiter taken off the queue by [`WaitQueue::claim`]: its request, and where to send
/// the connection once the request was written on it.
#[derive(Debug)]
pub(crate) struct Claimed<C> {
    pub(crate) tx: oneshot::Sender<Outcome<C>>,
    pub(crate) request: Bytes,
    pub(crate) requires: Option<u64>,
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
    /// Wakes the sweeper: a waiter joined an empty queue, the timeout changed, or
    /// the queue closed.
    pub(crate) rearm: Arc<Notify>,
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
            rearm: Arc::new(Notify::new()),
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

    /// Joins the back of the queue, to be told [`Outcome::TimedOut`] once
    /// `deadline` passes. The caller must then make a dispatch attempt (after a
    /// SeqCst fence) so it cannot sleep next to an idle connection or a free slot.
    pub(crate) fn register(
        &self,
        max_waiting: usize,
        deadline: Instant,
        ahead: Option<Ahead>,
    ) -> Result<Ticket<C>, RegisterError> {
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
        let was_empty = queue.entries.is_empty();
        queue.entries.push_back(Entry {
            id,
            deadline,
            tx,
            ahead,
        });
        self.waiting.fetch_add(1, SeqCst);
        drop(queue);
        if was_empty {
            // The sweeper may be asleep with nothing to watch: this deadline is the next.
            self.rearm.notify_one();
        }
        Ok(Ticket { id, rx })
    }

    /// Tells every waiter whose deadline is at or before `now` that it timed
    /// out, and takes it off the queue. Returns the earliest deadline left.
    pub(crate) fn expire(&self, now: Instant) -> Option<Instant> {
        let mut queue = self.lock();
        let mut next: Option<Instant> = None;
        let mut kept = VecDeque::with_capacity(queue.entries.len());
        for entry in queue.entries.drain(..) {
            if entry.deadline <= now {
                self.waiting.fetch_sub(1, SeqCst);
                // A receiver already gone cancels itself (and finds nothing).
                let _ = entry.tx.send(Outcome::TimedOut);
            } else {
                next = Some(next.map_or(entry.deadline, |n| n.min(entry.deadline)));
                kept.push_back(entry);
            }
        }
        queue.entries = kept;
        next
    }

    /// Takes the front waiter off the queue if it offered a request with this `affinity`
    /// (FIFO holds: only the oldest waiter can be claimed). Its deadline no longer applies:
    /// it is served by whoever claimed it, or told [`Outcome::Lost`].
    /// `has` runs under the lock and must not call back into the queue.
    pub(crate) fn claim(
        &self,
        affinity: &Affinity,
        has: &dyn Fn(u64) -> bool,
    ) -> Option<Claimed<C>> {
        let mut queue = self.lock();
        let front = queue.entries.front_mut()?;
        let fits = front
            .ahead
            .as_ref()
            .is_some_and(|a| a.affinity == *affinity && a.requires.is_none_or(has));
        if !fits || front.tx.is_closed() {
            return None;
        }
        let ahead = front.ahead.take()?;
        let entry = queue.entries.pop_front()?;
        self.waiting.fetch_sub(1, SeqCst);
        Some(Claimed {
            tx: entry.tx,
            request: ahead.request,
            requires: ahead.requires,
        })
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
        // Not queued any more: dispatched or expired (sent under the lock, so it
        // is in the channel by now) or dropped by close (nothing to receive).
        ticket.rx.close();
        match ticket.rx.try_recv() {
            Ok(Outcome::Granted(grant)) => Some(grant),
            Ok(Outcome::TimedOut | Outcome::Lost) | Err(_) => None,
        }
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
            if let Err(Outcome::Granted(grant)) = entry.tx.send(Outcome::Granted(grant)) {
                spare = Some(grant);
            }
        }
        drop(queue);
        if let Some(grant) = spare {
            restore(grant);
        }
    }

    /// Gives an idle connection to the oldest waiter still listening, if there is one;
    /// otherwise returns it. The fast lane of a check-in while clients queue: one
    /// [`dispatch`](Self::dispatch) of this connection alone, no trip through the idle queue
    /// and back.
    pub(crate) fn hand_over(&self, pooled: Pooled<C>) -> Option<Pooled<C>> {
        let mut offer = Some(Grant::Conn(pooled));
        let mut undelivered = None;
        self.dispatch(|| offer.take(), |grant| undelivered = Some(grant));
        match undelivered.or(offer) {
            Some(Grant::Conn(pooled)) => Some(pooled),
            // Only a connection was offered: nothing else can come back.
            Some(Grant::Slot | Grant::Sent(_)) | None => None,
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
        self.rearm.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

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
        let mut tickets: Vec<_> = (0..3)
            .map(|_| q.register(10, later(), None).expect("register"))
            .collect();
        assert_eq!(q.waiting(), 3);
        q.dispatch(slot_source(2), |_| panic!("nothing to restore"));
        assert_eq!(q.waiting(), 1);
        assert!(matches!(
            tickets[0].rx.try_recv(),
            Ok(Outcome::Granted(Grant::Slot))
        ));
        assert!(matches!(
            tickets[1].rx.try_recv(),
            Ok(Outcome::Granted(Grant::Slot))
        ));
        assert!(tickets[2].rx.try_recv().is_err());
    }

    #[test]
    fn register_refuses_beyond_max_waiting_and_after_close() {
        let q = WaitQueue::<()>::new();
        let _a = q.register(1, later(), None).expect("register");
        assert_eq!(
            q.register(1, later(), None).err(),
            Some(RegisterError::Full)
        );
        q.close();
        assert_eq!(q.waiting(), 0);
        assert_eq!(
            q.register(1, later(), None).err(),
            Some(RegisterError::Closed)
        );
    }

    #[test]
    fn cancel_before_grant_leaves_no_trace() {
        let q = WaitQueue::<()>::new();
        let mut a = q.register(10, later(), None).expect("register");
        let mut b = q.register(10, later(), None).expect("register");
        assert!(q.cancel(&mut a).is_none());
        assert_eq!(q.waiting(), 1);
        q.dispatch(slot_source(1), |_| panic!("nothing to restore"));
        assert!(matches!(b.rx.try_recv(), Ok(Outcome::Granted(Grant::Slot))));
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn cancel_after_grant_returns_the_grant() {
        let q = WaitQueue::<()>::new();
        let mut a = q.register(10, later(), None).expect("register");
        q.dispatch(slot_source(1), |_| panic!("nothing to restore"));
        assert!(matches!(q.cancel(&mut a), Some(Grant::Slot)));
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn undeliverable_grant_goes_to_next_waiter_or_back() {
        let q = WaitQueue::<()>::new();
        let gone = q.register(10, later(), None).expect("register");
        let mut b = q.register(10, later(), None).expect("register");
        drop(gone); // receiver vanished without cancelling
        q.dispatch(slot_source(1), |_| panic!("b should get it"));
        assert!(matches!(b.rx.try_recv(), Ok(Outcome::Granted(Grant::Slot))));

        let gone = q.register(10, later(), None).expect("register");
        drop(gone);
        let mut restored = 0;
        q.dispatch(slot_source(1), |_| restored += 1);
        assert_eq!(restored, 1);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn hand_over_skips_vanished_waiters_and_returns_the_connection_when_none_is_left() {
        let conn = || Pooled::new((), 0);
        let q = WaitQueue::<()>::new();
        assert!(q.hand_over(conn()).is_some());
        let gone = q.register(10, later(), None).expect("register");
        let mut b = q.register(10, later(), None).expect("register");
        drop(gone);
        assert!(q.hand_over(conn()).is_none());
        assert!(matches!(
            b.rx.try_recv(),
            Ok(Outcome::Granted(Grant::Conn(_)))
        ));
        assert_eq!(q.waiting(), 0);
        assert!(q.hand_over(conn()).is_some());
    }

    #[test]
    fn close_wakes_waiters_with_a_dropped_sender() {
        let q = WaitQueue::<()>::new();
        let mut a = q.register(10, later(), None).expect("register");
        q.close();
        assert!(matches!(
            a.rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(q.cancel(&mut a).is_none());
    }

    #[test]
    fn expire_tells_only_the_waiters_past_their_deadline() {
        let q = WaitQueue::<()>::new();
        let now = Instant::now();
        let mut early = q.register(10, now, None).expect("register");
        let mut late = q
            .register(10, now + Duration::from_secs(5), None)
            .expect("register");
        assert_eq!(q.expire(now), Some(now + Duration::from_secs(5)));
        assert_eq!(q.waiting(), 1);
        assert!(matches!(early.rx.try_recv(), Ok(Outcome::TimedOut)));
        // A timed-out waiter that cancels afterwards finds no grant to give back.
        assert!(q.cancel(&mut early).is_none());
        assert!(late.rx.try_recv().is_err());
        q.dispatch(slot_source(1), |_| panic!("late should get it"));
        assert!(matches!(
            late.rx.try_recv(),
            Ok(Outcome::Granted(Grant::Slot))
        ));
        assert_eq!(q.expire(now + Duration::from_secs(10)), None);
    }
}
