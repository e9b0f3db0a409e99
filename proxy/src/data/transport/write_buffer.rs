//! Writes held from a response's first write to its flush, then sent
//! together: pingora's pipeline writes a head and then its body and expects
//! them to leave as one. The buffer exists only between the first write and
//! the flush, so an idle keep-alive connection holds none. A vectored write
//! with nothing held goes straight through (the fast path writes a head and
//! its body that way, one `writev`).
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// Writes held beyond this go out before more are taken.
const LIMIT: usize = super::DOWNSTREAM_WRITE_BUFFER;

#[derive(Default)]
pub struct WriteBuffer {
    /// Bytes written since the last flush; empty and unallocated between responses.
    pending: Vec<u8>,
    /// How much of `pending` is already sent.
    sent: usize,
}

impl WriteBuffer {
    /// Bytes of buffer held (0 between responses).
    pub fn capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Sends what is held; frees the buffer once it is all out.
    fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut *out).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    pub fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.len() + data.len() > LIMIT && !self.pending.is_empty() {
            ready!(self.poll_drain(out, cx))?;
        }
        if data.len() >= LIMIT {
            return Pin::new(out).poll_write(cx, data);
        }
        if self.pending.capacity() == 0 {
            self.pending.reserve(LIMIT.max(data.len()));
        }
        self.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    pub fn poll_write_vectored<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_empty() {
            return Pin::new(out).poll_write_vectored(cx, bufs);
        }
        // Behind held bytes: in order, through the buffer.
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        self.poll_write(out, cx, first)
    }

    pub fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(out, cx))?;
        Pin::new(out).poll_flush(cx)
    }

    pub fn poll_shutdown<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(out, cx))?;
        Pin::new(out).poll_shutdown(cx)
    }
}
