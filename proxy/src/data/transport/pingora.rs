//! pingora's `ProxyHttp` pipeline as a transport: each hook hands what
//! pingora parsed to the policy core ([`crate::data::policy`]) and applies
//! its decision to pingora's header maps and errors.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use ringress_routes::RequestParts;

use crate::data::metrics::Reject;
use crate::data::plane::{ActiveRequest, DataPlane};
use crate::data::policy::attempts::Attempts;
use crate::data::policy::error::{is_grpc, Answer, ErrorKind, ProxyError};
use crate::data::policy::headers::{self, ConnectionNames, Forwarded, IpText};
use crate::data::policy::record::{self, Finished};
use crate::data::policy::response::{self, BodyFraming, MAX_INTERIM_RESPONSES};
use crate::data::policy::routing::{self, Permits};
use crate::data::policy::screen::{self, has_content_length, Rules};
use crate::data::table::{RouteRuntime, Runtime};
use crate::data::transport::{conn_watch, upgrade};

/// Streams one HTTP/2 connection to an endpoint carries at once (pingora's
/// default is 1: a connection per request). pingora opens another connection
/// past it; the endpoint's own `SETTINGS_MAX_CONCURRENT_STREAMS` still applies.
const H2_STREAMS_PER_CONNECTION: usize = 100;

pub struct Proxy {
    plane: Arc<DataPlane>,
    /// `--max-request-body` and `--strict-paths`.
    rules: Rules,
}

impl Proxy {
    pub fn new(plane: Arc<DataPlane>, rules: Rules) -> Self {
        Self { plane, rules }
    }

    fn screen(&self, session: &mut Session) -> Result<(), ProxyError> {
        let req = session.req_header();
        let te = req.headers.contains_key(header::TRANSFER_ENCODING);
        let head = screen::Head {
            request_line_ok: conn_watch::request_line_ok(),
            connection_ok: screen::connection_ok(
                req.headers
                    .get_all(header::CONNECTION)
                    .iter()
                    .map(|v| v.as_bytes()),
            ),
            http11: req.version == http::Version::HTTP_11,
            // HTTP/2 carries the host in `:authority` (RFC 9113 §8.3.1).
            host: req
                .headers
                .get(header::HOST)
                .map(|v| v.as_bytes())
                .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes())),
            // pingora drops `Content-Length` when `Transfer-Encoding` is
            // present: the conflict is only visible in the bytes received.
            te_and_cl: te && has_content_length(&session.as_downstream().to_h1_raw()),
            length_repeated: {
                let mut lengths = req.headers.get_all(header::CONTENT_LENGTH).iter();
                let first = lengths.next();
                lengths.next().is_some() || first.is_some_and(|v| v.as_bytes().contains(&b','))
            },
            transfer_codings: req
                .headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                .filter(|c| !c.trim_ascii().is_empty())
                .count(),
            declared_length: req
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok()),
            path: req.uri.path(),
        };
        if let Some(path) = screen::screen(&head, &self.rules)? {
            let uri = match req.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let bad_path = ProxyError::new(ErrorKind::Rejected(Reject::BadPath));
            let uri = http::Uri::try_from(uri).map_err(|_| bad_path)?;
            session.req_header_mut().set_uri(uri);
        }
        Ok(())
    }

    /// Writes the core's answer to `error` (nothing once a response head
    /// went out, or when the client is gone). `close`: pingora will close
    /// the connection after it, so the client is told.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        error: ProxyError,
        close: bool,
    ) -> bool {
        if let Some(reason) = error.rejection() {
            self.plane.metrics.rejected.inc(reason);
        }
        let answer = error.answer();
        // Interim responses forwarded before do not stop a final answer.
        let final_written = session
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        if answer.status == 0 || final_written {
            return false;
        }
        ctx.answered = Some(answer.status);
        let answer = Answer {
            close: answer.close || close,
            ..answer
        };
        let grpc = session
            .req_header()
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| is_grpc(v.as_bytes()));
        let written = match grpc {
            true => write_grpc_answer(session, &answer).await,
            false => write_answer(session, &answer).await,
        };
        written.is_ok() && !answer.close
    }
}

/// A request on its way through pingora's pipeline.
pub struct Ctx {
    _active: ActiveRequest,
    start: Instant,
    runtime: Option<Arc<Runtime>>,
    route: Option<usize>,
    key_hash: u64,
    attempts: Attempts,
    /// The request asks to upgrade the connection (WebSocket).
    upgrade: bool,
    /// The connection to the endpoint was taken from pingora's pool.
    reused: bool,
    /// The chosen endpoint sent a usable response head.
    upstream_responded: bool,
    /// Interim responses seen from the endpoint.
    interim: usize,
    /// The endpoint's body ends when it closes: so does the client's connection.
    close_delimited: bool,
    /// `upstream_peer` ran at least once.
    peer_chosen: bool,
    /// The endpoint of the current attempt: its index in the pool, its address.
    endpoint: Option<(usize, SocketAddr)>,
    /// What failed, when the core decided it (pingora's error says the rest).
    failure: Option<ProxyError>,
    /// Status of a response the proxy wrote itself.
    answered: Option<u16>,
    /// LIFO admissions, held until the response is sent or the client goes.
    _permits: Permits,
    /// Request body bytes read so far (counted only with `--max-request-body`).
    body_bytes: u64,
    /// The endpoint answered the upgrade: counted open until the tunnel ends.
    _tunnel: Option<upgrade::OpenTunnel>,
}

impl Ctx {
    fn route(&self) -> Option<&RouteRuntime> {
        Some(&self.runtime.as_ref()?.routes[self.route?])
    }
}

/// A route matcher's view of a pingora request header.
pub struct RequestView<'a> {
    pub req: &'a RequestHeader,
    pub peer: Option<IpAddr>,
}

impl RequestParts for RequestView<'_> {
    #[inline]
    fn method(&self) -> &str {
        self.req.method.as_str()
    }
    #[inline]
    fn host(&self) -> Option<&str> {
        self.req
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.req.uri.host())
    }
    #[inline]
    fn path(&self) -> &str {
        self.req.uri.path()
    }
    #[inline]
    fn query(&self) -> Option<&str> {
        self.req.uri.query()
    }
    #[inline]
    fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.req
            .headers
            .get(lowercase_name)
            .and_then(|v| v.to_str().ok())
    }
    #[inline]
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// `https` for a client of the TLS listener.
fn scheme(session: &Session) -> &'static str {
    match session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
        true => "https",
        false => "http",
    }
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Writes a complete one-line text response. pingora's `respond_error` would
/// force `Connection: close`; this keeps the connection unless told.
async fn write_answer(session: &mut Session, answer: &Answer) -> Result<()> {
    let mut resp = ResponseHeader::build(answer.status, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, answer.body.len())?;
    if answer.retry_after {
        resp.insert_header(header::RETRY_AFTER, "1")?;
    }
    if answer.close {
        // pingora writes `Connection` from the session's keep-alive state.
        session.as_downstream_mut().set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from_static(answer.body.as_bytes())), true)
            .await?;
    }
    Ok(())
}

/// The core's answer as a gRPC client reads it ([`Answer::grpc`]): a
/// trailers-only response, HTTP 200 with `grpc-status` and `grpc-message` and
/// no body (one HEADERS frame ending the stream on HTTP/2).
async fn write_grpc_answer(session: &mut Session, answer: &Answer) -> Result<()> {
    let grpc = answer.grpc();
    let mut resp = ResponseHeader::build(200, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, "application/grpc")?;
    resp.insert_header("grpc-status", u16::from(grpc.code))?;
    if !grpc.message.is_empty() {
        resp.insert_header("grpc-message", grpc.message)?;
    }
    if !session.as_downstream().is_http2() {
        resp.insert_header(header::CONTENT_LENGTH, 0)?;
    }
    if answer.close {
        session.as_downstream_mut().set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), true).await
}

/// The error pingora reports, in the core's terms, when the core did not
/// decide the failure itself.
fn from_pingora(e: &Error) -> ProxyError {
    let kind = match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(413)) => ErrorKind::Rejected(Reject::BodyTooLarge),
        (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
            ErrorKind::UpstreamTimeout
        }
        (ErrorSource::Upstream, _) => ErrorKind::UpstreamBroken,
        (
            ErrorSource::Downstream,
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
        ) => ErrorKind::ClientGone,
        (ErrorSource::Downstream, _) => ErrorKind::Rejected(Reject::BadBody),
        _ => ErrorKind::Internal,
    };
    ProxyError::new(kind)
}

/// The fields of a message the policy drops, judged with the message's own
/// `Connection` options. Allocates only when some field goes.
fn fields_to_drop(
    map: &http::HeaderMap,
    drop: impl Fn(&str, &ConnectionNames<'_>) -> bool,
) -> Vec<http::HeaderName> {
    let connection =
        ConnectionNames::parse(map.get_all(header::CONNECTION).iter().map(|v| v.as_bytes()));
    map.keys()
        .filter(|n| drop(n.as_str(), &connection))
        .cloned()
        .collect()
}

fn bad_response() -> Box<Error> {
    Error::explain(
        ErrorType::InvalidHTTPHeader,
        "endpoint response refused by policy",
    )
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    /// No downstream modules: pingora's default adds a (disabled) compression
    /// module whose per-request context and filter calls we would only pay for.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        conn_watch::header_parsed();
        Ctx {
            _active: self.plane.track_request(),
            start: Instant::now(),
            runtime: None,
            route: None,
            key_hash: 0,
            attempts: Attempts::default(),
            upgrade: false,
            reused: false,
            upstream_responded: false,
            interim: 0,
            close_delimited: false,
            peer_chosen: false,
            endpoint: None,
            failure: None,
            answered: None,
            _permits: Permits::default(),
            body_bytes: 0,
            _tunnel: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // Interim responses reach HTTP/1.1 clients (RFC 9110 §15.2: never
        // an HTTP/1.0 one); `upstream_response_filter` checks and trims them.
        let http10 = session.req_header().version == http::Version::HTTP_10;
        session.as_downstream_mut().set_ignore_info_resp(http10);
        if let Err(error) = self.screen(session) {
            self.answer(session, ctx, error, false).await;
            return Ok(true);
        }
        let runtime = self.plane.runtime();
        let routed = routing::route(
            &runtime,
            &RequestView {
                req: session.req_header(),
                peer: client_ip(session),
            },
        );
        // An upgrade handshake needs both fields (RFC 9110 §7.8); a lone
        // `Upgrade` is dropped like any hop-by-hop field.
        let req = session.req_header();
        ctx.upgrade = req.headers.contains_key(header::UPGRADE)
            && ConnectionNames::parse(
                req.headers
                    .get_all(header::CONNECTION)
                    .iter()
                    .map(|v| v.as_bytes()),
            )
            .upgrade;
        ctx.runtime = Some(Arc::clone(&runtime));
        let routed = match routed {
            Ok(routed) => routed,
            Err(unrouted) => {
                ctx.route = unrouted.route;
                self.answer(session, ctx, unrouted.error, false).await;
                return Ok(true);
            }
        };
        ctx.route = Some(routed.route);
        ctx.key_hash = routed.key_hash;
        let rr = &runtime.routes[routed.route];
        if routing::queued(&self.plane, rr) {
            match routing::admit(&self.plane, rr).await {
                Ok(permits) => ctx._permits = permits,
                Err(error) => {
                    self.answer(session, ctx, error, false).await;
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Counts a streamed (chunked) body against `--max-request-body`. The
    /// backend has the request header by now; cutting the body short means it
    /// never gets a complete request.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(max), Some(chunk)) = (self.rules.max_body, body.as_ref()) {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > max {
                ctx.failure = Some(ProxyError::new(ErrorKind::Rejected(Reject::BodyTooLarge)));
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body over --max-request-body",
                ));
            }
        }
        Ok(())
    }

    /// The endpoint sent its whole response: its in-flight count drops
    /// before the client gets the last bytes (as on the fast path).
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if end_of_stream {
            ctx.attempts.release();
        }
        Ok(None)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.peer_chosen = true;
        let runtime = ctx
            .runtime
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        let rr = &runtime.routes[ctx.route.unwrap_or_default()];
        let candidate = match ctx.attempts.next(rr, ctx.key_hash, Instant::now()) {
            Ok(candidate) => candidate,
            Err(error) => {
                ctx.failure = Some(error);
                return Err(Error::explain(
                    ErrorType::ConnectNoRoute,
                    "no candidate endpoint left",
                ));
            }
        };
        ctx.upstream_responded = false;
        ctx.interim = 0;
        let upstream = &rr.pool.as_ref().expect("routed to a pool").upstreams[candidate.index];
        let tls = rr.tls.as_deref().filter(|_| candidate.tls);
        let sni = match (candidate.tls, tls.and_then(|t| t.server_name.as_ref())) {
            (true, Some(name)) => name.clone(),
            (true, None) => upstream.sni.clone(),
            (false, _) => String::new(),
        };
        ctx.endpoint = Some((candidate.index, candidate.addr));
        let mut peer = HttpPeer::new(candidate.addr, candidate.tls, sni);
        let timeouts = &rr.route.backend.timeouts;
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.response);
        peer.options.write_timeout = Some(timeouts.response);
        if rr.route.backend.protocol.is_h2() {
            // h2 by ALPN over TLS; h2c with prior knowledge in plain text
            // (pingora's choice when HTTP/1 is not allowed and there is no TLS).
            peer.options.set_http_version(2, 2);
            peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
        }
        if let Some(tls) = tls {
            // `Arc` clones: the files were read when the table was built.
            peer.options.ca = tls.ca.clone();
            peer.client_cert_key = tls.client_cert_key.clone();
            peer.options.verify_cert = tls.verify;
            peer.options.verify_hostname = tls.verify;
            peer.group_key = tls.pool_key;
        }
        if ctx.upgrade {
            upgrade::awaiting_head(&mut peer, timeouts);
        }
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.reused = reused;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let runtime = ctx.runtime.clone();
        let Some(rr) = runtime.as_ref().zip(ctx.route).map(|(rt, i)| &rt.routes[i]) else {
            return e;
        };
        let error = ctx.attempts.connect_failed(rr);
        e.set_retry(error.retryable);
        if !error.retryable {
            ctx.failure = Some(error);
        }
        e
    }

    /// A fresh connection that broke before a response head counts against the
    /// endpoint (see `Attempts::broke_before_head`). The retry decision is
    /// pingora's default: idempotent requests on reused connections only.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let broke_before_head = !client_reused
            && !ctx.upstream_responded
            && ctx.failure.is_none()
            && e.esource() == &ErrorSource::Upstream
            && !matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            );
        if broke_before_head {
            if let Some(rr) = ctx.route() {
                ctx.attempts.broke_before_head(rr);
            }
        }
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(rr) = ctx.route() else {
            return Ok(());
        };
        let route_headers = &rr.route.request_headers;
        let dropped = fields_to_drop(&upstream.headers, |name, connection| {
            headers::drop_upstream(name, connection, route_headers, ctx.upgrade)
        });
        // `TE: trailers` is the one TE an HTTP/2 request may carry (RFC 9113
        // §8.2.2), and gRPC servers may require it: hop-by-hop, it is dropped
        // below and set again for HTTP/2 endpoints when the client sent it.
        let te_trailers = rr.route.backend.protocol.is_h2()
            && upstream.headers.get_all(header::TE).iter().any(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
            });
        let prior_for = upstream.headers.get("x-forwarded-for").cloned();
        let host = upstream.headers.get(header::HOST).cloned().or_else(|| {
            let authority = upstream.uri.authority()?;
            http::HeaderValue::from_str(authority.as_str()).ok()
        });
        if host.is_none() {
            // HTTP/1.0 may leave Host out; the endpoint gets HTTP/1.1, which
            // requires it (RFC 9112 §3.2).
            if let (Some((index, addr)), Some(pool)) = (ctx.endpoint, rr.pool.as_ref()) {
                let authority = headers::endpoint_authority(&pool.upstreams[index].sni, addr);
                upstream.insert_header(header::HOST, authority)?;
            }
        }
        for name in dropped {
            upstream.remove_header(&name);
        }
        let client = client_ip(session).map(IpText::new);
        let forwarded = Forwarded {
            prior_for: prior_for.as_ref().map(|v| v.as_bytes()),
            client: client.as_ref().map_or(&[][..], IpText::as_bytes),
            host: host.as_ref().map(|v| v.as_bytes()),
            proto: scheme(session),
        };
        let mut failed = None;
        forwarded.each(route_headers, |name, value| {
            if let Ok(value) = http::HeaderValue::from_bytes(value) {
                if let Err(e) = upstream.insert_header(name, value) {
                    failed.get_or_insert(e);
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        for (name, value) in route_headers {
            upstream.insert_header(name.clone(), value.as_str())?;
        }
        if ctx.upgrade {
            upstream.insert_header(header::CONNECTION, "upgrade")?;
        }
        if te_trailers {
            upstream.insert_header(header::TE, "trailers")?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = upstream.status.as_u16();
        let runtime = ctx.runtime.clone();
        let rr = runtime.as_ref().zip(ctx.route).map(|(rt, i)| &rt.routes[i]);
        if (100..200).contains(&status) && status != 101 {
            ctx.interim += 1;
            if ctx.interim <= MAX_INTERIM_RESPONSES {
                // As the fast path writes it: HTTP/1.1, no hop-by-hop fields.
                upstream.set_version(http::Version::HTTP_11);
                let dropped = fields_to_drop(&upstream.headers, |name, connection| {
                    headers::drop_downstream(name, connection, &[], false)
                });
                for name in dropped {
                    upstream.remove_header(&name);
                }
                return Ok(());
            }
        }
        let head_request = session.req_header().method == http::Method::HEAD;
        let checked = match ctx.interim > MAX_INTERIM_RESPONSES {
            true => Err(ProxyError::new(ErrorKind::BadResponse)),
            false => response::check_status(status, ctx.upgrade).and_then(|()| {
                response::framing(
                    status,
                    head_request,
                    upstream
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_bytes())),
                )
            }),
        };
        let framing = match checked {
            Ok(framing) => framing,
            Err(error) => {
                if let (Some(rr), false) = (rr, ctx.reused) {
                    ctx.attempts.broke_before_head(rr);
                }
                ctx.failure = Some(error);
                return Err(bad_response());
            }
        };
        ctx.upstream_responded = true;
        ctx.attempts.responded();
        ctx.close_delimited = framing == BodyFraming::UntilClose && status != 101;
        if let (101, Some(rr)) = (status, rr) {
            upgrade::tunnel_opened(session, &rr.route.backend.timeouts);
            ctx._tunnel = Some(upgrade::OpenTunnel::new(&self.plane.metrics.tunnels_open));
        }
        // The proxy speaks HTTP/1.1 to its client whatever the endpoint spoke.
        upstream.set_version(http::Version::HTTP_11);
        if framing == BodyFraming::Chunked {
            // pingora reads a body as chunked only when the last element of
            // the last Transfer-Encoding line is; where it would read the body
            // otherwise than the policy framed it, the response is refused.
            let pingora_chunked = upstream
                .headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .next_back()
                .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !pingora_chunked {
                if let (Some(rr), false) = (rr, ctx.reused) {
                    ctx.attempts.broke_before_head(rr);
                }
                ctx.failure = Some(ProxyError::new(ErrorKind::BadResponse));
                return Err(bad_response());
            }
            let codings: Vec<Vec<u8>> = upstream
                .headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .map(|v| headers::tidy_list(v.as_bytes()).into_owned())
                .filter(|v| !v.is_empty())
                .collect();
            upstream.remove_header(&header::TRANSFER_ENCODING);
            for coding in codings {
                upstream.append_header(header::TRANSFER_ENCODING, coding.as_slice())?;
            }
        }
        let Some(rr) = rr else {
            return Ok(());
        };
        let route_headers = &rr.route.response_headers;
        // pingora writes `Connection` itself (keep-alive or close) on every
        // final response; a 101 keeps the endpoint's `Connection: upgrade`.
        let dropped = fields_to_drop(&upstream.headers, |name, connection| {
            headers::drop_downstream(name, connection, route_headers, status == 101)
        });
        for name in dropped {
            upstream.remove_header(&name);
        }
        for (name, value) in route_headers {
            upstream.insert_header(name.clone(), value.as_str())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if ctx.close_delimited && !response.status.is_informational() {
            // Forwarded as it came, ending with the connection, as the
            // endpoint framed it (pingora would re-frame it chunked).
            response.remove_header(&header::TRANSFER_ENCODING);
            session.as_downstream_mut().set_keepalive(None);
        }
        Ok(())
    }

    /// Clients that go away mid-request are routine at an ingress; they are
    /// counted (`status_class="other"`) rather than logged as errors, as are
    /// bodies the client broke (`reason="bad_body"`) and our own rejections.
    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
            || matches!(error.etype(), ErrorType::HTTPStatus(_))
            || ctx.failure.is_some()
    }

    /// Retried connection failures are counted in `ringress_retries_total`;
    /// a log line each would cost more than the retry under an outage.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        _error: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        matches!(context, ProxyWarnLogContext::UpstreamRetry)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let error = ctx
            .failure
            .or_else(upgrade::timed_out)
            .unwrap_or_else(|| from_pingora(e));
        // pingora honours reuse only for errors before an upstream was chosen;
        // otherwise it closes, and the client should be told.
        let reusable_after = !ctx.peer_chosen;
        let reusable = self.answer(session, ctx, error, !reusable_after).await && reusable_after;
        FailToProxy {
            error_code: ctx.answered.unwrap_or(0),
            can_reuse_downstream: reusable,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // Free the endpoint first: the response is complete.
        ctx.attempts.release();
        // A response that failed after its head went out (upstream reset
        // mid-body, client gone) was not served: it counts as "other", not
        // under the status its head announced.
        // A tunnel served its 101 however it ends (either side closing,
        // idle, shutdown).
        let cut = e.is_some() && ctx.answered.is_none() && !session.was_upgraded();
        let status = match session.response_written() {
            _ if cut => 0,
            // The status the proxy decided, also when a gRPC answer carried
            // it as `grpc-status` under HTTP 200.
            _ if ctx.answered.is_some() => ctx.answered.unwrap_or(0),
            Some(r) if !r.status.is_informational() || r.status == 101 => r.status.as_u16(),
            _ => ctx.answered.unwrap_or(0),
        };
        let req = session.req_header();
        record::finish(
            &self.plane,
            ctx.route(),
            &ctx.attempts,
            &Finished {
                method: req.method.as_str(),
                host: RequestView { req, peer: None }.host(),
                path: req.uri.path(),
                client: client_ip(session),
                protocol: match req.version {
                    http::Version::HTTP_2 => "HTTP/2",
                    http::Version::HTTP_10 => "HTTP/1.0",
                    _ => "HTTP/1.1",
                },
                scheme: scheme(session),
                status,
                start: ctx.start,
            },
        );
    }
}
