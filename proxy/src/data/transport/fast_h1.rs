//! The fast path: a GET or HEAD without a body, on a route that proxies to
//! plain-HTTP endpoints without LIFO admission, served on the connection's own
//! task: the request head is forwarded as it arrived (hop-by-hop headers out,
//! `X-Forwarded-*` and the route's headers in), the response passes through
//! with only its framing followed. pingora's proxy pipeline costs ~60k
//! instructions per request in channels, tasks and header maps; this costs a
//! fraction (BENCHMARKS.md).
//!
//! Everything else goes to pingora's pipeline with the bytes already read
//! replayed ([`Outcome::Fallback`]): bodies, upgrades, HTTP/1.0, unusual or
//! malformed requests, paths that need normalising, no route, `status` routes,
//! routes without endpoints, TLS endpoints and LIFO queues. So each rejection
//! keeps one implementation, with its status and metric.
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use pingora::protocols::Stream;
use ringress_ring::{pick_admitted, InFlightGuard, PickContext};
use ringress_routes::{RequestParts, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::data::access_log;
use crate::data::transport::h1::{is_hop_by_hop, response_framing, BodyFraming, ChunkedEnd};
use crate::data::transport::lazy_timer::LazyTimer;
use crate::data::transport::pingora::{key_hash_of, record_connection_failure};
use crate::data::policy::request::{normalize_path, random_u64, write_ip};
use crate::data::table::{ms_since_start, RouteRuntime};
use crate::data::transport::DOWNSTREAM_WRITE_BUFFER;
use crate::control::ingress::Ingress;
use crate::data::transport::upstream_pool;

/// Request headers the fast path reads; a request with more goes to pingora.
const MAX_REQUEST_HEADERS: usize = 32;
/// Response headers the fast path forwards (pingora's limit); a response with more is a 502.
const MAX_RESPONSE_HEADERS: usize = 256;
/// Interim (1xx) responses skipped before a final one; an endpoint that
/// keeps sending them is broken, not slow.
const MAX_INTERIM_RESPONSES: usize = 16;
/// Largest response head accepted from an endpoint.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Read size for response bodies.
const READ_CHUNK: usize = 16 * 1024;

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
    /// Bytes read from the endpoint.
    upstream: BytesMut,
    client: Option<IpAddr>,
    /// `client` as text, written once per connection rather than per request.
    client_text: Vec<u8>,
    /// Bounds each wait on the endpoint.
    timer: LazyTimer,
}

impl Connection {
    /// `client` goes into `X-Forwarded-For` and the access log.
    pub fn new(client: Option<IpAddr>) -> Self {
        let mut client_text = Vec::new();
        if let Some(ip) = client {
            write_ip(&mut client_text, ip);
        }
        Self {
            client,
            client_text,
            ..Self::default()
        }
    }
}

pub struct FastPath {
    ingress: Arc<Ingress>,
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
enum UpstreamError {
    /// A reused connection broke before a whole response head (most often
    /// the endpoint closed it while idle). Safe to send again on a new
    /// connection (GET and HEAD only come here), as pingora does.
    Stale,
    Timeout,
    /// The connection broke or the endpoint's answer is not valid HTTP/1.1.
    Broken,
}

/// What is left of a response body to forward.
enum BodyLeft {
    Done,
    Length(u64),
    Chunked(ChunkedEnd),
    UntilClose,
}

impl FastPath {
    pub fn new(ingress: Arc<Ingress>) -> Self {
        Self { ingress }
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
        conn.head.clear();
        loop {
            let from = conn.head.len();
            if conn.head.capacity() - from < 1024 {
                conn.head.reserve(4096);
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
        let start = Instant::now();
        // Uninitialised: httparse writes only the headers it finds.
        let mut headers = [const { MaybeUninit::uninit() }; MAX_REQUEST_HEADERS];
        let Some(req) = parse_request(&conn.head, &mut headers, conn.client, &conn.client_text)
        else {
            return Some(Outcome::Fallback);
        };
        let runtime = self.ingress.runtime();
        let Some(m) = runtime.table.find(&req) else {
            return Some(Outcome::Fallback);
        };
        // `runtime.routes` runs parallel to the table's routes.
        let Some(rr) = runtime.routes.get(m.index) else {
            return Some(Outcome::Fallback);
        };
        let Some(pool) = &rr.pool else {
            return Some(Outcome::Fallback);
        };
        if pool.balancer.endpoints().is_empty()
            || !rr.queues.is_empty()
            || self.ingress.listener_queue.is_some()
            || pool.any_tls
        {
            return Some(Outcome::Fallback);
        }
        parsed();
        let key_hash = key_hash_of(rr, &m, &req);
        let out = &mut conn.out;
        let upstream = &mut conn.upstream;
        let timer = &mut conn.timer;
        let mut exchange = Exchange {
            ingress: &self.ingress,
            rr,
            req: &req,
            start,
            _active: self.ingress.track_request(),
            endpoint: None,
            upstream_start: None,
            guard: None,
            spilled: false,
            connect_failures: 0,
            status: 0,
            shutting_down,
        };
        write_upstream_head(out, &req, rr);
        let keep = exchange.run(stream, out, upstream, timer, key_hash).await;
        exchange.finish();
        Some(if keep {
            Outcome::KeepAlive
        } else {
            Outcome::Close
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
    if !matches!(normalize_path(path), Ok(None)) {
        return None;
    }
    let headers: &'a [httparse::Header<'a>] = parsed.headers;
    let mut host = None;
    let mut client_close = false;
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() || h.value.is_empty() || !h.value.iter().all(|&b| plain_host_byte(b))
            {
                return None;
            }
            host = std::str::from_utf8(h.value).ok();
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                match token.trim_ascii() {
                    t if t.eq_ignore_ascii_case(b"close") => client_close = true,
                    t if t.eq_ignore_ascii_case(b"keep-alive") || t.is_empty() => {}
                    // Names other hop-by-hop headers: pingora strips them.
                    _ => return None,
                }
            }
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
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

fn plain_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._:[]".contains(&b)
}

/// The request head for the endpoint: the client's request line and headers
/// as they arrived, without hop-by-hop headers, with `X-Forwarded-*` and the
/// route's request headers.
fn write_upstream_head(out: &mut Vec<u8>, req: &Request<'_>, rr: &RouteRuntime) {
    let route_headers = &rr.route.request_headers;
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prior_for: Option<&[u8]> = None;
    for h in req.headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            prior_for.get_or_insert(h.value);
            continue;
        }
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("x-forwarded-proto")
            || name.eq_ignore_ascii_case("x-forwarded-host")
            || route_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        copy_header(out, req.raw, name.as_bytes(), h.value);
    }
    // A route's own value for an X-Forwarded-* header replaces ours, as
    // pingora's `insert_header` does on the other path.
    let routed = |name: &str| route_headers.iter().any(|(n, _)| n == name);
    if !routed("x-forwarded-host") {
        header_line(out, b"X-Forwarded-Host", req.host.as_bytes());
    }
    if routed("x-forwarded-for") {
        // The route's value, written below.
    } else if req.client.is_some() {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if let Some(prior) = prior_for.map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
            out.extend_from_slice(prior);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(req.client_text);
        out.extend_from_slice(b"\r\n");
    } else if let Some(prior) = prior_for {
        header_line(out, b"X-Forwarded-For", prior);
    }
    if !routed("x-forwarded-proto") {
        header_line(out, b"X-Forwarded-Proto", b"http");
    }
    for (name, value) in route_headers {
        header_line(out, name.as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a parsed header as `name: value` CRLF, copying its line from `raw`
/// in one piece when it is already written that way (almost always).
fn copy_header(out: &mut Vec<u8>, raw: &[u8], name: &[u8], value: &[u8]) {
    match raw_line(raw, name, value) {
        Some(line) => out.extend_from_slice(line),
        None => header_line(out, name, value),
    }
}

/// The header's line in `raw` with its CRLF, if the name is followed by a
/// colon right away and the value by CRLF: the form `header_line` writes.
/// (Responses may have spaces before the colon or bare LF line ends; those
/// are rewritten.)
fn raw_line<'a>(raw: &'a [u8], name: &[u8], value: &[u8]) -> Option<&'a [u8]> {
    let base = raw.as_ptr() as usize;
    let start = (name.as_ptr() as usize).checked_sub(base)?;
    let value_start = (value.as_ptr() as usize).checked_sub(base)?;
    let end = value_start.checked_add(value.len())?;
    let gap = raw.get(start + name.len()..value_start)?;
    // The colon, then only the optional whitespace httparse skipped.
    if gap.first() != Some(&b':') || !gap[1..].iter().all(|&b| b == b' ' || b == b'\t') {
        return None;
    }
    match raw.get(end..end + 2) {
        Some(b"\r\n") => raw.get(start..end + 2),
        _ => None,
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One request's trip to the endpoints, with what its metrics and log need.
struct Exchange<'a> {
    ingress: &'a Ingress,
    rr: &'a RouteRuntime,
    req: &'a Request<'a>,
    start: Instant,
    _active: crate::control::ingress::ActiveRequest,
    endpoint: Option<usize>,
    upstream_start: Option<Instant>,
    guard: Option<InFlightGuard>,
    spilled: bool,
    connect_failures: u32,
    /// 0 when the response was cut after its head (or never written).
    status: u16,
    /// No keep-alive for the client once shutting down.
    shutting_down: bool,
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
        let rr = self.rr;
        let pool = rr.pool.as_ref().expect("fast path routes have a pool");
        let timeouts = &rr.route.backend.timeouts;
        let mut tried: Vec<usize> = Vec::new();
        let (answered, addr) = loop {
            let pick_ctx = PickContext {
                key_hash,
                random: random_u64(),
            };
            // The first pick reuses the request's start: one clock read fewer.
            let now = match tried.is_empty() {
                true => self.start,
                false => Instant::now(),
            };
            let exclude = |i: usize| tried.contains(&i) || pool.upstreams[i].addr.is_none();
            let pick = match rr.health {
                Some(_) => pick_admitted(&*pool.balancer, &pick_ctx, &exclude, ms_since_start(now)),
                None => pool.balancer.pick(&pick_ctx, &exclude),
            };
            let Some(pick) = pick else {
                let (status, body) = match tried.is_empty() {
                    true => (503, "no endpoints\n"),
                    false => (502, "all endpoints failed\n"),
                };
                return self.answer(client, out, status, body).await;
            };
            if pick.spilled() {
                self.spilled = true;
                rr.metrics.spills.inc();
            }
            let i = pick.endpoint;
            let addr = pool.upstreams[i]
                .addr
                .expect("unresolved endpoints are excluded");
            self.guard = Some(pool.balancer.endpoints()[i].acquire());
            self.endpoint = Some(i);
            self.upstream_start = Some(now);
            match attempt(addr, out, upstream, timer, timeouts, now).await {
                Attempt::Ready(answered) => break (answered, addr),
                // Connection refused or timed out: the next candidate, like pingora's retry.
                Attempt::ConnectFailed => {
                    rr.metrics.upstream_failures.inc();
                    record_connection_failure(rr, i);
                    tried.push(i);
                    self.guard = None;
                    self.endpoint = None;
                    self.connect_failures += 1;
                    if self.connect_failures > rr.route.backend.retries {
                        return self
                            .answer(client, out, 502, "all endpoints failed\n")
                            .await;
                    }
                    rr.metrics.retries.inc();
                }
                Attempt::Timeout => {
                    return self.answer(client, out, 504, "upstream timeout\n").await;
                }
                Attempt::Broken { fresh } => {
                    // A new connection that broke before a response head: the
                    // endpoint accepts but cannot serve.
                    if fresh {
                        record_connection_failure(rr, i);
                    }
                    return self.answer(client, out, 502, "upstream error\n").await;
                }
            }
        };
        self.forward_response(client, out, upstream, timer, answered, addr)
            .await
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
        let timeout = self.rr.route.backend.timeouts.response;
        let mut headers = [const { MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let head = &upstream[..head_len];
        // pingora's response parser settings, so both paths take the same heads.
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response_with_uninit_headers(&mut resp, head, &mut headers);
        let status = resp.code.unwrap_or(0);
        let head_request = self.req.method == "HEAD";
        let framing = match parsed {
            Ok(httparse::Status::Complete(_)) => {
                response_framing(status, head_request, resp.headers).ok()
            }
            _ => None,
        };
        let Some(framing) = framing else {
            // A head that cannot be proxied counts against the endpoint like a
            // broken connection, and a success only comes with a usable head.
            if let (true, Some(i)) = (fresh, self.endpoint) {
                record_connection_failure(self.rr, i);
            }
            return self.answer(client, out, 502, "upstream error\n").await;
        };
        if let Some(guard) = &self.guard {
            guard.endpoint().health().record_success();
        }
        let upstream_close = resp.version != Some(1)
            || resp.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("connection")
                    && h.value
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            });
        let keep_client =
            !self.req.client_close && !self.shutting_down && framing != BodyFraming::UntilClose;
        write_client_head(
            out,
            status,
            resp.reason.unwrap_or(""),
            head,
            resp.headers,
            self.rr,
            keep_client,
        );
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
                        Ok(_) => return self.answer(client, out, 502, "upstream error\n").await,
                        Err(_) => return self.answer(client, out, 504, "upstream timeout\n").await,
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
        ok = write_parts(client, out, &upstream[..first]).await && ok;
        while ok && !matches!(left, BodyLeft::Done) {
            upstream.clear();
            upstream.reserve(READ_CHUNK);
            match timer.within(timeout, conn.read_buf(upstream)).await {
                Ok(Ok(0)) if matches!(left, BodyLeft::UntilClose) => left = BodyLeft::Done,
                Ok(Ok(n)) if n > 0 => match take_body(&mut left, upstream) {
                    Ok((take, more)) => {
                        extra = more;
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
        self.guard = None;
        if !upstream_close && !extra && framing != BodyFraming::UntilClose {
            // Idle since about the request's start: close enough for a 30 s expiry.
            upstream_pool::give_back(addr, conn, self.start);
        }
        keep_client
    }

    /// A one-line text answer of the proxy's own; the connection closes after
    /// it, as pingora's pipeline closes it once an endpoint was chosen.
    async fn answer(
        &mut self,
        client: &mut Stream,
        out: &mut Vec<u8>,
        status: u16,
        body: &str,
    ) -> bool {
        self.guard = None;
        out.clear();
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let head_only = self.req.method == "HEAD";
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        if !head_only {
            out.extend_from_slice(body.as_bytes());
        }
        if write_all(client, out).await {
            self.status = status;
        }
        false
    }

    /// Metrics and the access log line, as pingora's `logging` hook writes them.
    fn finish(&mut self) {
        self.guard = None;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.start);
        let rr = self.rr;
        rr.metrics.count(self.req.method, self.status);
        rr.metrics.duration.observe(elapsed.as_secs_f64());
        let endpoint = match (self.endpoint, self.upstream_start, &rr.pool) {
            (Some(i), Some(t), Some(pool)) => {
                let upstream = now.saturating_duration_since(t);
                pool.upstreams[i].latency.observe(upstream.as_secs_f64());
                Some(pool.balancer.endpoints()[i].addr())
            }
            _ => None,
        };
        if self.ingress.access_log {
            access_log::write(&access_log::Entry {
                client: self.req.client,
                method: self.req.method,
                host: Some(self.req.host),
                path: self.req.path,
                route: Some(rr.route.name.as_str()),
                endpoint,
                status: self.status,
                spilled: self.spilled,
                retries: self.connect_failures,
                duration: elapsed,
            });
        }
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
    let mut result = send(&mut conn, head, buf, timer, timeouts.response, fresh).await;
    let resent = matches!(result, Err(UpstreamError::Stale));
    if resent {
        conn = match connect(addr, timeouts.connect).await {
            Ok(conn) => conn,
            Err(_) => return Attempt::ConnectFailed,
        };
        result = send(&mut conn, head, buf, timer, timeouts.response, true).await;
    }
    let fresh = fresh || resent;
    match result {
        Ok(head_len) => Attempt::Ready(Answered {
            conn,
            head_len,
            fresh,
        }),
        Err(UpstreamError::Timeout) => Attempt::Timeout,
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
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        let mut from = buf.len();
        match timer.within(timeout, conn.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // Broken before a whole head: on a reused connection sent once
            // more on a new one, as pingora retries a reused connection.
            Ok(_) => return Err(broken(fresh)),
            Err(_) => return Err(UpstreamError::Timeout),
        }
        // Interim 1xx heads are dropped; the final head may be in the same read.
        // Only the status is looked at here: the final head is parsed once, later.
        while let Some(end) = head_end(buf, from) {
            match buf.get(..12) {
                Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', b'1', b'0', b'1']) => {
                    return Err(UpstreamError::Broken)
                }
                Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', _, b' ', b'1', ..]) => {
                    interim += 1;
                    if interim > MAX_INTERIM_RESPONSES {
                        return Err(UpstreamError::Broken);
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

/// The client's response head: the endpoint's status and headers without
/// hop-by-hop ones, the route's response headers, and our `Connection`.
fn write_client_head(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    raw: &[u8],
    headers: &[httparse::Header<'_>],
    rr: &RouteRuntime,
    keep_alive: bool,
) {
    let route_headers = &rr.route.response_headers;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = itoa_3(status);
    out.extend_from_slice(&code);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        let name = h.name;
        if (is_hop_by_hop(name) && !name.eq_ignore_ascii_case("trailer"))
            || route_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        copy_header(out, raw, name.as_bytes(), h.value);
    }
    for (name, value) in route_headers {
        header_line(out, name.as_bytes(), value.as_bytes());
    }
    match keep_alive {
        true => out.extend_from_slice(b"Connection: keep-alive\r\n\r\n"),
        false => out.extend_from_slice(b"Connection: close\r\n\r\n"),
    }
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

/// Writes `head` then `body` through the client stream's buffer, flushed
/// once: one `sendto` for a response that fits the buffer.
async fn write_parts(client: &mut Stream, head: &[u8], body: &[u8]) -> bool {
    client.write_all(head).await.is_ok()
        && client.write_all(body).await.is_ok()
        && client.flush().await.is_ok()
}

async fn write_all(client: &mut Stream, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    client.write_all(bytes).await.is_ok() && client.flush().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::{head_complete, head_end, raw_line};

    #[test]
    fn header_lines_are_copied_whole_only_when_already_in_canonical_form() {
        let head = b"HTTP/1.1 200 OK\r\nA: b\r\nC:d\r\nE : f\r\nG: h\nI:\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .parse_response(&mut resp, head)
            .unwrap();
        let lines: Vec<Option<&[u8]>> = resp
            .headers
            .iter()
            .map(|h| raw_line(head, h.name.as_bytes(), h.value))
            .collect();
        let expected: [Option<&[u8]>; 5] = [
            Some(b"A: b\r\n"),
            Some(b"C:d\r\n"),
            None, // space before the colon: rewritten
            None, // bare LF: rewritten
            Some(b"I:\r\n"),
        ];
        assert_eq!(lines, expected);
        // Slices from elsewhere are never taken for lines of `head`.
        assert_eq!(raw_line(head, b"A", b"b"), None);
        let other = b"A: b\r\n".to_vec();
        assert_eq!(raw_line(head, &other[..1], &other[3..4]), None);
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
}
