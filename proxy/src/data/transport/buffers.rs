//! A per-thread pool of the fast path's upstream read buffers, so they belong
//! to requests in progress rather than to connections: an idle keep-alive
//! connection holds none, and a busy thread reuses the same few instead of
//! allocating.
use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread; more are freed when returned.
const KEPT: usize = 32;

/// Capacity of the fast path's buffer for bytes read from an endpoint.
const UPSTREAM_CAPACITY: usize = 16 * 1024;

thread_local! {
    static FREE_UPSTREAM: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer for reading an endpoint's response.
#[inline]
pub fn take_upstream() -> BytesMut {
    FREE_UPSTREAM
        .with(|free| free.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(UPSTREAM_CAPACITY))
}

/// Returns a buffer from [`take_upstream`]; emptied first. One that lost
/// capacity (split off and sent on) or grew is dropped.
#[inline]
pub fn give_upstream(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() != UPSTREAM_CAPACITY {
        return;
    }
    FREE_UPSTREAM.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            free.push(buf);
        }
    });
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
}
