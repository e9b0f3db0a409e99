//! The fast HTTP/1 transport: a GET or HEAD without a body served on the
//! connection's own task. The request head is forwarded as it arrived, minus
//! and plus the fields the policy core says (`policy::headers`); the response
//! passes through with only its framing followed. pingora's proxy pipeline
//! costs ~60k instructions per request in channels, tasks and header maps;
//! this costs a fraction (BENCHMARKS.md).
//!
//! Every decision is the policy core's (route, key, admission, candidates,
//! retries, health, response checks, error answers, metrics, access log):
//! this module only moves bytes. What it cannot carry goes to pingora's
//! pipeline with the bytes already read replayed ([`Outcome::Fallback`]):
//! bodies, upgrades, `Expect`, HTTP/1.0, unusual or malformed requests, paths
//! that need normalising, and routes with TLS endpoints.
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pingora::protocols::Stream;
use ringress_routes::{RequestParts, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::data::plane::{ActiveRequest, DataPlane};
use crate::data::policy::attempts::Attempts;
use crate::data::policy::error::{Answer, ErrorKind, ProxyError};
use crate::data::policy::headers::{self, ConnectionNames, Forwarded, IpText};
use crate::data::policy::record::{self, Finished};
use crate::data::policy::response::{self, BodyFraming, MAX_INTERIM_RESPONSES};
use crate::data::policy::routing::{self, Permits};
use crate::data::policy::screen::{
    ambiguous_path, byte_table, connection_ok, host_ok, normalize_path, Rules, REG_NAME,
};
use crate::data::table::RouteRuntime;
use crate::data::transport::buffers;
use crate::data::transport::h1::ChunkedEnd;
use crate::data::transport::head_lines::LineCopy;
use crate::data::transport::lazy_timer::LazyTimer;
use crate::data::transport::upstream_pool;
use crate::data::transport::DOWNSTREAM_WRITE_BUFFER;

/// Request headers the fast path reads; a request with more goes to pingora.
const MAX_REQUEST_HEADERS: usize = 32;
/// Response headers the fast path forwards (pingora's limit); a response with more is a 502.
const MAX_RESPONSE_HEADERS: usize = 256;
/// Largest response head accepted from an endpoint.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Read size for response bodies.
const READ_CHUNK: usize = 16 * 1024;
/// A request head buffer grown past this is not kept between requests.
const LARGE_HEAD: usize = 8 * 1024;

/// What became of one request on the connection.
pub enum Outcome {
    /// Served; the connection takes another request.
    KeepAlive,
    /// Served (or the client went away); the connection closes.
    Close,
    /// Not for the fast path: pingora serves it from the bytes in the buffer.
    Fallback,
}

/// Buffers that live as long as the client connection.
#[derive(Default)]
pub struct Connection {
    /// The request head as read from the client (and anything after it).
    pub head: BytesMut,
    /// The head sent upstream, then the head and first body bytes sent back.
    out: Vec<u8>,
    client: Option<IpAddr>,
    /// `client` as text, written once per connection rather than per request.
    client_text: Vec<u8>,
    /// Bounds each wait on the endpoint.
    timer: LazyTimer,
    /// `X-Forwarded-Proto`: `https` on the TLS listener.
    proto: &'static str,
    /// The stream waits for the client's next bytes with a read into no
    /// room (`PlainStream`, `TlsClientStream`): idle, the connection holds
    /// no head buffer. Set once a request was served.
    pub wait_unbuffered: bool,
}

impl Connection {
    /// A request was served and the connection stays open.
    pub fn kept_alive(&mut self) {
        self.wait_unbuffered = true;
    }

    /// The connection idles: its head buffer goes back to the thread's pool.
    pub fn release_head(&mut self) {
        buffers::give_head(std::mem::take(&mut self.head));
    }

    /// An empty head buffer for the next request, from the thread's pool
    /// unless the connection still holds one.
    pub fn take_head(&mut self) {
        self.head.clear();
        if self.head.capacity() == 0 {
            self.head = buffers::take_head();
        }
    }

    /// `client` goes into `X-Forwarded-For` and the access log.
    /// `tls`: the connection came through the TLS listener.
    pub fn new(client: Option<IpAddr>, tls: bool) -> Self {
        let client_text = client.map_or_else(Vec::new, |ip| IpText::new(ip).as_bytes().to_vec());
        Self {
            client,
            client_text,
            proto: if tls { "https" } else { "http" },
            ..Self::default()
        }
    }
}

pub struct FastPath {
    plane: Arc<DataPlane>,
    strict_paths: bool,
}

/// A request head the fast path takes, borrowed from the client's bytes.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    target: &'a str,
    host: &'a str,
    headers: &'a [httparse::Header<'a>],
    client: Option<IpAddr>,
    client_text: &'a [u8],
    client_close: bool,
    /// The bytes the head was parsed from, for copying header lines whole.
    raw: &'a [u8],
}

impl RequestParts for Request<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn host(&self) -> Option<&str> {
        Some(self.host)
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn header(&self, lowercase_name: &str) -> Option<&str> {
        // As `http::HeaderValue::to_str`: visible ASCII only.
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(lowercase_name))
            .filter(|h| {
                h.value
                    .iter()
                    .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
            })
            .and_then(|h| std::str::from_utf8(h.value).ok())
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        self.client
    }
}

/// Why an exchange with an endpoint failed.
#[cfg_attr(test, derive(Debug))]
enum UpstreamError {
    /// A reused connection broke before a whole response head (most often
    /// the endpoint closed it while idle). Safe to send again on a new
    /// connection (GET and HEAD only come here), as pingora does.
    Stale,
    Timeout,
    /// The connection broke or the endpoint's answer is not valid HTTP/1.1.
    Broken,
    /// A head the policy core refuses before the final one.
    Refused,
    /// Writing an interim response to the client failed.
    ClientGone,
}

/// What the endpoint's response head decided.
struct ClientHead {
    status: u16,
    framing: BodyFraming,
    upstream_close: bool,
    /// The client connection stays open after this response.
    keep_client: bool,
}

/// What is left of a response body to forward.
enum BodyLeft {
    Done,
    Length(u64),
    Chunked(ChunkedEnd),
    UntilClose,
}

impl FastPath {
    pub fn new(plane: Arc<DataPlane>, rules: Rules) -> Self {
        Self {
            plane,
            strict_paths: rules.strict_paths,
        }
    }

    /// Reads the next request head and serves it if it is the fast path's.
    /// `parsed` is called once the request is the fast path's (the front door's
    /// header timer stops there). Returns `None` when the client closed idle.
    pub async fn serve(
        &self,
        stream: &mut Stream,
        conn: &mut Connection,
        parsed: impl FnOnce(),
        shutting_down: bool,
    ) -> Option<Outcome> {
        if conn.head.capacity() > LARGE_HEAD {
            // A large head is not kept for the connection's idle time.
            conn.head = BytesMut::new();
        }
        conn.take_head();
        loop {
            let from = conn.head.len();
            if conn.head.capacity() - from < 1024 {
                // Most request heads fit the first kilobyte; an idle
                // connection holds no more.
                conn.head.reserve(if from == 0 { 1024 } else { 4096 });
            }
            match stream.read_buf(&mut conn.head).await {
                Ok(0) | Err(_) if conn.head.is_empty() => return None,
                Ok(0) | Err(_) => return Some(Outcome::Fallback),
                Ok(_) => {}
            }
            if head_complete(&conn.head, from) {
                break;
            }
        }
        // Inline: the front door boxes the whole request while it is served.
        self.serve_head(stream, conn, parsed, shutting_down).await
    }

    /// Serves the head `conn.head` holds, if it is the fast path's.
    async fn serve_head(
        &self,
        stream: &mut Stream,
        conn: &mut Connection,
        parsed: impl FnOnce(),
        shutting_down: bool,
    ) -> Option<Outcome> {
        let start = Instant::now();
        // Uninitialised: httparse writes only the headers it finds.
        let mut headers = [const { MaybeUninit::uninit() }; MAX_REQUEST_HEADERS];
        let Some(req) = parse_request(
            &conn.head,
            &mut headers,
            conn.client,
            &conn.client_text,
            self.strict_paths,
        ) else {
            return Some(Outcome::Fallback);
        };
        let runtime = self.plane.runtime();
        let routed = routing::route(&runtime, &req);
        if let Ok(routed) = routed {
            if runtime.routes[routed.route].not_plain_http1 {
                return Some(Outcome::Fallback);
            }
        }
        parsed();
        if conn.out.capacity() == 0 {
            conn.out = buffers::take_out();
        }
        let mut exchange = Exchange {
            plane: &self.plane,
            rr: None,
            req: &req,
            start,
            _active: self.plane.track_request(),
            attempts: Attempts::default(),
            status: 0,
            shutting_down,
            scheme: conn.proto,
        };
        let keep = match routed {
            Ok(routed) => {
                let rr = &runtime.routes[routed.route];
                exchange.rr = Some(rr);
                let permits = match routing::queued(&self.plane, rr) {
                    true => routing::admit(&self.plane, rr).await,
                    false => Ok(Permits::default()),
                };
                match permits {
                    Ok(_permits) => {
                        write_upstream_head(&mut conn.out, &req, rr, conn.proto);
                        // From the pool when the endpoint answers (`send`).
                        let mut upstream = BytesMut::new();
                        let (out, timer) = (&mut conn.out, &mut conn.timer);
                        let keep = exchange
                            .run(stream, out, &mut upstream, timer, routed.key_hash)
                            .await;
                        buffers::give_upstream(upstream);
                        keep
                    }
                    Err(error) => exchange.answer(stream, &mut conn.out, error, false).await,
                }
            }
            Err(unrouted) => {
                exchange.rr = unrouted.route.map(|i| &runtime.routes[i]);
                exchange
                    .answer(stream, &mut conn.out, unrouted.error, false)
                    .await
            }
        };
        exchange.finish();
        buffers::give_out(std::mem::take(&mut conn.out));
        Some(match keep {
            true => Outcome::KeepAlive,
            false => Outcome::Close,
        })
    }
}

/// Whether the bytes read so far hold a whole head; `from` is where the latest read began.
/// Stops at the first blank line: a response's body often shares its head's read.
fn head_complete(buf: &[u8], from: usize) -> bool {
    head_end(buf, from).is_some()
}

/// Where the head in `buf` ends (just past its blank line), looking from a
/// little before `from`, where the latest read began.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    memchr::memchr_iter(b'\n', &buf[start..]).find_map(|at| {
        let at = start + at;
        match buf.get(at + 1) {
            Some(b'\n') => Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => Some(at + 3),
            _ => None,
        }
    })
}

/// The request, if it is one the fast path serves exactly as pingora's pipeline would.
fn parse_request<'a>(
    bytes: &'a [u8],
    headers: &'a mut [MaybeUninit<httparse::Header<'a>>],
    client: Option<IpAddr>,
    client_text: &'a [u8],
    strict_paths: bool,
) -> Option<Request<'a>> {
    let mut parsed = httparse::Request::new(&mut []);
    // Pipelined requests and any body bytes go to pingora.
    match parsed.parse_with_uninit_headers(bytes, headers) {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        _ => return None,
    }
    if parsed.version != Some(1) {
        return None;
    }
    let method = parsed.method?;
    if method != "GET" && method != "HEAD" {
        return None;
    }
    let target = parsed.path?;
    // Origin form, in characters `http::Uri` takes as they are.
    if !target.starts_with('/') || !target.bytes().all(plain_uri_byte) {
        return None;
    }
    let (path, query) = match target.bytes().position(|b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    // Paths to normalise, and those `--strict-paths` refuses, are pingora's.
    if !matches!(normalize_path(path), Ok(None)) || (strict_paths && ambiguous_path(path)) {
        return None;
    }
    let headers: &'a [httparse::Header<'a>] = parsed.headers;
    let mut host = None;
    let mut client_close = false;
    let mut connection_seen = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            // Hosts the screen would refuse are pingora's, which refuses them.
            if host.is_some()
                || h.value.is_empty()
                || !h.value.iter().all(|&b| plain_host_byte(b))
                || !host_ok(h.value)
            {
                return None;
            }
            host = std::str::from_utf8(h.value).ok();
        } else if name.eq_ignore_ascii_case("connection") {
            // Options the screen refuses are pingora's, which refuses them
            // (as is a second Connection line: the screen counts them all).
            if connection_seen || !connection_ok([h.value]) {
                return None;
            }
            connection_seen = true;
            client_close |= ConnectionNames::parse([h.value]).close;
        } else if [
            "content-length",
            "transfer-encoding",
            "upgrade",
            "expect",
            "http2-settings",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        {
            return None;
        }
    }
    Some(Request {
        method,
        path,
        query,
        target,
        host: host?,
        headers,
        client,
        client_text,
        client_close,
        raw: bytes,
    })
}

fn plain_uri_byte(b: u8) -> bool {
    PLAIN_URI[b as usize]
}

fn plain_host_byte(b: u8) -> bool {
    PLAIN_HOST[b as usize]
}

/// Target bytes `http::Uri` keeps as they are. A table: this runs over
/// every request.
const PLAIN_URI: [bool; 256] =
    byte_table!(|b| REG_NAME[b as usize] || matches!(b, b':' | b'@' | b'/' | b'?'));

/// Host bytes the fast path takes as they are.
const PLAIN_HOST: [bool; 256] = byte_table!(
    |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
);

/// The request head for the endpoint: the client's request line and headers
/// as they arrived, without hop-by-hop headers, with `X-Forwarded-*` and the
/// route's request headers.
fn write_upstream_head(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    rr: &RouteRuntime,
    proto: &'static str,
) {
    let route_headers = &rr.route.request_headers;
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let connection = connection_names(req.headers);
    let mut prior_for: Option<&[u8]> = None;
    let mut lines = LineCopy::request(req.raw, out);
    for h in req.headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            prior_for.get_or_insert(h.value);
        }
        if !headers::drop_upstream(name, &connection, route_headers, false) {
            lines.copy(name.as_bytes(), h.value);
        }
    }
    let forwarded = Forwarded {
        prior_for,
        client: req.client_text,
        host: Some(req.host.as_bytes()),
        proto,
    };
    forwarded.each(route_headers, |name, value| {
        lines.put(name.as_bytes(), value)
    });
    for (name, value) in route_headers {
        lines.put(name.as_bytes(), value.as_bytes());
    }
    lines.finish();
    out.extend_from_slice(b"\r\n");
}

/// One request's trip to the endpoints, with what its metrics and log need.
struct Exchange<'a> {
    plane: &'a DataPlane,
    /// The route matched, if any.
    rr: Option<&'a RouteRuntime>,
    req: &'a Request<'a>,
    start: Instant,
    _active: ActiveRequest,
    attempts: Attempts,
    /// 0 when the response was cut after its head (or never written).
    status: u16,
    /// No keep-alive for the client once shutting down.
    shutting_down: bool,
    /// `http`, or `https` on the TLS listener (the access log).
    scheme: &'static str,
}

impl Exchange<'_> {
    /// Returns whether the client connection stays open.
    async fn run(
        &mut self,
        client: &mut Stream,
        out: &mut Vec<u8>,
        upstream: &mut BytesMut,
        timer: &mut LazyTimer,
        key_hash: u64,
    ) -> bool {
        let rr = self.rr.expect("a routed exchange");
        let timeouts = &rr.route.backend.timeouts;
        let (answered, addr) = loop {
            // The first pick reuses the request's start: one clock read fewer.
            let now = match self.attempts.failures {
                0 => self.start,
                _ => Instant::now(),
            };
            let candidate = match self.attempts.next(rr, key_hash, now) {
                Ok(candidate) => candidate,
                Err(error) => return self.answer(client, out, error, true).await,
            };
            match attempt(client, candidate.addr, out, upstream, timer, timeouts, now).await {
                Attempt::Ready(answered) => break (answered, candidate.addr),
                // Refused or timed out: the next candidate while the budget lasts.
                Attempt::ConnectFailed => {
                    let error = self.attempts.connect_failed(rr);
                    if !error.retryable {
                        return self.answer(client, out, error, true).await;
                    }
                }
                Attempt::Timeout => {
                    let error = ProxyError::new(ErrorKind::UpstreamTimeout);
                    return self.answer(client, out, error, true).await;
                }
                Attempt::ClientGone => {
                    let error = ProxyError::new(ErrorKind::ClientGone);
                    return self.answer(client, out, error, true).await;
                }
                Attempt::Broken { fresh } => {
                    if fresh {
                        self.attempts.broke_before_head(rr);
                    }
                    let error = ProxyError::new(ErrorKind::UpstreamBroken);
                    return self.answer(client, out, error, true).await;
                }
                Attempt::BadResponse { fresh } => {
                    if fresh {
                        self.attempts.broke_before_head(rr);
                    }
                    let error = ProxyError::new(ErrorKind::BadResponse);
                    return self.answer(client, out, error, true).await;
                }
            }
        };
        self.forward_response(client, out, upstream, timer, answered, addr)
            .await
    }

    /// Parses the endpoint's response head and writes the client's into
    /// `out`. A plain function, so its header array lives on the stack, not in
    /// the request's future.
    fn client_head(
        &self,
        out: &mut Vec<u8>,
        head: &[u8],
        rr: &RouteRuntime,
    ) -> Result<ClientHead, ProxyError> {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        // pingora's response parser settings, so both paths take the same heads.
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response_with_uninit_headers(&mut resp, head, &mut headers);
        let status = resp.code.unwrap_or(0);
        let head_request = self.req.method == "HEAD";
        let framing = match parsed {
            Ok(httparse::Status::Complete(_)) => {
                response::check_status(status, false).and_then(|()| {
                    response::framing(
                        status,
                        head_request,
                        resp.headers.iter().map(|h| (h.name, h.value)),
                    )
                })?
            }
            _ => return Err(ProxyError::new(ErrorKind::BadResponse)),
        };
        let connection = connection_names(resp.headers);
        let upstream_close = resp.version != Some(1) || connection.close;
        let keep_client =
            !self.req.client_close && !self.shutting_down && framing != BodyFraming::UntilClose;
        write_client_head(out, &resp, head, &connection, rr, keep_client);
        Ok(ClientHead {
            status,
            framing,
            upstream_close,
            keep_client,
        })
    }

    /// Writes the response head and passes the body through. Returns whether
    /// the client connection stays open.
    async fn forward_response(
        &mut self,
        client: &mut Stream,
        out: &mut Vec<u8>,
        upstream: &mut BytesMut,
        timer: &mut LazyTimer,
        answered: Answered,
        addr: SocketAddr,
    ) -> bool {
        let Answered {
            mut conn,
            head_len,
            fresh,
        } = answered;
        let rr = self.rr.expect("a routed exchange");
        let timeout = rr.route.backend.timeouts.response;
        let head = match self.client_head(out, &upstream[..head_len], rr) {
            Ok(head) => head,
            Err(error) => {
                // A head that cannot be proxied counts against the endpoint like a
                // broken connection, and a success only comes with a usable head.
                if fresh {
                    self.attempts.broke_before_head(rr);
                }
                return self.answer(client, out, error, true).await;
            }
        };
        self.attempts.responded();
        let ClientHead {
            status,
            framing,
            upstream_close,
            keep_client,
        } = head;
        upstream.advance(head_len);
        // A response that fits the client's write buffer leaves in one write,
        // as HAProxy (MSG_MORE) and NGINX (buffering) send it: an endpoint that
        // sends head and body in separate segments would otherwise cost the
        // client a second segment and wake-up (a third of responses here).
        if let BodyFraming::Length(n) = framing {
            // Compared as u64: the length is the endpoint's, up to u64::MAX.
            let room = DOWNSTREAM_WRITE_BUFFER.saturating_sub(out.len()) as u64;
            if n <= room {
                let n = n as usize;
                while upstream.len() < n {
                    upstream.reserve(n - upstream.len());
                    match timer.within(timeout, conn.read_buf(upstream)).await {
                        Ok(Ok(read)) if read > 0 => {}
                        // Nothing reached the client yet: it gets an answer, not a cut.
                        Ok(_) => {
                            let error = ProxyError::new(ErrorKind::UpstreamBroken);
                            return self.answer(client, out, error, true).await;
                        }
                        Err(_) => {
                            let error = ProxyError::new(ErrorKind::UpstreamTimeout);
                            return self.answer(client, out, error, true).await;
                        }
                    }
                }
            }
        }
        let mut left = match framing {
            BodyFraming::Empty => BodyLeft::Done,
            BodyFraming::Length(n) => BodyLeft::Length(n),
            BodyFraming::Chunked => BodyLeft::Chunked(ChunkedEnd::default()),
            BodyFraming::UntilClose => BodyLeft::UntilClose,
        };
        // The head leaves with the body bytes that came with it, in one write.
        let (first, mut extra, mut ok) = match take_body(&mut left, upstream) {
            Ok((take, extra)) => (take, extra, true),
            Err(()) => (0, true, false),
        };
        self.status = status;
        self.release_when_done(&left);
        ok = write_parts(client, out, &upstream[..first]).await && ok;
        while ok && !matches!(left, BodyLeft::Done) {
            upstream.clear();
            upstream.reserve(READ_CHUNK);
            match timer.within(timeout, conn.read_buf(upstream)).await {
                Ok(Ok(0)) if matches!(left, BodyLeft::UntilClose) => left = BodyLeft::Done,
                Ok(Ok(n)) if n > 0 => match take_body(&mut left, upstream) {
                    Ok((take, more)) => {
                        extra = more;
                        self.release_when_done(&left);
                        ok = write_parts(client, &[], &upstream[..take]).await;
                    }
                    Err(()) => ok = false,
                },
                // Cut mid-body (closed, reset, stalled): the client cannot get this response whole.
                _ => ok = false,
            }
        }
        if !ok {
            self.status = 0;
            return false;
        }
        self.attempts.release();
        if !upstream_close && !extra && framing != BodyFraming::UntilClose {
            // Idle since about the request's start: close enough for a 30 s expiry.
            upstream_pool::give_back(addr, conn, self.start);
        }
        keep_client
    }

    /// The endpoint sent its whole response: its in-flight count drops
    /// before the client gets the last bytes, so a request the client sends
    /// once it has them never sees this one still counted (bounded load).
    fn release_when_done(&mut self, left: &BodyLeft) {
        if matches!(left, BodyLeft::Done) {
            self.attempts.release();
        }
    }

    /// The policy core's answer to `error`. `after_pick`: an endpoint was
    /// chosen, and the connection closes after the answer (as pingora's
    /// pipeline closes it). Returns whether the client connection stays open.
    async fn answer(
        &mut self,
        client: &mut Stream,
        out: &mut Vec<u8>,
        error: ProxyError,
        after_pick: bool,
    ) -> bool {
        self.attempts.release();
        if let Some(reason) = error.rejection() {
            self.plane.metrics.rejected.inc(reason);
        }
        let answer = error.answer();
        let keep = !(answer.close || after_pick || self.req.client_close || self.shutting_down);
        write_answer(out, &answer, self.req.method == "HEAD", keep);
        if write_all(client, out).await {
            self.status = answer.status;
        }
        keep
    }

    /// Metrics and the access log line, as every transport writes them.
    fn finish(&mut self) {
        self.attempts.release();
        record::finish(
            self.plane,
            self.rr,
            &self.attempts,
            &Finished {
                method: self.req.method,
                host: Some(self.req.host),
                path: self.req.path,
                client: self.req.client,
                protocol: "HTTP/1.1",
                scheme: self.scheme,
                status: self.status,
                start: self.start,
            },
        );
    }
}

/// A one-line text answer of the proxy's own, framed as pingora's pipeline
/// frames it (`transport::pingora::write_answer`).
fn write_answer(out: &mut Vec<u8>, answer: &Answer, head_only: bool, keep_alive: bool) {
    out.clear();
    let reason = http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&itoa_3(answer.status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    out.extend_from_slice(answer.body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    if answer.retry_after {
        out.extend_from_slice(b"Retry-After: 1\r\n");
    }
    match keep_alive {
        true => out.extend_from_slice(b"Connection: keep-alive\r\n\r\n"),
        false => out.extend_from_slice(b"Connection: close\r\n\r\n"),
    }
    if !head_only {
        out.extend_from_slice(answer.body.as_bytes());
    }
}

/// How one try at an endpoint ended.
enum Attempt {
    Ready(Answered),
    ConnectFailed,
    Timeout,
    /// The connection broke before a whole response head.
    Broken {
        fresh: bool,
    },
    /// The endpoint answered something the policy does not forward (an
    /// unsolicited `101`, endless interim responses).
    BadResponse {
        fresh: bool,
    },
    /// The client went away while interim responses were written to it.
    ClientGone,
}

/// A connection with a response head at the start of the read buffer.
struct Answered {
    conn: TcpStream,
    head_len: usize,
    /// Opened for this request (not taken from the pool): what its failures
    /// say about the endpoint, as pingora judges it.
    fresh: bool,
}

/// Sends the request on an idle connection to `addr` if there is one (once
/// more on a new connection if the endpoint had closed it), else on a new one.
async fn attempt(
    client: &mut Stream,
    addr: SocketAddr,
    head: &[u8],
    buf: &mut BytesMut,
    timer: &mut LazyTimer,
    timeouts: &Timeouts,
    now: Instant,
) -> Attempt {
    let (mut conn, fresh) = match upstream_pool::take(addr, now) {
        Some(conn) => (conn, false),
        None => match connect(addr, timeouts.connect).await {
            Ok(conn) => (conn, true),
            Err(_) => return Attempt::ConnectFailed,
        },
    };
    let mut result = send(
        &mut conn,
        head,
        buf,
        timer,
        timeouts.response,
        fresh,
        client,
    )
    .await;
    let resent = matches!(result, Err(UpstreamError::Stale));
    if resent {
        conn = match connect(addr, timeouts.connect).await {
            Ok(conn) => conn,
            Err(_) => return Attempt::ConnectFailed,
        };
        result = send(&mut conn, head, buf, timer, timeouts.response, true, client).await;
    }
    let fresh = fresh || resent;
    match result {
        Ok(head_len) => Attempt::Ready(Answered {
            conn,
            head_len,
            fresh,
        }),
        Err(UpstreamError::Timeout) => Attempt::Timeout,
        Err(UpstreamError::Refused) => Attempt::BadResponse { fresh },
        Err(UpstreamError::ClientGone) => Attempt::ClientGone,
        Err(_) => Attempt::Broken { fresh },
    }
}

async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let conn = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Sends the request head and reads the response head (skipping interim 1xx
/// responses). Returns the length of the final head at the start of `buf`.
async fn send(
    conn: &mut TcpStream,
    head: &[u8],
    buf: &mut BytesMut,
    timer: &mut LazyTimer,
    timeout: Duration,
    fresh: bool,
    client: &mut Stream,
) -> Result<usize, UpstreamError> {
    let broken = |fresh: bool| {
        if fresh {
            UpstreamError::Broken
        } else {
            UpstreamError::Stale
        }
    };
    // A head that fits the socket buffer goes out without arming a timer.
    let sent = match conn.try_write(head) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(_) => return Err(broken(fresh)),
    };
    if sent < head.len() {
        match timer.within(timeout, conn.write_all(&head[sent..])).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(broken(fresh)),
            Err(_) => return Err(UpstreamError::Timeout),
        }
    }
    buf.clear();
    let mut interim = 0;
    loop {
        // Taken once there is an answer to read: a request waiting on a slow
        // endpoint holds no read buffer (memory per request in flight).
        if buf.capacity() == 0 {
            match timer.within(timeout, conn.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(broken(fresh)),
                Err(_) => return Err(UpstreamError::Timeout),
            }
            *buf = buffers::take_upstream();
        } else if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        let mut from = buf.len();
        // `read_buf`, not `try_read_buf`: a read that leaves room in the
        // buffer clears tokio's readiness flag, so the pool's liveness check
        // on the next reuse answers without a syscall (`upstream_pool`).
        match timer.within(timeout, conn.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // Broken before a whole head: on a reused connection sent once
            // more on a new one, as pingora retries a reused connection.
            Ok(_) => return Err(broken(fresh)),
            Err(_) => return Err(UpstreamError::Timeout),
        }
        // Interim 1xx heads go to the client as they come (RFC 9110 §15.2;
        // `response::check_status`); the final head may be in the same read.
        // Only the status is looked at here: the final head is parsed once,
        // later.
        while let Some(end) = head_end(buf, from) {
            match buf.get(..12) {
                Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', b'1', b'0', b'1']) => {
                    return Err(UpstreamError::Refused)
                }
                Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', b'1', ..]) => {
                    interim += 1;
                    if interim > MAX_INTERIM_RESPONSES {
                        return Err(UpstreamError::Refused);
                    }
                    let head = interim_head(&buf[..end]).ok_or(UpstreamError::Refused)?;
                    let written = async {
                        client.write_all(&head).await?;
                        client.flush().await
                    };
                    match timer.within(timeout, written).await {
                        Ok(Ok(())) => {}
                        _ => return Err(UpstreamError::ClientGone),
                    }
                    buf.advance(end);
                    from = 0;
                }
                _ => return Ok(end),
            }
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(UpstreamError::Broken);
        }
    }
}

/// What a parsed head's `Connection` fields say.
fn connection_names<'h>(fields: &[httparse::Header<'h>]) -> ConnectionNames<'h> {
    ConnectionNames::parse(
        fields
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value),
    )
}

/// The client's response head: the endpoint's status and headers without
/// hop-by-hop ones, the route's response headers, and our `Connection`.
fn write_client_head(
    out: &mut Vec<u8>,
    resp: &httparse::Response<'_, '_>,
    raw: &[u8],
    connection: &ConnectionNames<'_>,
    rr: &RouteRuntime,
    keep_alive: bool,
) {
    let route_headers = &rr.route.response_headers;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = itoa_3(resp.code.unwrap_or(0));
    out.extend_from_slice(&code);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut lines = LineCopy::response(raw, out);
    for h in resp.headers.iter() {
        if headers::drop_downstream(h.name, connection, route_headers, false) {
            continue;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = headers::tidy_list(h.value);
            if !value.is_empty() {
                lines.copy(h.name.as_bytes(), &value);
            }
        } else {
            lines.copy(h.name.as_bytes(), h.value);
        }
    }
    for (name, value) in route_headers {
        lines.put(name.as_bytes(), value.as_bytes());
    }
    lines.finish();
    match keep_alive {
        true => out.extend_from_slice(b"Connection: keep-alive\r\n\r\n"),
        false => out.extend_from_slice(b"Connection: close\r\n\r\n"),
    }
}

/// An interim response head for the client: its status line as HTTP/1.1 and
/// its fields without hop-by-hop ones (`headers::drop_downstream`), as
/// pingora's transport forwards it. `None`: not a head that can be forwarded.
fn interim_head(raw: &[u8]) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut resp, raw);
    let status = resp.code?;
    if !matches!(parsed, Ok(httparse::Status::Complete(_)))
        || response::check_status(status, false).is_err()
    {
        return None;
    }
    let connection = connection_names(resp.headers);
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&itoa_3(status));
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut lines = LineCopy::response(raw, &mut out);
    for h in resp.headers.iter() {
        if !headers::drop_downstream(h.name, &connection, &[], false) {
            lines.copy(h.name.as_bytes(), h.value);
        }
    }
    lines.finish();
    out.extend_from_slice(b"\r\n");
    Some(out)
}

fn itoa_3(n: u16) -> [u8; 3] {
    let n = n.min(999);
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// How many of the bytes at the start of `buf` belong to this response's
/// body, and whether bytes beyond the body came with them (the connection is
/// then not reused); `Err` when a chunked body broke its framing.
fn take_body(left: &mut BodyLeft, buf: &[u8]) -> Result<(usize, bool), ()> {
    let (take, done) = match left {
        BodyLeft::Done => (0, true),
        BodyLeft::Length(n) => {
            let take = (*n).min(buf.len() as u64) as usize;
            *n -= take as u64;
            (take, *n == 0)
        }
        BodyLeft::Chunked(end) => match end.feed(buf).map_err(|_| ())? {
            Some(end) => (end, true),
            None => (buf.len(), false),
        },
        BodyLeft::UntilClose => (buf.len(), false),
    };
    if done {
        *left = BodyLeft::Done;
    }
    Ok((take, take < buf.len()))
}

/// Writes `head` then `body` in one vectored write where the stream takes
/// it whole (one `writev` on the plain listener; into the write buffer on
/// TLS), then flushes: one segment for a response that fits.
async fn write_parts(client: &mut Stream, mut head: &[u8], mut body: &[u8]) -> bool {
    while !head.is_empty() || !body.is_empty() {
        let parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
        match client.write_vectored(&parts).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                let from_head = n.min(head.len());
                head = &head[from_head..];
                body = &body[n - from_head..];
            }
        }
    }
    client.flush().await.is_ok()
}

async fn write_all(client: &mut Stream, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    write_parts(client, bytes, &[]).await
}

#[cfg(test)]
mod tests {
    use super::{head_complete, head_end, plain_host_byte, plain_uri_byte};
    use super::{send, LazyTimer, UpstreamError};
    use crate::data::transport::plain::PlainStream;
    use bytes::BytesMut;
    use pingora::protocols::Stream;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected (ours, theirs) pair on loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap());
        let (ours, theirs) = tokio::join!(ours, listener.accept());
        (ours.unwrap(), theirs.unwrap().0)
    }

    const HEAD: &[u8] = b"GET /products/1 HTTP/1.1\r\nHost: x\r\n\r\n";

    /// `send` of `HEAD` on a fresh connection, with a client that takes no interim responses.
    async fn send_head(
        upstream: &mut TcpStream,
        buf: &mut BytesMut,
        timeout: Duration,
    ) -> Result<usize, UpstreamError> {
        let (client_tcp, _client) = pair().await;
        let peer = client_tcp.peer_addr().unwrap();
        let mut client: Stream = Box::new(PlainStream::new(client_tcp, peer));
        let mut timer = LazyTimer::new();
        send(upstream, HEAD, buf, &mut timer, timeout, true, &mut client).await
    }

    #[tokio::test]
    async fn the_read_buffer_is_taken_only_when_the_endpoint_answers() {
        let (mut upstream, mut endpoint) = pair().await;

        // An endpoint that has not answered: the request waits holding no buffer.
        let mut buf = BytesMut::new();
        let waited = send_head(&mut upstream, &mut buf, Duration::from_millis(50)).await;
        assert!(matches!(waited, Err(UpstreamError::Timeout)));
        assert_eq!(buf.capacity(), 0);
        let mut got = [0u8; 64];
        let n = endpoint.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], HEAD);

        // It answers, in two writes: the head is read into a pooled buffer.
        let long = Duration::from_secs(5);
        let answer = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            endpoint
                .write_all(b"HTTP/1.1 200 OK\r\nContent-")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            endpoint.write_all(b"Length: 2\r\n\r\nok").await.unwrap();
        };
        let (sent, ()) = tokio::join!(send_head(&mut upstream, &mut buf, long), answer);
        let end = sent.unwrap();
        assert_eq!(&buf[..end], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(&buf[end..], b"ok");
        assert!(buf.capacity() >= 16 * 1024);

        // The endpoint closes before answering: broken.
        let (mut upstream, endpoint) = pair().await;
        drop(endpoint);
        let mut buf = BytesMut::new();
        let closed = send_head(&mut upstream, &mut buf, long).await;
        assert!(matches!(closed, Err(UpstreamError::Broken)));
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line_in_either_form() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nxx\r\n\r\n", 0),
            Some(24)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\n\nxx\r\n\r\n", 0), Some(21));
        assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\r\n\r\n", 0), Some(23));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        // A blank line split across reads is found from the latest read.
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", 23), Some(24));
    }

    #[test]
    fn a_head_is_complete_at_its_first_blank_line_wherever_reads_split_it() {
        let msg = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\n\nmore";
        let end = 25;
        for split in 0..msg.len() {
            let complete =
                head_complete(&msg[..split], 0) || (split < msg.len() && head_complete(msg, split));
            assert!(complete, "split {split}");
            assert_eq!(
                head_complete(&msg[..split], 0),
                split >= end,
                "split {split}"
            );
        }
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n", 0));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    }

    #[test]
    fn plain_byte_tables_hold_the_listed_bytes() {
        for b in 0..=255u8 {
            let uri = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
            let host = b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
            assert_eq!(plain_uri_byte(b), uri, "{b}");
            assert_eq!(plain_host_byte(b), host, "{b}");
        }
    }
}
