//! The idle connections: a one-place "hot" slot for the most recently returned connection
//! in front of a FIFO queue, both lock-free (crossbeam `ArrayQueue` and `SegQueue`). The FIFO
//! is unbounded because a reload may grow the pool; the slot count (`total`) bounds it.
//!
//! Handing out the connection returned last (most-recently-used first) keeps one server
//! process and its caches warm under light load, which measurably lowers latency compared
//! with rotating through every connection; the FIFO behind it still lets `idle_timeout`
//! retire connections that are not needed.

use crossbeam_queue::{ArrayQueue, SegQueue};

pub(crate) struct IdleQueue<T> {
    hot: ArrayQueue<T>,
    cold: SegQueue<T>,
}

impl<T> IdleQueue<T> {
    pub(crate) fn new() -> Self {
        IdleQueue {
            hot: ArrayQueue::new(1),
            cold: SegQueue::new(),
        }
    }

    /// Adds an item; it becomes the next one popped.
    pub(crate) fn push(&self, item: T) {
        if let Some(displaced) = self.hot.force_push(item) {
            self.cold.push(displaced);
        }
    }

    /// The most recently pushed item if it is still there, else the oldest one.
    pub(crate) fn pop(&self) -> Option<T> {
        self.hot.pop().or_else(|| self.cold.pop())
    }

    pub(crate) fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_returned_comes_out_first_then_oldest() {
        let q = IdleQueue::new();
        for i in 1..=3 {
            q.push(i);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }
}
