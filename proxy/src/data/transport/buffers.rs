//! Per-thread pools of the fast path's buffers (the request head, the bytes
//! written, the endpoint's response), so they belong to requests in progress
//! rather than to connections: an idle keep-alive connection holds none, and
//! a busy thread reuses the same few instead of allocating.
use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread; more are freed when returned.
const KEPT: usize = 32;

/// Capacity of the fast path's buffer for bytes read from an endpoint.
const UPSTREAM_CAPACITY: usize = 16 * 1024;

/// Capacity of a buffer for a request head (most fit the first kilobyte).
pub const HEAD_CAPACITY: usize = 1024;

/// Output buffers that grew beyond this are not kept.
const OUT_KEPT_CAPACITY: usize = 32 * 1024;

thread_local! {
    static FREE_UPSTREAM: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static FREE_HEAD: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static FREE_OUT: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer for a request head, [`HEAD_CAPACITY`] bytes.
#[inline]
pub fn take_head() -> BytesMut {
    take_bytes(&FREE_HEAD, HEAD_CAPACITY)
}

/// Returns a buffer from [`take_head`]; one that lost or gained capacity is dropped.
#[inline]
pub fn give_head(buf: BytesMut) {
    give_bytes(&FREE_HEAD, buf, HEAD_CAPACITY);
}

/// An empty buffer for the bytes a request writes.
#[inline]
pub fn take_out() -> Vec<u8> {
    FREE_OUT
        .with(|free| free.borrow_mut().pop())
        .unwrap_or_default()
}

/// Returns a buffer from [`take_out`], unless it grew large.
#[inline]
pub fn give_out(mut buf: Vec<u8>) {
    buf.clear();
    if buf.capacity() == 0 || buf.capacity() > OUT_KEPT_CAPACITY {
        return;
    }
    keep(&FREE_OUT, buf);
}

type Pool<T> = std::thread::LocalKey<RefCell<Vec<T>>>;

fn take_bytes(pool: &'static Pool<BytesMut>, capacity: usize) -> BytesMut {
    pool.with(|free| free.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(capacity))
}

/// Keeps `buf` emptied if it still has exactly `capacity` (not split off and
/// sent on, not grown).
fn give_bytes(pool: &'static Pool<BytesMut>, mut buf: BytesMut, capacity: usize) {
    buf.clear();
    if buf.capacity() == capacity {
        keep(pool, buf);
    }
}

fn keep<T: 'static>(pool: &'static Pool<T>, buf: T) {
    pool.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            free.push(buf);
        }
    });
}

/// An empty buffer for reading an endpoint's response.
#[inline]
pub fn take_upstream() -> BytesMut {
    take_bytes(&FREE_UPSTREAM, UPSTREAM_CAPACITY)
}

/// Returns a buffer from [`take_upstream`]; emptied first. One that lost
/// capacity (split off and sent on) or grew is dropped.
#[inline]
pub fn give_upstream(buf: BytesMut) {
    give_bytes(&FREE_UPSTREAM, buf, UPSTREAM_CAPACITY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_only_whole_ones_kept() {
        let a = take_upstream();
        let ptr = a.as_ptr();
        give_upstream(a);
        let b = take_upstream();
        assert_eq!(b.as_ptr(), ptr, "the same allocation again");
        assert!(b.is_empty() && b.capacity() == 16 * 1024);
        let mut c = b;
        c.extend_from_slice(&[1; 100]);
        let _sent = c.split_to(50);
        give_upstream(c);
        let fresh = take_upstream();
        assert_eq!(
            fresh.capacity(),
            16 * 1024,
            "a cut buffer is not handed out"
        );
    }

    #[test]
    fn head_and_output_buffers_are_reused() {
        let head = take_head();
        let ptr = head.as_ptr();
        give_head(head);
        assert_eq!(take_head().as_ptr(), ptr);
        let mut out = take_out();
        out.extend_from_slice(&[1; 300]);
        let ptr = out.as_ptr();
        give_out(out);
        let again = take_out();
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
        give_out(vec![0; 64 * 1024]);
        assert!(
            take_out().capacity() < 64 * 1024,
            "a grown buffer is dropped"
        );
    }
}
