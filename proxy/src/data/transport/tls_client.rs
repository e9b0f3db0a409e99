//! A client connection on the TLS listener, as pingora's `Stream` for the
//! requests it serves (HTTP/1, or HTTP/2 by ALPN), holding what an idle
//! keep-alive connection needs and no more: the TLS session (rustls) and the
//! client's address. Writes are held from a response's first write to its
//! flush ([`WriteBuffer`]); the wait for the next request reads its first
//! bytes and keeps them, since a TLS stream cannot wait on the socket (a
//! record read earlier may hold the next request already).
use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::plain::socket_digest;
use super::write_buffer::WriteBuffer;

/// Bytes read to learn that a request began: the method's first few.
const FIRST_READ: usize = 8;

pub struct TlsClientStream {
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    writes: WriteBuffer,
    /// Bytes read by a wait for the next request, served before the stream's.
    first: BytesMut,
    /// Made on first use (the pipeline's digest, `X-Forwarded-Proto`).
    ssl: OnceLock<Arc<SslDigest>>,
    socket: OnceLock<Arc<SocketDigest>>,
}

impl TlsClientStream {
    pub fn new(tls: TlsStream<TcpStream>, peer: SocketAddr) -> Self {
        Self {
            tls,
            peer,
            writes: WriteBuffer::default(),
            first: BytesMut::new(),
            ssl: OnceLock::new(),
            socket: OnceLock::new(),
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl AsyncRead for TlsClientStream {
    /// A read into a full buffer waits until the client sent a byte, as
    /// `PlainStream`'s does, and keeps the bytes it read for the next read.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            if this.first.is_empty() {
                let mut bytes = [0u8; FIRST_READ];
                let mut first = ReadBuf::new(&mut bytes);
                ready!(Pin::new(&mut this.tls).poll_read(cx, &mut first))?;
                // Nothing read: the end, which the next read reports again.
                this.first.extend_from_slice(first.filled());
            }
            return Poll::Ready(Ok(()));
        }
        if this.first.is_empty() {
            return Pin::new(&mut this.tls).poll_read(cx, buf);
        }
        let n = this.first.len().min(buf.remaining());
        buf.put_slice(&this.first[..n]);
        this.first.advance(n);
        if this.first.is_empty() {
            this.first = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TlsClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.poll_write(&mut this.tls, cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.poll_write_vectored(&mut this.tls, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writes.poll_flush(&mut this.tls, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.writes.poll_shutdown(&mut this.tls, cx)
    }
}

impl fmt::Debug for TlsClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientStream")
            .field("peer", &self.peer)
            .finish()
    }
}

#[async_trait]
impl Shutdown for TlsClientStream {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for TlsClientStream {
    fn id(&self) -> UniqueIDType {
        self.tls.get_ref().0.as_raw_fd()
    }
}

impl Ssl for TlsClientStream {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        let digest = self.ssl.get_or_init(|| {
            let session = self.tls.get_ref().1;
            let cipher = session
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or_default();
            let version = session
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            Arc::new(SslDigest::new(cipher, version, None, None, Vec::new()))
        });
        Some(Arc::clone(digest))
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        match self.tls.get_ref().1.alpn_protocol()? {
            b"h2" => Some(ALPN::H2),
            b"http/1.1" => Some(ALPN::H1),
            _ => None,
        }
    }
}

impl GetTimingDigest for TlsClientStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![None]
    }
}

impl GetProxyDigest for TlsClientStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for TlsClientStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(socket_digest(&self.socket, self.tls.get_ref().0, self.peer))
    }
}

#[async_trait]
impl Peek for TlsClientStream {}
