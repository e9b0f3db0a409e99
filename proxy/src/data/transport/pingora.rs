//! The data plane: pingora's `ProxyHttp` driven by the route table.
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use ringress_ring::{hash_key, pick_admitted, Algorithm, InFlightGuard, PickContext};
use ringress_routes::{Match, RequestParts};

use crate::data::access_log;
use crate::data::lifo::{Permit, Rejection};
use crate::data::metrics::Reject;
use crate::data::policy::request::{
    add_forwarded, has_content_length, normalize_path, random_u64, strip_hop_by_hop, AboveRoot,
    RequestView,
};
use crate::data::table::{ms_since_start, now_ms, RouteRuntime, Runtime};
use crate::control::ingress::{ActiveRequest, Ingress};

pub struct Proxy {
    ingress: Arc<Ingress>,
    /// `--max-request-body`: larger bodies get 413.
    max_body: Option<u64>,
}

impl Proxy {
    pub fn new(ingress: Arc<Ingress>) -> Self {
        Self {
            ingress,
            max_body: None,
        }
    }

    pub fn with_max_body(mut self, max_body: Option<u64>) -> Self {
        self.max_body = max_body;
        self
    }

    /// Refuses what pingora's parser lets through but an ingress must not pass
    /// on: requests without Host, `Transfer-Encoding` with `Content-Length`
    /// (request smuggling), bodies declared over the limit, and paths climbing
    /// above the root. Resolves dot-segments and `//` in the path (see
    /// [`normalize_path`]) so routes match what the backend receives.
    fn screen(&self, session: &mut Session) -> Result<(), (Reject, u16, &'static str)> {
        let req = session.req_header();
        if req.version == http::Version::HTTP_11 && !req.headers.contains_key(header::HOST) {
            return Err((Reject::MissingHost, 400, "missing host\n"));
        }
        if req.headers.contains_key(header::TRANSFER_ENCODING)
            && has_content_length(&session.as_downstream().to_h1_raw())
        {
            return Err((Reject::Smuggling, 400, "bad request\n"));
        }
        if let Some(max) = self.max_body {
            let declared = req
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > max) {
                return Err((Reject::BodyTooLarge, 413, "request body too large\n"));
            }
        }
        match normalize_path(req.uri.path()) {
            Ok(None) => Ok(()),
            Ok(Some(path)) => {
                let uri = match req.uri.query() {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                };
                let uri =
                    http::Uri::try_from(uri).map_err(|_| (Reject::BadPath, 400, "bad path\n"))?;
                session.req_header_mut().set_uri(uri);
                Ok(())
            }
            Err(AboveRoot) => Err((Reject::BadPath, 400, "bad path\n")),
        }
    }
}

/// Why the proxy answered an error itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NoEndpoints,
    AllFailed,
}

pub struct Ctx {
    _active: ActiveRequest,
    start: Instant,
    runtime: Option<Arc<Runtime>>,
    route: usize,
    key_hash: u64,
    /// Endpoints whose connection failed during this request.
    tried: Vec<usize>,
    connect_failures: u32,
    endpoint: Option<usize>,
    upstream_start: Option<Instant>,
    guard: Option<InFlightGuard>,
    /// The chosen endpoint sent a response head.
    upstream_responded: bool,
    spilled: bool,
    /// `upstream_peer` ran at least once.
    peer_chosen: bool,
    failure: Option<Failure>,
    /// Status of a response the proxy wrote itself.
    answered: Option<u16>,
    /// LIFO admissions held: listener, route, group.
    permits: [Option<Permit>; 3],
    /// Request body bytes read so far (counted only with `--max-request-body`).
    body_bytes: u64,
}

impl Ctx {
    fn route(&self) -> Option<&RouteRuntime> {
        self.runtime.as_ref().map(|rt| &rt.routes[self.route])
    }
}

thread_local! {
    /// Reused key buffer: resolving a template allocates nothing per request.
    static KEY: RefCell<String> = RefCell::new(String::with_capacity(64));
}

/// The hash of the request's key on a consistent-hash route (0 on others).
pub(crate) fn key_hash_of<R: RequestParts>(rr: &RouteRuntime, m: &Match<'_, '_>, view: &R) -> u64 {
    match &rr.pool {
        Some(pool) if pool.balancer.algorithm() == Algorithm::ConsistentHash => KEY.with(|key| {
            let mut key = key.borrow_mut();
            rr.route.hash_key(m, view, &mut key);
            hash_key(key.as_bytes())
        }),
        _ => 0,
    }
}

enum Decision {
    Proxy { route: usize, key_hash: u64 },
    Answer(u16, &'static str),
}

/// Options of a response the proxy writes itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer {
    pub retry_after: bool,
    /// Say the connection closes after this response (when pingora will close it).
    pub close: bool,
}

/// Writes a complete one-line text response, keeping the connection alive
/// (pingora's `respond_error` would force `Connection: close`).
pub async fn answer(
    session: &mut Session,
    status: u16,
    body: &'static str,
    how: Answer,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    if how.retry_after {
        resp.insert_header(header::RETRY_AFTER, "1")?;
    }
    if how.close {
        // pingora writes `Connection` from the session's keep-alive state.
        session.as_downstream_mut().set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
            .await?;
    }
    Ok(())
}

/// Counts a connection failure of endpoint `i` for the passive health check;
/// an ejection is counted and logged once.
pub(crate) fn record_connection_failure(rr: &RouteRuntime, i: usize) {
    let (Some(policy), Some(pool)) = (&rr.health, &rr.pool) else {
        return;
    };
    let endpoint = &pool.balancer.endpoints()[i];
    if let Some(period) = endpoint.health().record_failure(now_ms(), policy) {
        pool.upstreams[i].ejections.inc();
        log::warn!(
            "endpoint {} ejected for {period}ms after consecutive connection failures (route {})",
            endpoint.addr(),
            rr.route.name
        );
    }
}

fn status_line(status: u16) -> &'static str {
    match status {
        200 => "ok\n",
        204 => "",
        301 | 302 | 307 | 308 => "redirect\n",
        400 => "bad request\n",
        413 => "request body too large\n",
        401 => "unauthorized\n",
        403 => "forbidden\n",
        404 => "not found\n",
        410 => "gone\n",
        429 => "too many requests\n",
        500 => "internal error\n",
        503 => "unavailable\n",
        _ => "\n",
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    /// No downstream modules: pingora's default adds a (disabled) compression
    /// module whose per-request context and filter calls we would only pay for.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        crate::data::transport::front::header_parsed();
        Ctx {
            _active: self.ingress.track_request(),
            start: Instant::now(),
            runtime: None,
            route: 0,
            key_hash: 0,
            tried: Vec::new(),
            connect_failures: 0,
            endpoint: None,
            upstream_start: None,
            guard: None,
            upstream_responded: false,
            spilled: false,
            peer_chosen: false,
            failure: None,
            answered: None,
            permits: Default::default(),
            body_bytes: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if let Err((reason, status, body)) = self.screen(session) {
            self.ingress.metrics.rejected.inc(reason);
            ctx.answered = Some(status);
            // Smuggling: the framing is in doubt; 413: the body stays unread.
            let close = matches!(reason, Reject::Smuggling | Reject::BodyTooLarge);
            let how = Answer {
                retry_after: false,
                close,
            };
            answer(session, status, body, how).await?;
            return Ok(true);
        }
        let runtime = self.ingress.runtime();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let decision = {
            let view = RequestView {
                req: session.req_header(),
                peer,
            };
            match runtime.table.find(&view) {
                None => Decision::Answer(404, "no route\n"),
                Some(m) => {
                    let index = runtime.index_of(m.route).expect("route of the same table");
                    let rr = &runtime.routes[index];
                    match &rr.pool {
                        None => match rr.route.backend.target {
                            ringress_routes::BackendTarget::Status(code) => {
                                Decision::Answer(code, status_line(code))
                            }
                            _ => Decision::Answer(500, "internal error\n"),
                        },
                        Some(pool) if pool.balancer.endpoints().is_empty() => {
                            Decision::Answer(503, "no endpoints\n")
                        }
                        Some(_) => {
                            let key_hash = key_hash_of(rr, &m, &view);
                            Decision::Proxy {
                                route: index,
                                key_hash,
                            }
                        }
                    }
                }
            }
        };
        match decision {
            Decision::Answer(status, body) => {
                ctx.answered = Some(status);
                if status != 404 {
                    // Keep the route for metrics and logs.
                    if let Some(m) = runtime.table.find(&RequestView {
                        req: session.req_header(),
                        peer,
                    }) {
                        ctx.route = runtime.index_of(m.route).unwrap_or(0);
                        ctx.runtime = Some(Arc::clone(&runtime));
                    }
                }
                answer(session, status, body, Answer::default()).await?;
                Ok(true)
            }
            Decision::Proxy { route, key_hash } => {
                ctx.route = route;
                ctx.key_hash = key_hash;
                let queues = self
                    .ingress
                    .listener_queue
                    .iter()
                    .chain(&runtime.routes[route].queues);
                ctx.runtime = Some(Arc::clone(&runtime));
                for (slot, queue) in queues.enumerate() {
                    match queue.acquire().await {
                        // Held in the context: released after the response is
                        // sent, or when the client goes away and the context drops.
                        Ok(permit) => ctx.permits[slot] = Some(permit),
                        Err(rejection) => {
                            let body = match rejection {
                                Rejection::Full => "queue full\n",
                                Rejection::Timeout => "queue timeout\n",
                            };
                            ctx.answered = Some(503);
                            ctx.permits = Default::default();
                            let how = Answer {
                                retry_after: true,
                                close: false,
                            };
                            answer(session, 503, body, how).await?;
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
        }
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
        if let (Some(max), Some(chunk)) = (self.max_body, body.as_ref()) {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > max {
                self.ingress.metrics.rejected.inc(Reject::BodyTooLarge);
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body over --max-request-body",
                ));
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.peer_chosen = true;
        let runtime = ctx
            .runtime
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        let rr = &runtime.routes[ctx.route];
        let pool = rr
            .pool
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "route has no pool"))?;
        let tried = &ctx.tried;
        let exclude = |i: usize| tried.contains(&i) || pool.upstreams[i].addr.is_none();
        let pick_ctx = PickContext {
            key_hash: ctx.key_hash,
            random: random_u64(),
        };
        let now = Instant::now();
        let pick = match rr.health {
            Some(_) => pick_admitted(&*pool.balancer, &pick_ctx, &exclude, ms_since_start(now)),
            None => pool.balancer.pick(&pick_ctx, &exclude),
        };
        let Some(pick) = pick else {
            let failure = if ctx.tried.is_empty() {
                Failure::NoEndpoints
            } else {
                Failure::AllFailed
            };
            ctx.failure = Some(failure);
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "no candidate endpoint left",
            ));
        };
        if pick.spilled() {
            ctx.spilled = true;
            rr.metrics.spills.inc();
        }
        let upstream = &pool.upstreams[pick.endpoint];
        let addr = upstream.addr.expect("unresolved endpoints are excluded");
        ctx.guard = Some(pool.balancer.endpoints()[pick.endpoint].acquire());
        ctx.endpoint = Some(pick.endpoint);
        ctx.upstream_responded = false;
        ctx.upstream_start = Some(now);
        let sni = if upstream.tls {
            upstream.sni.clone()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(addr, upstream.tls, sni);
        let timeouts = &rr.route.backend.timeouts;
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.response);
        peer.options.write_timeout = Some(timeouts.response);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let retries = match ctx.route() {
            Some(rr) => {
                rr.metrics.upstream_failures.inc();
                if let Some(i) = ctx.endpoint {
                    record_connection_failure(rr, i);
                }
                rr.route.backend.retries
            }
            None => 0,
        };
        if let Some(i) = ctx.endpoint.take() {
            ctx.tried.push(i);
        }
        ctx.guard = None;
        ctx.connect_failures += 1;
        if ctx.connect_failures <= retries {
            if let Some(rr) = ctx.route() {
                rr.metrics.retries.inc();
            }
            e.set_retry(true);
        } else {
            ctx.failure = Some(Failure::AllFailed);
            e.set_retry(false);
        }
        e
    }

    /// A fresh connection that broke before a response head counts against the
    /// endpoint like a failed connect (it accepts but cannot serve). Not on a
    /// reused connection (the endpoint may have closed it idle just then), and
    /// not a timeout (a slow answer, not a dead endpoint). The retry decision
    /// is pingora's default: idempotent requests on reused connections only.
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
            && e.esource() == &ErrorSource::Upstream
            && !matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            );
        if broke_before_head {
            if let (Some(rr), Some(i)) = (ctx.route(), ctx.endpoint) {
                record_connection_failure(rr, i);
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
        strip_hop_by_hop(upstream);
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        add_forwarded(upstream, client, "http");
        if let Some(rr) = ctx.route() {
            for (name, value) in &rr.route.request_headers {
                upstream.insert_header(name.clone(), value.as_str())?;
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_responded = true;
        if let Some(guard) = &ctx.guard {
            guard.endpoint().health().record_success();
        }
        // pingora writes `Connection` itself (keep-alive or close) on every
        // final response; a 101 keeps the upstream's `Connection: upgrade`.
        upstream.remove_header("keep-alive");
        upstream.remove_header("proxy-connection");
        if let Some(rr) = ctx.route() {
            for (name, value) in &rr.route.response_headers {
                upstream.insert_header(name.clone(), value.as_str())?;
            }
        }
        Ok(())
    }

    /// Clients that go away mid-request are routine at an ingress; they are
    /// counted (`status_class="other"`) rather than logged as errors, as are
    /// bodies the client broke (`reason="bad_body"`) and our own rejections.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
            || matches!(error.etype(), ErrorType::HTTPStatus(_))
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
        let (code, body): (u16, &'static str) = match ctx.failure {
            Some(Failure::NoEndpoints) => (503, "no endpoints\n"),
            Some(Failure::AllFailed) => (502, "all endpoints failed\n"),
            None => match (e.esource(), e.etype()) {
                (_, ErrorType::HTTPStatus(code)) => (*code, status_line(*code)),
                (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
                    (504, "upstream timeout\n")
                }
                (ErrorSource::Upstream, _) => (502, "upstream error\n"),
                (
                    ErrorSource::Downstream,
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                ) => (0, ""),
                (ErrorSource::Downstream, _) => {
                    self.ingress.metrics.rejected.inc(Reject::BadBody);
                    (400, "bad request\n")
                }
                _ => (500, "internal error\n"),
            },
        };
        // pingora honours reuse only for errors before an upstream was chosen;
        // otherwise it closes, and the client should be told.
        let reusable_after = !ctx.peer_chosen;
        let mut reusable = false;
        if code > 0 && session.response_written().is_none() {
            let how = Answer {
                retry_after: false,
                close: !reusable_after,
            };
            reusable = answer(session, code, body, how).await.is_ok() && reusable_after;
            ctx.answered = Some(code);
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: reusable,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // Free the endpoint first: the response is complete.
        ctx.guard = None;
        // A response that failed after its head went out (upstream reset
        // mid-body, client gone) was not served: it counts as "other", not
        // under the status its head announced.
        let cut = e.is_some() && ctx.answered.is_none();
        let status = match session.response_written() {
            _ if cut => 0,
            Some(r) => r.status.as_u16(),
            None => ctx.answered.unwrap_or(0),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(ctx.start);
        let method = session.req_header().method.as_str();
        let rr = ctx.route();
        let metrics = rr.map_or(&self.ingress.no_route, |rr| &rr.metrics);
        metrics.count(method, status);
        metrics.duration.observe(elapsed.as_secs_f64());
        let endpoint = match (rr, ctx.endpoint, ctx.upstream_start) {
            (Some(rr), Some(i), Some(t)) => rr.pool.as_ref().map(|pool| {
                let upstream = now.saturating_duration_since(t);
                pool.upstreams[i].latency.observe(upstream.as_secs_f64());
                pool.balancer.endpoints()[i].addr()
            }),
            _ => None,
        };
        if self.ingress.access_log {
            let req = session.req_header();
            access_log::write(&access_log::Entry {
                client: session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip()),
                method,
                host: RequestView { req, peer: None }.host(),
                path: req.uri.path(),
                route: rr.map(|r| r.route.name.as_str()),
                endpoint,
                status,
                spilled: ctx.spilled,
                retries: ctx.connect_failures,
                duration: elapsed,
            });
        }
    }
}
