//! A client connection on the plain listener, as pingora's `Stream` for the
//! requests it serves, holding nothing an idle keep-alive connection does not
//! need: the socket and the client's address. pingora's own stream keeps a
//! write buffer, digests and timestamps for the connection's lifetime (about
//! 20 KiB per idle client, BENCHMARKS.md).
//!
//! Writes are held from a response's first write to its flush
//! ([`WriteBuffer`]).
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::write_buffer::WriteBuffer;

pub struct PlainStream {
    tcp: TcpStream,
    peer: SocketAddr,
    writes: WriteBuffer,
    /// Made on first use: only pingora's pipeline asks for it.
    digest: OnceLock<Arc<SocketDigest>>,
}

impl PlainStream {
    pub fn new(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self {
            tcp,
            peer,
            writes: WriteBuffer::default(),
            digest: OnceLock::new(),
        }
    }
}

impl AsyncRead for PlainStream {
    /// A read into a full buffer waits until the socket is readable: the
    /// front door waits so before it takes a buffer for the next request.
    /// (tokio reports a new registration readable until a read finds
    /// nothing, so this waits only once a read has.)
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return this.tcp.poll_read_ready(cx);
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.poll_write(&mut this.tcp, cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.poll_write_vectored(&mut this.tcp, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writes.poll_flush(&mut this.tcp, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writes.poll_shutdown(&mut this.tcp, cx)
    }
}

impl fmt::Debug for PlainStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainStream")
            .field("peer", &self.peer)
            .finish()
    }
}

#[async_trait]
impl Shutdown for PlainStream {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for PlainStream {
    fn id(&self) -> UniqueIDType {
        self.tcp.as_raw_fd()
    }
}

impl Ssl for PlainStream {}

impl GetTimingDigest for PlainStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![None]
    }
}

impl GetProxyDigest for PlainStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for PlainStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(socket_digest(&self.digest, &self.tcp, self.peer))
    }
}

/// A client socket's digest for pingora's pipeline, made on first use: the
/// descriptor's and the client's address (shared with `TlsClientStream`).
pub(super) fn socket_digest(
    made: &OnceLock<Arc<SocketDigest>>,
    tcp: &TcpStream,
    peer: SocketAddr,
) -> Arc<SocketDigest> {
    let digest = made.get_or_init(|| {
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest
            .peer_addr
            .set(Some(pingora::protocols::l4::socket::SocketAddr::Inet(peer)));
        Arc::new(digest)
    });
    Arc::clone(digest)
}

#[async_trait]
impl Peek for PlainStream {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (PlainStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (PlainStream::new(server, peer), client)
    }

    #[tokio::test]
    async fn writes_leave_at_the_flush_together_and_the_buffer_is_freed() {
        let (mut plain, mut client) = pair().await;
        plain.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        plain.write_all(b"body").await.unwrap();
        assert!(plain.writes.capacity() > 0);
        plain.flush().await.unwrap();
        assert_eq!(plain.writes.capacity(), 0, "no buffer between responses");
        let mut got = [0u8; 23];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\nbody");
    }

    #[tokio::test]
    async fn vectored_writes_keep_their_order_behind_buffered_bytes() {
        let (mut plain, mut client) = pair().await;
        plain.write_all(b"a").await.unwrap();
        let parts = [IoSlice::new(b"b"), IoSlice::new(b"c")];
        let mut written = 0;
        while written < 2 {
            let n = plain.write_vectored(&parts[written..]).await.unwrap();
            written += n;
        }
        let big = vec![b'd'; 40 * 1024];
        plain.write_all(&big).await.unwrap();
        plain.flush().await.unwrap();
        let mut got = vec![0u8; 3 + big.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..3], b"abc");
        assert!(got[3..].iter().all(|&b| b == b'd'));
    }

    #[tokio::test]
    async fn a_read_into_no_room_waits_for_the_client() {
        let (mut plain, mut client) = pair().await;
        // A new registration reads as ready until a read finds nothing;
        // the front door waits this way only after a first request.
        client.write_all(b"GET").await.unwrap();
        let mut got = [0u8; 16];
        assert_eq!(plain.read(&mut got).await.unwrap(), 3);
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), plain.read(&mut [])).await;
        assert!(
            waiting.is_err(),
            "nothing sent: still waiting, got {waiting:?}"
        );
        client.write_all(b"PUT").await.unwrap();
        assert_eq!(plain.read(&mut []).await.unwrap(), 0, "readable");
        assert_eq!(plain.read(&mut got).await.unwrap(), 3);
        assert_eq!(&got[..3], b"PUT");
        let digest = plain.get_socket_digest().unwrap();
        assert_eq!(
            digest.peer_addr().and_then(|a| a.as_inet()).copied(),
            Some(plain.peer)
        );
    }
}
