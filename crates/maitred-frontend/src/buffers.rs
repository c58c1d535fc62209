//! Buffers lent to sessions while they are busy. An idle client keeps no buffer: its
//! session gives its empty buffers back here when it goes idle and takes them again when
//! its client sends something, so a crowd of idle clients costs no buffer memory, and a
//! busy session does not call the allocator for them (each worker thread keeps its own
//! spares).

use bytes::BytesMut;
use std::cell::RefCell;

/// A buffer is made (or kept) with at least this much room.
pub const BUFFER_SIZE: usize = 2048;
/// Larger buffers (one that grew for a large message or result) are freed, not kept.
const LARGEST_KEPT: usize = 16 * 1024;
/// Spare buffers kept per worker thread: enough for the sessions busy at once on it.
const SPARES_PER_THREAD: usize = 256;

thread_local! {
    static SPARES: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with at least [`BUFFER_SIZE`] of room.
pub fn take() -> BytesMut {
    SPARES
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(BUFFER_SIZE))
}

/// Makes `buf` a lent buffer if it has none (capacity 0), for a session going busy.
pub fn ensure(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = take();
    }
}

/// Gives `buf` back if it is empty (a buffer holding part of a message stays), leaving
/// it without capacity.
pub fn give_back(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let mut spare = std::mem::take(buf);
    // Reclaims the room in front of the read position, when the buffer owns it alone.
    spare.clear();
    spare.reserve(BUFFER_SIZE);
    if spare.capacity() > LARGEST_KEPT {
        return;
    }
    SPARES.with(|s| {
        let mut spares = s.borrow_mut();
        if spares.len() < SPARES_PER_THREAD {
            spares.push(spare);
        }
    });
}

/// A session going idle gives back each of its empty buffers ([`give_back`]).
pub fn park_all<const N: usize>(bufs: [&mut BytesMut; N]) {
    for buf in bufs {
        give_back(buf);
    }
}

/// A session going busy gets a buffer wherever it has none ([`ensure`]).
pub fn lend_all<const N: usize>(bufs: [&mut BytesMut; N]) {
    for buf in bufs {
        ensure(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_goes_back_and_comes_out_again() {
        let mut a = take();
        assert!(a.capacity() >= BUFFER_SIZE);
        a.extend_from_slice(b"partial");
        give_back(&mut a);
        assert_eq!(&a[..], b"partial", "a buffer holding bytes stays");
        a.clear();
        let ptr = a.as_ptr();
        give_back(&mut a);
        assert_eq!(a.capacity(), 0, "the idle session keeps no buffer");
        let b = take();
        assert_eq!(b.as_ptr(), ptr, "the same memory, lent again");
        assert!(b.is_empty() && b.capacity() >= BUFFER_SIZE);
    }

    #[test]
    fn a_large_buffer_is_freed_not_kept() {
        let mut big = BytesMut::with_capacity(LARGEST_KEPT * 2);
        let ptr = big.as_ptr();
        give_back(&mut big);
        assert_eq!(big.capacity(), 0);
        assert_ne!(take().as_ptr(), ptr);
    }

    #[test]
    fn ensure_lends_only_to_a_session_without_a_buffer() {
        let mut none = BytesMut::new();
        ensure(&mut none);
        assert!(none.capacity() >= BUFFER_SIZE);
        let mut own = BytesMut::with_capacity(64);
        ensure(&mut own);
        assert_eq!(own.capacity(), 64);
    }
}
