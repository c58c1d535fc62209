//! Transaction pins shared by a pool's sessions.
//!
//! A client pins a server connection from `startTransaction` to commit/abort. Drivers may
//! send the rest of a transaction, or its commit, on another of their connections (MongoDB
//! servers keep transactions per session, not per connection). So when any session sees a
//! transaction of an lsid end (commit, abort, or a new transaction of the same lsid), the
//! session holding the pin is told, and releases its server connection even while its
//! client is idle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One pinned transaction.
#[derive(Debug)]
pub struct TxnPin {
    pub lsid: Vec<u8>,
    pub txn_number: i64,
    ended: AtomicBool,
    pub notify: Notify,
}

impl TxnPin {
    pub fn new(lsid: Vec<u8>, txn_number: i64) -> TxnPin {
        TxnPin {
            lsid,
            txn_number,
            ended: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Whether the transaction ended through another client connection.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// The pins of one pool, by lsid. Touched only by transaction commands.
#[derive(Debug, Default)]
pub struct TxnRegistry {
    pins: Mutex<HashMap<Vec<u8>, Arc<TxnPin>>>,
}

impl TxnRegistry {
    /// Records a new pin; an older pin of the same lsid has ended.
    pub fn register(&self, pin: Arc<TxnPin>) {
        let old = self
            .pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pin.lsid.clone(), pin);
        if let Some(old) = old {
            old.end();
        }
    }

    /// The transaction of `lsid` ended (seen by any session): tell its pin holder.
    pub fn end(&self, lsid: &[u8]) {
        let pin = self
            .pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(lsid);
        if let Some(pin) = pin {
            pin.end();
        }
    }

    /// The holder gives its pin up (it saw the end itself, or its client left).
    pub fn remove(&self, pin: &Arc<TxnPin>) {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        if pins.get(&pin.lsid).is_some_and(|p| Arc::ptr_eq(p, pin)) {
            pins.remove(&pin.lsid);
        }
    }

    /// Whether a transaction of `lsid` is pinned by some session now.
    pub fn contains(&self, lsid: &[u8]) -> bool {
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(lsid)
    }

    pub fn len(&self) -> usize {
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn end_seen_elsewhere_wakes_the_holder() {
        let reg = TxnRegistry::default();
        let pin = Arc::new(TxnPin::new(vec![1, 2], 7));
        reg.register(pin.clone());
        assert!(!pin.ended());
        reg.end(&[1, 2]);
        assert!(pin.ended());
        // The permit is stored: the holder wakes even if it starts waiting later.
        tokio::time::timeout(std::time::Duration::from_secs(1), pin.notify.notified())
            .await
            .expect("woken");
        assert!(reg.is_empty());
    }

    #[test]
    fn new_transaction_of_same_lsid_ends_the_old_pin() {
        let reg = TxnRegistry::default();
        let a = Arc::new(TxnPin::new(vec![9], 1));
        let b = Arc::new(TxnPin::new(vec![9], 2));
        reg.register(a.clone());
        reg.register(b.clone());
        assert!(a.ended() && !b.ended());
        reg.remove(&a); // stale holder must not remove the new pin
        assert_eq!(reg.len(), 1);
        reg.remove(&b);
        assert!(reg.is_empty());
    }
}
