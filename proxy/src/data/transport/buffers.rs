//! Per-thread pools of I/O buffers, so buffers belong to requests in
//! progress rather than to connections: an idle keep-alive connection holds
//! none of them, and a busy thread reuses the same few instead of allocating.
use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread and pool; more are freed when returned.
const KEPT: usize = 32;

/// One kind of buffer: all of `capacity` bytes.
pub struct Pool {
    capacity: usize,
    kind: usize,
}

/// Bytes read from an endpoint by the fast path.
pub const UPSTREAM: Pool = Pool {
    capacity: 16 * 1024,
    kind: 0,
};

thread_local! {
    static FREE: RefCell<[Vec<BytesMut>; 1]> = const { RefCell::new([Vec::new()]) };
}

impl Pool {
    /// An empty buffer of the pool's capacity.
    #[inline]
    pub fn take(&self) -> BytesMut {
        FREE.with(|free| free.borrow_mut()[self.kind].pop())
            .unwrap_or_else(|| BytesMut::with_capacity(self.capacity))
    }

    /// Returns a buffer taken from this pool; emptied first. One that lost its
    /// capacity (split off and sent on) or grew is dropped.
    #[inline]
    pub fn give(&self, mut buf: BytesMut) {
        buf.clear();
        if buf.capacity() != self.capacity {
            return;
        }
        FREE.with(|free| {
            let list = &mut free.borrow_mut()[self.kind];
            if list.len() < KEPT {
                list.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_only_whole_ones_kept() {
        let a = UPSTREAM.take();
        let ptr = a.as_ptr();
        UPSTREAM.give(a);
        let b = UPSTREAM.take();
        assert_eq!(b.as_ptr(), ptr, "the same allocation again");
        assert!(b.is_empty() && b.capacity() == 16 * 1024);
        let mut c = b;
        c.extend_from_slice(&[1; 100]);
        let _sent = c.split_to(50);
        UPSTREAM.give(c);
        let fresh = UPSTREAM.take();
        assert_eq!(
            fresh.capacity(),
            16 * 1024,
            "a cut buffer is not handed out"
        );
    }
}
