//! [`Traffic`]: bytes and queries relayed for one pool's clients, one relaxed atomic add
//! per relayed chunk or command.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Traffic {
    received: AtomicU64,
    sent: AtomicU64,
    queries: AtomicU64,
}

/// What [`Traffic`] counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Bytes read from clients.
    pub received: u64,
    /// Bytes written to clients.
    pub sent: u64,
    /// Queries or commands sent to a server: PostgreSQL Query and Execute messages,
    /// MySQL commands, MongoDB requests.
    pub queries: u64,
}

impl Traffic {
    /// `n` bytes read from a client.
    pub fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Relaxed);
    }

    /// `n` bytes written to a client.
    pub fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Relaxed);
    }

    /// One query or command forwarded to a server.
    pub fn query(&self) {
        self.queries.fetch_add(1, Relaxed);
    }

    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            queries: self.queries.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up() {
        let t = Traffic::default();
        t.received(10);
        t.received(5);
        t.sent(7);
        t.query();
        t.query();
        assert_eq!(
            t.totals(),
            TrafficTotals {
                received: 15,
                sent: 7,
                queries: 2
            }
        );
    }
}
