//! The idle connections: a one-place "hot" slot for the most recently returned connection
//! in front of a FIFO queue, both lock-free (crossbeam `ArrayQueue`).
//!
//! Handing out the connection returned last (most-recently-used first) keeps one server
//! process and its caches warm under light load, which measurably lowers latency compared
//! with rotating through every connection; the FIFO behind it still lets `idle_timeout`
//! retire connections that are not needed.

use crossbeam_queue::ArrayQueue;

pub(crate) struct IdleQueue<T> {
    hot: ArrayQueue<T>,
    cold: ArrayQueue<T>,
}

impl<T> IdleQueue<T> {
    /// A queue holding at most `capacity` items (at least one place).
    pub(crate) fn new(capacity: usize) -> Self {
        IdleQueue {
            hot: ArrayQueue::new(1),
            cold: ArrayQueue::new(capacity.max(1)),
        }
    }

    /// Adds an item; it becomes the next one popped. Gives the item back when full.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        match self.hot.force_push(item) {
            None => Ok(()),
            Some(displaced) => self.cold.push(displaced),
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
        let q = IdleQueue::new(3);
        for i in 1..=3 {
            assert!(q.push(i).is_ok());
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn full_queue_gives_the_item_back() {
        let q = IdleQueue::new(1);
        assert!(q.push(1).is_ok());
        assert!(q.push(2).is_ok(), "1 moves to the cold queue");
        assert_eq!(q.push(3), Err(2), "the displaced item comes back when full");
        assert_eq!(q.len(), 2);
    }
}
