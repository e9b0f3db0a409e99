//! The HTTP/1 front door: pingora's per-connection request loop, plus what
//! pingora leaves out for clients that never send a complete request header.
//!
//! pingora reads a request header before any `ProxyHttp` hook runs, so its
//! answers to unreadable requests (400, 405 for CONNECT) reach no hook and no
//! metric, it waits for a header with a per-read timeout only (a client
//! trickling a byte a minute is never timed out, and on a reused connection not
//! even an idle one is), and it accepts headers up to 1 MiB. [`Front`] runs the
//! same loop pingora runs for HTTP/1 (`ServerApp for HttpServerApp`), with the
//! stream wrapped in [`Guarded`], which watches the bytes of each request until
//! `Proxy::new_ctx` reports its header parsed:
//! - no byte of a request within `idle` closes the connection quietly;
//! - a header not complete `header_timeout` after its first byte gets 408;
//! - a header over `max_header` bytes gets 431;
//! - a client closing mid-header is counted, not logged as a pingora error;
//! - a response pingora writes before a header was parsed (400, 405) is counted.
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::future::Either;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::data::metrics::Reject;
use crate::data::plane::DataPlane;
use crate::data::policy::screen::Rules;
use crate::data::table::now_ms;
use crate::data::transport::conn_watch::{
    Watch, HEADER, IDLE, NO_REPLY, PARSED, TIMEOUT_REPLY, TOO_LARGE_REPLY, WATCH,
};
use crate::data::transport::fast_h1::{self, FastPath, Outcome};
use crate::data::transport::pingora::Proxy;
use crate::data::transport::plain::PlainStream;
use crate::data::transport::request_end::RequestEnd;
use crate::data::transport::tls_client::TlsClientStream;

/// Limits on reading a request header.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    /// Longest wait for the first byte of a request (a new or a kept-alive connection).
    pub idle: Duration,
    /// Longest time from a request's first byte to the end of its header.
    pub header_timeout: Duration,
    /// Most bytes a request header may take.
    pub max_header: usize,
}

/// Most bytes of pipelined requests read ahead of the one being served;
/// beyond it the client waits (TCP flow control), as with HAProxy's buffer.
const READ_AHEAD: usize = 16 * 1024;

/// How long a 408 or 431 may take to write before the connection is dropped.
const REPLY_GRACE: Duration = Duration::from_secs(1);

const REPLY_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n";
const REPLY_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\nConnection: close\r\n\r\n\
request header too large\n";

/// A pingora `ServerApp` serving HTTP/1 through the ringress proxy.
pub struct Front {
    proxy: Arc<HttpProxy<Proxy>>,
    /// `None` with `--fast-path off`: every request goes to pingora's pipeline.
    fast: Option<FastPath>,
    ingress: Arc<DataPlane>,
    limits: HeaderLimits,
}

impl Front {
    pub fn new(
        proxy: HttpProxy<Proxy>,
        ingress: Arc<DataPlane>,
        limits: HeaderLimits,
        fast_path: bool,
        rules: Rules,
    ) -> Self {
        Self {
            proxy: Arc::new(proxy),
            fast: fast_path.then(|| FastPath::new(Arc::clone(&ingress), rules)),
            ingress,
            limits,
        }
    }

    /// A connection from the plain listener ([`crate::data::transport::listener`]).
    /// Plain functions returning the loop's future rather than `async fn`s:
    /// each async layer would keep its own copy of the arguments for the
    /// connection's lifetime.
    pub fn serve_plain<'a>(
        &'a self,
        tcp: TcpStream,
        peer: SocketAddr,
        shutdown: &'a ShutdownWatch,
    ) -> impl Future<Output = ()> + Send + 'a {
        let stream: Stream = Box::new(PlainStream::new(tcp, peer));
        let conn = Box::new(fast_h1::Connection::new(Some(peer.ip()), false));
        self.serve_http1(stream, conn, shutdown)
    }

    /// HTTP/1 on `stream` (HTTP/1 or h2c with prior knowledge on the plain listener).
    fn serve_http1<'a>(
        &'a self,
        stream: Stream,
        conn: Box<fast_h1::Connection>,
        shutdown: &'a ShutdownWatch,
    ) -> impl Future<Output = ()> + Send + 'a {
        let watch = Arc::new(Watch::default());
        let stream: Stream = Box::new(Guarded {
            inner: stream,
            watch: Arc::clone(&watch),
            max_header: self.limits.max_header,
            header_bytes: 0,
            method: [0; 8],
            reply_sent: 0,
            request_end: RequestEnd::default(),
            ahead: BytesMut::new(),
            client_eof: false,
            pipelined: false,
        });
        WATCH.scope(
            Arc::clone(&watch),
            self.serve(stream, conn, watch, shutdown),
        )
    }

    async fn serve(
        &self,
        mut stream: Stream,
        mut conn: Box<fast_h1::Connection>,
        watch: Arc<Watch>,
        shutdown: &ShutdownWatch,
    ) {
        let mut timer = Box::pin(tokio::time::sleep(Duration::ZERO));
        loop {
            if conn.wait_unbuffered
                && !self
                    .idle(&mut stream, &mut conn, &watch, timer.as_mut())
                    .await
            {
                return;
            }
            // A request's state is boxed while it is served: inline, it would
            // size the connection's future, idle or not (about 0.5 KiB).
            let request = self.one_request(stream, &mut conn, &watch, timer.as_mut(), shutdown);
            let Some(reused) = Box::pin(request).await else {
                return;
            };
            conn.kept_alive();
            stream = reused;
        }
    }

    /// Waits for a kept-alive connection's next request to begin, holding no
    /// buffer: false once `idle` passed without a byte (closed quietly).
    async fn idle(
        &self,
        stream: &mut Stream,
        conn: &mut fast_h1::Connection,
        watch: &Watch,
        mut timer: Pin<&mut Sleep>,
    ) -> bool {
        watch.phase.store(IDLE, Relaxed);
        conn.release_head();
        let deadline = Instant::now() + self.limits.idle;
        arm_by(timer.as_mut(), deadline);
        let mut readable = std::pin::pin!(stream.read(&mut []));
        poll_fn(|cx| {
            if readable.as_mut().poll(cx).is_ready() {
                // Bytes, or an end the next read reports.
                return Poll::Ready(true);
            }
            poll_until(timer.as_mut(), deadline, cx).map(|()| false)
        })
        .await
    }

    /// One request: the fast path's if it takes it, else pingora's pipeline
    /// (`process_new_http`) reading the same bytes again.
    async fn next_request(
        &self,
        mut stream: Stream,
        conn: &mut fast_h1::Connection,
        watch: &Watch,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let shutting_down = *shutdown.borrow();
        if let Some(fast) = &self.fast {
            let parsed = || watch.phase.store(PARSED, Relaxed);
            match fast.serve(&mut stream, conn, parsed, shutting_down).await? {
                Outcome::KeepAlive => return Some(stream),
                Outcome::Close => return None,
                Outcome::Fallback => {}
            }
        } else {
            // pingora's session and its request future are large: they exist
            // once a request begins, not while the connection idles.
            conn.take_head();
            loop {
                match stream.read_buf(&mut conn.head).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) if could_be_h2c(&conn.head) => continue,
                    Ok(_) => break,
                }
            }
        }
        if conn.head.starts_with(H2C_PREFACE) {
            // HTTP/2 with prior knowledge (RFC 9113 §3.3) on the plain
            // listener: from here the connection is pingora's HTTP/2 server's,
            // each stream a request through the same `ProxyHttp`.
            watch.phase.store(PARSED, Relaxed);
            watch.h2.store(true, Relaxed);
            watch.set_replay(conn.head.split().freeze());
            self.proxy.process_new(stream, shutdown).await;
            return None;
        }
        watch.set_replay(conn.head.split().freeze());
        self.pingora_request(stream, shutting_down, shutdown).await
    }

    /// One request through pingora's pipeline, boxed on its own: its future is
    /// large, and inline it would size the box every fast-path request takes.
    fn pingora_request<'a>(
        &'a self,
        stream: Stream,
        shutting_down: bool,
        shutdown: &'a ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<Stream>> + Send + 'a>> {
        Box::pin(async move {
            let mut session = ServerSession::new_http1(stream);
            // As pingora does: no keep-alive once shutting down. The per-read
            // idle timeout pingora applies is a backstop for `one_request`'s timer.
            if shutting_down {
                session.set_keepalive(None);
            } else {
                session.set_keepalive(Some(self.limits.idle.as_secs().max(1)));
            }
            let reused = self.proxy.process_new_http(session, shutdown).await?;
            Some(reused.consume().0)
        })
    }

    async fn one_request(
        &self,
        stream: Stream,
        conn: &mut fast_h1::Connection,
        watch: &Watch,
        mut timer: Pin<&mut Sleep>,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        watch.phase.store(IDLE, Relaxed);
        watch.reply.store(NO_REPLY, Relaxed);
        watch.answered_early.store(false, Relaxed);
        watch.connect.store(false, Relaxed);
        watch.reset_inactivity();
        let mut request = std::pin::pin!(self.next_request(stream, conn, watch, shutdown));
        // The timer is re-armed lazily: a keep-alive request only moves the
        // deadline, and a timer that fires early (armed for an earlier
        // request) is pushed to it. That keeps the timer wheel off the
        // per-request path.
        let mut deadline = Instant::now() + self.limits.idle;
        arm_by(timer.as_mut(), deadline);
        let mut header_timer = false;
        let outcome = poll_fn(|cx| loop {
            if let Poll::Ready(reused) = request.as_mut().poll(cx) {
                return Poll::Ready(Ok(reused));
            }
            if let Some(reason) = watch.ended() {
                return Poll::Ready(Err(Some(reason)));
            }
            match watch.phase.load(Relaxed) {
                // An upgrade request or its tunnel: see `watch_inactivity`.
                PARSED if !watch.inactive_expired.load(Relaxed) => {
                    let Some(at) = watch.inactive_deadline_ms() else {
                        return Poll::Pending;
                    };
                    deadline = Instant::now() + Duration::from_millis(at.saturating_sub(now_ms()));
                    arm_by(timer.as_mut(), deadline);
                }
                HEADER if !header_timer => {
                    header_timer = true;
                    deadline = Instant::now() + self.limits.header_timeout;
                    timer.as_mut().reset(deadline);
                }
                _ => {}
            }
            if poll_until(timer.as_mut(), deadline, cx).is_pending() {
                return Poll::Pending;
            }
            match watch.phase.load(Relaxed) {
                // Not a byte of a request: an idle connection, closed quietly.
                IDLE => return Poll::Ready(Err(None)),
                HEADER if watch.reply.load(Relaxed) == NO_REPLY => {
                    // The wrapper writes the 408 when pingora next reads.
                    watch.reply.store(TIMEOUT_REPLY, Relaxed);
                    deadline = Instant::now() + REPLY_GRACE;
                    timer.as_mut().reset(deadline);
                }
                // The client does not even take the reply.
                HEADER => return Poll::Ready(Err(Some(watch.reply_reason()))),
                PARSED if !watch.inactive_expired.swap(true, Relaxed) => {
                    // Reads from the client fail from now on: pingora ends
                    // the request its own way (504 before a response head,
                    // the tunnel closed after one) and records it.
                    deadline = Instant::now() + REPLY_GRACE;
                    timer.as_mut().reset(deadline);
                }
                // Stuck writing (nobody reads): dropped.
                PARSED => return Poll::Ready(Err(None)),
                _ => return Poll::Pending,
            }
        })
        .await;
        let rejected = &self.ingress.metrics.rejected;
        match outcome {
            Ok(Some(reused)) => Some(reused),
            Ok(None) => {
                // No header parsed, yet pingora answered: its parser refused
                // the request (400) or its method (CONNECT, 405). Told apart by
                // the request, not by reading pingora's answer.
                if watch.phase.load(Relaxed) != PARSED {
                    let early = watch.answered_early.load(Relaxed);
                    match (early, watch.connect.load(Relaxed)) {
                        (true, true) => rejected.inc(Reject::MethodNotAllowed),
                        (true, false) => rejected.inc(Reject::BadRequest),
                        (false, _) if watch.phase.load(Relaxed) == HEADER => {
                            rejected.inc(Reject::Incomplete)
                        }
                        _ => {}
                    }
                }
                None
            }
            // Dropping the request future drops the session and closes the connection.
            Err(reason) => {
                if let Some(reason) = reason {
                    rejected.inc(reason);
                }
                None
            }
        }
    }
}

/// Makes the connection's timer fire no later than `deadline`. It is moved
/// only earlier here: a timer armed for a later deadline would otherwise be
/// re-filed in the wheel on every keep-alive request.
fn arm_by(mut timer: Pin<&mut Sleep>, deadline: Instant) {
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
}

/// Ready once `deadline` passed. A timer that fires early (armed for an
/// earlier request's deadline) is pushed to `deadline` and waited on again.
fn poll_until(mut timer: Pin<&mut Sleep>, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        timer.as_mut().reset(deadline);
    }
}

/// The start of HTTP/2's connection preface, as far as an HTTP/1 head reads it
/// (RFC 9113 §3.4): the rest (`SM\r\n\r\n`) follows as if a next request.
const H2C_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";

/// The bytes read so far are a strict start of [`H2C_PREFACE`]: wait for more.
fn could_be_h2c(head: &[u8]) -> bool {
    head.len() < H2C_PREFACE.len() && H2C_PREFACE.starts_with(head)
}

impl Front {
    /// A connection from the TLS listener, handshake done: HTTP/2 when ALPN
    /// chose it (pingora's HTTP/2 server runs each stream through the same
    /// `ProxyHttp`, so the same policy), else HTTP/1 as on the plain listener.
    pub fn serve_tls<'a>(
        &'a self,
        stream: TlsClientStream,
        shutdown: &'a ShutdownWatch,
    ) -> impl Future<Output = ()> + Send + 'a {
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            let h2 = self.proxy.process_new(Box::new(stream), shutdown);
            return Either::Left(async move {
                h2.await;
            });
        }
        let conn = Box::new(fast_h1::Connection::new(Some(stream.peer().ip()), true));
        Either::Right(self.serve_http1(Box::new(stream), conn, shutdown))
    }

    /// Longest wait for a TLS handshake: as for a request header.
    pub fn handshake_timeout(&self) -> Duration {
        self.limits.header_timeout
    }

    /// Counts a TLS handshake that failed (`timed_out`: did not end in time).
    pub fn handshake_failed(&self, timed_out: bool) {
        self.ingress.metrics.tls_handshake_failures[usize::from(timed_out)].inc();
    }

    /// Once, when the listeners stop.
    pub async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// The client connection, watched while a request header is being read.
struct Guarded {
    inner: Stream,
    watch: Arc<Watch>,
    max_header: usize,
    /// Bytes read for the current request header.
    header_bytes: usize,
    /// The first bytes of the current request (its method).
    method: [u8; 8],
    /// Bytes of a 408/431 reply written so far.
    reply_sent: usize,
    /// Where the current request ends: later bytes wait in `ahead`.
    request_end: RequestEnd,
    /// Pipelined requests read before their turn, at most [`READ_AHEAD`].
    ahead: BytesMut,
    /// The client closed its side (what `ahead` holds is still served).
    client_eof: bool,
    /// The current request was read ahead, behind another.
    pipelined: bool,
}

impl Guarded {
    /// Writes the reply the watch asks for, then ends the connection. Returns
    /// `Pending` throughout: the request loop sees the end and drops the request.
    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let reply = match self.watch.reply.load(Relaxed) {
            TOO_LARGE_REPLY => REPLY_431,
            _ => REPLY_408,
        };
        while self.reply_sent < reply.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &reply[self.reply_sent..]) {
                Poll::Ready(Ok(n)) if n > 0 => self.reply_sent += n,
                Poll::Ready(_) => {
                    self.watch.end(self.watch.reply_reason());
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        if Pin::new(&mut self.inner).poll_flush(cx).is_pending() {
            return Poll::Pending;
        }
        self.watch.end(self.watch.reply_reason());
        Poll::Pending
    }
}

/// Where a request header read so far ends, if `bytes` (the latest read) holds its end.
fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 2)
        .into_iter()
        .chain(bytes.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3))
        .min()
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            // The front door's wait for a request's first byte, holding no
            // buffer meanwhile (`PlainStream`, `TlsClientStream`).
            let idle = this.watch.phase.load(Relaxed) == IDLE;
            let replaying = this.watch.replaying.load(Relaxed) || this.watch.h2.load(Relaxed);
            if idle && !replaying && this.ahead.is_empty() && !this.client_eof {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            return Poll::Ready(Ok(()));
        }
        // Already counted against the header limits when the fast path read them.
        if this.watch.replaying.load(Relaxed) {
            this.watch.read_replay(buf);
            return Poll::Ready(Ok(()));
        }
        if this.watch.h2.load(Relaxed) {
            // h2c: the bytes go to pingora's HTTP/2 server as they come.
            if this.ahead.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let n = this.ahead.len().min(buf.remaining());
            buf.put_slice(&this.ahead.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let phase = this.watch.phase.load(Relaxed);
        if phase == PARSED && this.watch.inactive_expired.load(Relaxed) {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        if phase != PARSED {
            if this.watch.ended.load(Relaxed) != 0 {
                return Poll::Pending;
            }
            if this.watch.reply.load(Relaxed) != NO_REPLY {
                return this.poll_reply(cx);
            }
        }
        if phase == IDLE {
            this.header_bytes = 0;
            this.method = [0; 8];
            this.reply_sent = 0;
            this.request_end.next_request();
            this.pipelined = !this.ahead.is_empty();
        }
        let before = buf.filled().len();
        if !this.ahead.is_empty() && !this.request_end.done() {
            // A pipelined request read earlier: its bytes first.
            let n = this.ahead.len().min(buf.remaining());
            let n = this.request_end.take(&this.ahead[..n]);
            buf.put_slice(&this.ahead.split_to(n));
            this.publish_line_verdict();
        } else if this.request_end.done() || (this.ahead.is_empty() && this.client_eof) {
            return this.read_ahead(cx);
        } else {
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    let read = &buf.filled()[before..];
                    let n = this.request_end.take(read);
                    this.publish_line_verdict();
                    if n < read.len() {
                        // The next request's bytes: held until it begins.
                        this.ahead.extend_from_slice(&read[n..]);
                        buf.set_filled(before + n);
                        if n == 0 {
                            return this.read_ahead(cx);
                        }
                    }
                }
                Poll::Ready(Err(e)) => {
                    if phase == HEADER {
                        this.watch.end(Reject::Incomplete);
                        return Poll::Pending;
                    }
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let read = &buf.filled()[before..];
        if read.is_empty() {
            if phase == HEADER {
                this.watch.end(Reject::Incomplete);
                return Poll::Pending;
            }
            return Poll::Ready(Ok(()));
        }
        if phase == PARSED {
            this.watch.active();
        } else {
            this.watch.phase.store(HEADER, Relaxed);
            if this.header_bytes < this.method.len() {
                let from = this.header_bytes;
                let n = read.len().min(this.method.len() - from);
                this.method[from..from + n].copy_from_slice(&read[..n]);
                let connect = this.method.starts_with(b"CONNECT ");
                this.watch.connect.store(connect, Relaxed);
            }
            let total = this.header_bytes + read.len();
            // Body bytes may share the read that ends the header: look
            // for its end only when the read goes over the limit.
            let header = match total > this.max_header {
                true => header_end(read).map_or(total, |end| this.header_bytes + end),
                false => total,
            };
            this.header_bytes = total;
            if header > this.max_header {
                buf.set_filled(before);
                this.watch.reply.store(TOO_LARGE_REPLY, Relaxed);
                return this.poll_reply(cx);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Guarded {
    fn publish_line_verdict(&self) {
        let bad = !self.request_end.line_ok();
        if bad != self.watch.bad_request_line.load(Relaxed) {
            self.watch.bad_request_line.store(bad, Relaxed);
        }
    }

    /// The current request is complete, or the client closed: reads the client's next bytes into
    /// `ahead`, up to [`READ_AHEAD`], and keeps the current request from
    /// seeing them. A close with nothing held is reported as one.
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.client_eof {
                // A client that pipelined, then closed its side, still gets
                // every answer; any other close is news for the request.
                return match self.ahead.is_empty() && !self.pipelined {
                    true => Poll::Ready(Ok(())),
                    false => Poll::Pending,
                };
            }
            if self.ahead.len() >= READ_AHEAD {
                // Woken by the request loop when the next request begins.
                return Poll::Pending;
            }
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => self.client_eof = true,
                Poll::Ready(Ok(())) => self.ahead.extend_from_slice(read.filled()),
                Poll::Ready(Err(e)) if self.ahead.is_empty() => return Poll::Ready(Err(e)),
                Poll::Ready(Err(_)) => self.client_eof = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Only pingora's own error responses are written before a header is parsed.
        if this.watch.phase.load(Relaxed) != PARSED {
            this.watch.answered_early.store(true, Relaxed);
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.watch.active();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.watch.active();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        // h2c with prior knowledge reads to pingora as if ALPN had chosen h2.
        match self.watch.h2.load(Relaxed) {
            true => Some(ALPN::H2),
            false => self.inner.selected_alpn_proto(),
        }
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::header_end;

    #[test]
    fn finds_the_end_of_a_header_in_a_read() {
        assert_eq!(
            header_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"),
            Some(27)
        );
        assert_eq!(header_end(b"GET / HTTP/1.1\nHost: a\n\nbody"), Some(24));
        assert_eq!(header_end(b"X-Long: aaaa"), None);
        assert_eq!(header_end(b"\n\r\n"), Some(3));
    }
}
