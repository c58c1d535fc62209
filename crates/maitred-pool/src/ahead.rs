//! Sending a queued request ahead: the holder of a busy connection writes the next
//! waiter's request behind its own, so the server finds it in its socket the moment it
//! finishes the current one, instead of sleeping until the next client is scheduled.
//!
//! 1. A checkout that must wait may offer its request ([`Ahead`]): the bytes, and an
//!    `affinity` that says which connections may run them as they are (for PostgreSQL, the
//!    session settings the request needs). An [`Affinity`] is compared byte for byte, never
//!    by a hash: two different states never match, however they were chosen.
//! 2. The lease holder, once its own request is on the wire and it knows that request
//!    leaves the connection as it found it, calls
//!    [`Lease::claim_successor`](crate::Lease::claim_successor): only the *front* waiter
//!    can be claimed (FIFO holds), only with an equal affinity, and only while the
//!    connection may be reused at all (not paused, closed, retired, expired or above a
//!    shrunk `max_size`).
//! 3. The holder writes [`Successor::request`] on the connection, and once its own reply
//!    is read, [`Successor::hand_over`]s the connection: the waiter's checkout returns a
//!    lease whose [`request_sent`](crate::Lease::request_sent) is true, with the reply on
//!    the way (perhaps already in the connection's buffers).
//! 4. A successor dropped without a hand-over (the holder's client or server went away)
//!    tells its waiter [`CheckoutError::SentAheadLost`](crate::CheckoutError::SentAheadLost);
//!    a waiter gone before the hand-over gives the connection back to its holder, which
//!    marks it dirty so the reset drains the orphaned reply.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::lease::Lease;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::stats::bump;
use crate::waiters::{Claimed, Grant, Outcome};

/// The state a connection must be in for a request sent ahead to run on it as it is, in a
/// form the protocol chooses (e.g. a canonical encoding of session settings). Two
/// affinities match only when their bytes are equal: no hash stands in for the state, so
/// no crafted state can pass for another.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Affinity(Bytes);

impl Affinity {
    /// An affinity made of exactly these bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Affinity {
        Affinity(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A number as an affinity (its 8 bytes): for states a number names exactly.
impl From<u64> for Affinity {
    fn from(v: u64) -> Affinity {
        Affinity(Bytes::copy_from_slice(&v.to_be_bytes()))
    }
}

/// A request a waiting checkout lets the holder of a connection send for it.
#[derive(Clone, Debug)]
pub struct Ahead {
    /// The bytes to write on the connection, exactly as the server must receive them.
    pub request: Bytes,
    /// Only a holder offering an equal affinity may claim this waiter.
    pub affinity: Affinity,
    /// Something the holder's connection must have for the request to run there as it is
    /// (for PostgreSQL, the id of a prepared statement the request executes).
    pub requires: Option<u64>,
}

/// A waiter claimed by a lease holder: write [`request`](Self::request) on the
/// connection, then [`hand_over`](Self::hand_over) the lease once the connection owes
/// nothing else. Dropped instead, the waiter's checkout fails with
/// [`CheckoutError::SentAheadLost`](crate::CheckoutError::SentAheadLost).
pub struct Successor<M: Manager> {
    shared: Arc<Shared<M>>,
    tx: Option<oneshot::Sender<Outcome<M::Connection>>>,
    request: Bytes,
    requires: Option<u64>,
}

impl<M: Manager> Successor<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, claimed: Claimed<M::Connection>) -> Self {
        bump(&shared.counters.sent_ahead);
        Self {
            shared,
            tx: Some(claimed.tx),
            request: claimed.request,
            requires: claimed.requires,
        }
    }

    /// The waiter's request, to be written on the connection after the holder's own.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// What the request needs of the connection ([`Ahead::requires`]), already checked by
    /// the claim: for MySQL, the statement whose server id the holder writes into it.
    pub fn requires(&self) -> Option<u64> {
        self.requires
    }

    /// Gives the connection, with the successor's request written and its reply owed, to
    /// the successor. If the successor's checkout is gone, the lease comes back: the
    /// caller must then [`mark_dirty`](Lease::mark_dirty) it (the reset drains the reply
    /// nobody reads).
    pub fn hand_over(mut self, mut lease: Lease<M>) -> Result<(), Lease<M>> {
        let Some(tx) = self.tx.take() else {
            return Err(lease);
        };
        let Some(pooled) = lease.take_pooled() else {
            return Err(lease);
        };
        match tx.send(Outcome::Granted(Grant::Sent(pooled))) {
            Ok(()) => Ok(()),
            Err(Outcome::Granted(Grant::Sent(pooled) | Grant::Conn(pooled))) => {
                Err(Lease::new(Arc::clone(&self.shared), pooled))
            }
            // Only the grant above was sent, so only it can come back.
            Err(_) => Err(lease),
        }
    }
}

impl<M: Manager> Drop for Successor<M> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            bump(&self.shared.counters.sent_ahead_lost);
            let _ = tx.send(Outcome::Lost);
        }
    }
}

impl<M: Manager> fmt::Debug for Successor<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Successor")
            .field("pool", &self.shared.name())
            .field("request_len", &self.request.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use bytes::Bytes;

    use super::Ahead;
    use crate::test_support::{fake_pool, settings, settle, FakeManager};
    use crate::{CheckoutError, Lease, Pool};

    fn ahead(request: &'static str, affinity: u64) -> Ahead {
        Ahead {
            request: Bytes::from_static(request.as_bytes()),
            affinity: affinity.into(),
            requires: None,
        }
    }

    /// Spawns a checkout offering `request`, and waits until it is parked.
    async fn parked(
        pool: &Pool<FakeManager>,
        request: &'static str,
        affinity: u64,
    ) -> tokio::task::JoinHandle<
        Result<Lease<FakeManager>, CheckoutError<crate::test_support::FakeError>>,
    > {
        let before = pool.state().waiting;
        let task = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout_ahead(ahead(request, affinity)).await }
        });
        while pool.state().waiting == before {
            tokio::task::yield_now().await;
        }
        task
    }

    #[tokio::test(start_paused = true)]
    async fn the_front_waiter_is_claimed_and_handed_the_connection_with_its_request_sent() {
        let (pool, fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        assert!(!held.request_sent());
        let first = parked(&pool, "SELECT 1", 7).await;
        let _second = parked(&pool, "SELECT 2", 7).await;
        assert!(
            held.claim_successor(8u64, |_| true).is_none(),
            "other affinity"
        );
        let successor = held
            .claim_successor(7u64, |_| true)
            .expect("front waiter claimed");
        assert_eq!(successor.request(), b"SELECT 1");
        assert_eq!(pool.state().waiting, 1, "claimed waiter left the queue");
        successor.hand_over(held).expect("waiter still there");
        let lease = first.await.expect("task").expect("checkout");
        assert!(lease.request_sent());
        assert_eq!(lease.id, 0);
        assert_eq!(fake.opened.load(SeqCst), 1);
        let stats = pool.stats();
        assert_eq!((stats.sent_ahead, stats.sent_ahead_lost), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn affinities_match_byte_for_byte_only() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.checkout_ahead(Ahead {
                    affinity: super::Affinity::new(&b"search_path=a"[..]),
                    ..ahead("SELECT 1", 0)
                })
                .await
            }
        });
        while pool.state().waiting == 0 {
            tokio::task::yield_now().await;
        }
        for other in [
            &b"search_path=b"[..],
            b"search_path=a ",
            b"",
            b"search_path=",
        ] {
            assert!(held
                .claim_successor(super::Affinity::new(other), |_| true)
                .is_none());
        }
        let successor = held
            .claim_successor(super::Affinity::new(&b"search_path=a"[..]), |_| true)
            .expect("equal bytes");
        successor.hand_over(held).expect("waiter there");
        assert!(waiter
            .await
            .expect("task")
            .expect("checkout")
            .request_sent());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_requires_what_the_connection_lacks_is_not_claimed() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.checkout_ahead(Ahead {
                    requires: Some(5),
                    ..ahead("EXECUTE", 1)
                })
                .await
            }
        });
        while pool.state().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert!(held.claim_successor(1u64, |id| id == 4).is_none());
        let successor = held.claim_successor(1u64, |id| id == 5).expect("has it");
        successor.hand_over(held).expect("handed over");
        assert!(waiter
            .await
            .expect("task")
            .expect("checkout")
            .request_sent());
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_oldest_waiter_can_be_claimed() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        // The oldest waiter offered nothing: nobody behind it may overtake it.
        let plain = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await }
        });
        while pool.state().waiting == 0 {
            tokio::task::yield_now().await;
        }
        let _behind = parked(&pool, "SELECT 1", 1).await;
        assert!(held.claim_successor(1u64, |_| true).is_none());
        drop(held);
        let lease = plain.await.expect("task").expect("checkout");
        assert!(!lease.request_sent());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_successor_fails_its_waiter_with_sent_ahead_lost() {
        let (pool, _fake) = fake_pool(settings(1));
        let mut held = pool.checkout().await.expect("checkout");
        let waiter = parked(&pool, "SELECT 1", 1).await;
        let successor = held.claim_successor(1u64, |_| true).expect("claimed");
        held.mark_dirty();
        drop(successor);
        drop(held);
        let err = waiter.await.expect("task").expect_err("lost");
        assert!(
            matches!(err, CheckoutError::SentAheadLost { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("retry"), "{err}");
        assert_eq!(pool.stats().sent_ahead_lost, 1);
        settle().await;
        assert_eq!(
            pool.state().idle,
            1,
            "the dirty connection was reset and kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gone_before_the_hand_over_gives_the_lease_back_to_be_reset() {
        let (pool, fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let waiter = parked(&pool, "SELECT 1", 1).await;
        let successor = held.claim_successor(1u64, |_| true).expect("claimed");
        waiter.abort();
        let _ = waiter.await;
        let mut back = successor.hand_over(held).expect_err("nobody to hand to");
        back.mark_dirty();
        drop(back);
        settle().await;
        assert_eq!(fake.resets.load(SeqCst), 1, "the orphaned reply is drained");
        assert_eq!(pool.state().idle, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sent_grant_that_reaches_a_cancelled_checkout_is_reset_not_checked_in() {
        let (pool, fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let mut parked_checkout = Box::pin(pool.checkout_ahead(ahead("SELECT 1", 1)));
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, &mut parked_checkout)
                .await
                .is_err()
        );
        let successor = held.claim_successor(1u64, |_| true).expect("claimed");
        successor.hand_over(held).expect("receiver still open");
        drop(parked_checkout); // never looked at its grant
        settle().await;
        assert_eq!(fake.resets.load(SeqCst), 1);
        assert_eq!(pool.state().idle, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_claim_while_paused_or_for_a_retired_connection() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let waiter = parked(&pool, "SELECT 1", 1).await;
        pool.pause();
        assert!(held.claim_successor(1u64, |_| true).is_none(), "paused");
        pool.resume();
        pool.reconnect();
        assert!(
            held.claim_successor(1u64, |_| true).is_none(),
            "retired by RECONNECT"
        );
        drop(held);
        let lease = waiter.await.expect("task").expect("checkout");
        assert!(!lease.request_sent(), "served the ordinary way");
        assert_eq!(lease.id, 1, "a fresh connection");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unclaimed_offer_is_served_like_a_plain_checkout() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let waiter = parked(&pool, "SELECT 1", 1).await;
        drop(held);
        let lease = waiter.await.expect("task").expect("checkout");
        assert!(!lease.request_sent());
        // Without anyone waiting, an offer takes an idle connection at once.
        drop(lease);
        let lease = pool
            .checkout_ahead(ahead("SELECT 1", 1))
            .await
            .expect("checkout");
        assert!(!lease.request_sent());
    }
}
