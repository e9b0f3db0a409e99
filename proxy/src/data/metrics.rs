//! Prometheus metrics. Per-route and per-endpoint handles are resolved once
//! when a runtime is built, so the hot path never looks up labels.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Latency buckets from 0.5 ms to 30 s: an ingress spans cache hits and slow batches.
/// From a second to four hours: WebSocket sessions, not requests.
const TUNNEL_BUCKETS: &[f64] = &[
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Reload buckets from 1 ms to 10 s: a handful of routes compiles in well under
/// a millisecond, thousands of routes with big rings take tens of milliseconds.
const RELOAD_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Methods with their own label value; anything else counts as "other".
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "other",
];
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Route label for requests that matched no route.
pub const NO_ROUTE: &str = "";

/// `outcome` labels of `ringress_retried_requests_total`, in `RouteMetrics::retried` order.
const RETRY_OUTCOMES: [&str; 2] = ["served", "failed"];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    tunnel_duration: HistogramVec,
    upstream_duration: HistogramVec,
    spills: IntCounterVec,
    retries: IntCounterVec,
    retried: IntCounterVec,
    upstream_failures: IntCounterVec,
    ejections: IntCounterVec,
    pub reloads: IntCounter,
    pub reload_failures: IntCounter,
    pub route_generation: IntGauge,
    pub reload_seconds: Histogram,
    /// Upgraded connections (WebSocket) open now.
    pub tunnels_open: IntGauge,
    /// TLS handshakes that did not complete: `[failed, timed out]`.
    pub tls_handshake_failures: [IntCounter; 2],
    pub rejected: Rejections,
    routes: Mutex<HashMap<String, Arc<RouteMetrics>>>,
}

/// Handles for one route, shared by every runtime that carries the route.
pub struct RouteMetrics {
    requests: IntCounterVec,
    name: String,
    /// `[method][status class]`, created on first use so idle combinations stay
    /// out of the exposition.
    counters: [[OnceLock<IntCounter>; STATUS_CLASSES.len()]; METHODS.len()],
    pub duration: Histogram,
    /// Upgraded connections' lifetimes, apart from `duration` (a WebSocket
    /// open for an hour is not a slow request); created on first use.
    tunnel_durations: HistogramVec,
    tunnel_duration: OnceLock<Histogram>,
    pub spills: IntCounter,
    pub retries: IntCounter,
    /// Requests that were retried, by how they ended: `[served, failed]`.
    pub retried: [IntCounter; 2],
    pub upstream_failures: IntCounter,
}

impl RouteMetrics {
    /// Records an upgraded connection's lifetime, from its request to its close.
    pub fn observe_tunnel(&self, seconds: f64) {
        self.tunnel_duration
            .get_or_init(|| self.tunnel_durations.with_label_values(&[&self.name]))
            .observe(seconds);
    }

    #[inline]
    pub fn count(&self, method: &str, status: u16) {
        let m = METHODS[..METHODS.len() - 1]
            .iter()
            .position(|&known| known == method)
            .unwrap_or(METHODS.len() - 1);
        let c = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.counters[m][c]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[&self.name, METHODS[m], STATUS_CLASSES[c]])
            })
            .inc();
    }
}

/// Why the proxy refused a request (`ringress_rejected_requests_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 400 from the HTTP/1 parser: malformed request line or header, invalid or
    /// conflicting `Content-Length`, unsupported `Transfer-Encoding`, ambiguous Host.
    BadRequest,
    /// 400: framing stated twice: `Transfer-Encoding` together with
    /// `Content-Length`, `Content-Length` repeated or a list, chunked twice.
    Smuggling,
    /// 400: an HTTP/1.1 request without a Host header.
    MissingHost,
    /// 400: a Host value that is not `host[:port]`.
    BadHost,
    /// 400: a path whose `..` segments climb above the root.
    BadPath,
    /// 400: a request line that is not `method SP target SP version`, or a
    /// target in neither origin nor absolute form.
    BadTarget,
    /// 400: with `--strict-paths`, a path backends read in more than one way.
    AmbiguousPath,
    /// 400: a request body that broke its framing (e.g. a bad chunk).
    BadBody,
    /// 405: CONNECT, which an ingress does not tunnel.
    MethodNotAllowed,
    /// 408: the request header did not arrive within `--request-header-timeout`.
    HeaderTimeout,
    /// The client closed or broke the connection in the middle of a request header.
    Incomplete,
    /// 413: a body over `--max-request-body`.
    BodyTooLarge,
    /// 431: a request header over `--max-request-header`.
    HeaderTooLarge,
}

impl Reject {
    pub const ALL: [Reject; 13] = [
        Reject::BadRequest,
        Reject::Smuggling,
        Reject::MissingHost,
        Reject::BadHost,
        Reject::BadPath,
        Reject::BadTarget,
        Reject::AmbiguousPath,
        Reject::BadBody,
        Reject::MethodNotAllowed,
        Reject::HeaderTimeout,
        Reject::Incomplete,
        Reject::BodyTooLarge,
        Reject::HeaderTooLarge,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::BadRequest => "bad_request",
            Reject::Smuggling => "smuggling",
            Reject::MissingHost => "missing_host",
            Reject::BadHost => "bad_host",
            Reject::BadPath => "bad_path",
            Reject::BadTarget => "bad_target",
            Reject::AmbiguousPath => "ambiguous_path",
            Reject::BadBody => "bad_body",
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::HeaderTimeout => "header_timeout",
            Reject::Incomplete => "incomplete",
            Reject::BodyTooLarge => "body_too_large",
            Reject::HeaderTooLarge => "header_too_large",
        }
    }
}

/// One pre-resolved counter per [`Reject`] reason, so every reason is exposed
/// from the start (at 0) and counting costs one atomic add.
pub struct Rejections([IntCounter; Reject::ALL.len()]);

impl Rejections {
    #[inline]
    pub fn inc(&self, reason: Reject) {
        self.0[reason as usize].inc();
    }

    pub fn get(&self, reason: Reject) -> u64 {
        self.0[reason as usize].get()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "ringress_requests_total",
                "Requests served, by route, method and status class",
            ),
            &["route", "method", "status_class"],
        )
        .unwrap();
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "ringress_request_duration_seconds",
                "Time from request headers to the end of the response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap();
        let tunnel_duration = HistogramVec::new(
            HistogramOpts::new(
                "ringress_tunnel_duration_seconds",
                "Lifetime of upgraded connections (WebSocket), from the request to the close, by route",
            )
            .buckets(TUNNEL_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap();
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "ringress_upstream_duration_seconds",
                "Time from choosing an endpoint to the end of its response, by endpoint",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .unwrap();
        let spills = IntCounterVec::new(
            Opts::new(
                "ringress_bounded_load_spills_total",
                "Requests served by another endpoint than their key's owner because of bounded load",
            ),
            &["route"],
        )
        .unwrap();
        let retries = IntCounterVec::new(
            Opts::new(
                "ringress_retries_total",
                "Connection failures retried on the next candidate",
            ),
            &["route"],
        )
        .unwrap();
        let retried = IntCounterVec::new(
            Opts::new(
                "ringress_retried_requests_total",
                "Requests retried after a connection failure, by outcome: served (a later \
                 endpoint answered) or failed (the retries ran out)",
            ),
            &["route", "outcome"],
        )
        .unwrap();
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                "ringress_upstream_connect_failures_total",
                "Failed connection attempts to endpoints, by route",
            ),
            &["route"],
        )
        .unwrap();
        let ejections = IntCounterVec::new(
            Opts::new(
                "ringress_endpoint_ejections_total",
                "Endpoints ejected by the passive health check after consecutive connection failures",
            ),
            &["endpoint"],
        )
        .unwrap();
        let reloads = IntCounter::new(
            "ringress_route_reloads_total",
            "Route tables compiled and put in force",
        )
        .unwrap();
        let reload_failures = IntCounter::new(
            "ringress_route_reload_failures_total",
            "Route files that failed to compile (the previous table stayed in force)",
        )
        .unwrap();
        let route_generation = IntGauge::new(
            "ringress_route_table_generation",
            "Generation of the route table in force",
        )
        .unwrap();
        let reload_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ringress_route_reload_seconds",
                "Time to compile a changed route file and put it in force (rings built, table swapped)",
            )
            .buckets(RELOAD_BUCKETS.to_vec()),
        )
        .unwrap();
        let tunnels_open = IntGauge::new(
            "ringress_tunnels_open",
            "Upgraded connections (WebSocket) open now",
        )
        .unwrap();
        let handshake_failures = IntCounterVec::new(
            Opts::new(
                "ringress_tls_handshake_failures_total",
                "TLS handshakes on the TLS listener that did not complete, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let tls_handshake_failures =
            ["error", "timeout"].map(|r| handshake_failures.with_label_values(&[r]));
        let rejected_vec = IntCounterVec::new(
            Opts::new(
                "ringress_rejected_requests_total",
                "Requests refused as malformed, ambiguous or over a limit, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let rejected =
            Rejections(Reject::ALL.map(|r| rejected_vec.with_label_values(&[r.label()])));
        for c in [
            Box::new(requests.clone()) as Box<dyn Collector>,
            Box::new(rejected_vec),
            Box::new(request_duration.clone()),
            Box::new(tunnel_duration.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(spills.clone()),
            Box::new(retries.clone()),
            Box::new(retried.clone()),
            Box::new(upstream_failures.clone()),
            Box::new(ejections.clone()),
            Box::new(reloads.clone()),
            Box::new(reload_failures.clone()),
            Box::new(route_generation.clone()),
            Box::new(reload_seconds.clone()),
            Box::new(tunnels_open.clone()),
            Box::new(handshake_failures),
        ] {
            registry.register(c).unwrap();
        }
        Self {
            registry,
            requests,
            request_duration,
            tunnel_duration,
            upstream_duration,
            spills,
            retries,
            retried,
            upstream_failures,
            ejections,
            reloads,
            reload_failures,
            route_generation,
            tls_handshake_failures,
            reload_seconds,
            tunnels_open,
            rejected,
            routes: Mutex::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles for `route`, created once per route name.
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = routes.get(route) {
            return Arc::clone(m);
        }
        let m = Arc::new(RouteMetrics {
            requests: self.requests.clone(),
            name: route.to_string(),
            counters: Default::default(),
            duration: self.request_duration.with_label_values(&[route]),
            tunnel_durations: self.tunnel_duration.clone(),
            tunnel_duration: OnceLock::new(),
            spills: self.spills.with_label_values(&[route]),
            retries: self.retries.with_label_values(&[route]),
            retried: RETRY_OUTCOMES.map(|o| self.retried.with_label_values(&[route, o])),
            upstream_failures: self.upstream_failures.with_label_values(&[route]),
        });
        routes.insert(route.to_string(), Arc::clone(&m));
        m
    }

    /// Drops the series of routes that left the table. Handles still held by
    /// in-flight requests of the old runtime stay valid but are detached.
    pub fn forget_route(&self, route: &str) {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(route);
        for method in METHODS {
            for class in STATUS_CLASSES {
                let _ = self.requests.remove_label_values(&[route, method, class]);
            }
        }
        let _ = self.request_duration.remove_label_values(&[route]);
        let _ = self.tunnel_duration.remove_label_values(&[route]);
        let _ = self.spills.remove_label_values(&[route]);
        let _ = self.retries.remove_label_values(&[route]);
        for outcome in RETRY_OUTCOMES {
            let _ = self.retried.remove_label_values(&[route, outcome]);
        }
        let _ = self.upstream_failures.remove_label_values(&[route]);
    }

    /// Drops the series of an endpoint no pool balances over any more: under
    /// pod churn they would otherwise pile up without bound.
    pub fn forget_endpoint(&self, endpoint: &str) {
        let _ = self.upstream_duration.remove_label_values(&[endpoint]);
        let _ = self.ejections.remove_label_values(&[endpoint]);
    }

    pub fn upstream(&self, endpoint: &str) -> Histogram {
        self.upstream_duration.with_label_values(&[endpoint])
    }

    pub fn ejections(&self, endpoint: &str) -> IntCounter {
        self.ejections.with_label_values(&[endpoint])
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&families, &mut out)
            .expect("text encoding of gathered metrics");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A collector whose samples are computed at scrape time by a closure, for
/// values that already live elsewhere (in-flight counts in the endpoint
/// registry, endpoints per route in the runtime) and so cost nothing per request.
pub struct ScrapeGauge<F> {
    desc: Desc,
    label: &'static str,
    read: F,
}

impl<F> ScrapeGauge<F>
where
    F: Fn() -> Vec<(String, f64)> + Send + Sync,
{
    pub fn new(name: &str, help: &str, label: &'static str, read: F) -> Self {
        let desc = Desc::new(name.into(), help.into(), vec![label.into()], HashMap::new())
            .expect("valid metric description");
        Self { desc, label, read }
    }
}

impl<F> Collector for ScrapeGauge<F>
where
    F: Fn() -> Vec<(String, f64)> + Send + Sync,
{
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        use prometheus::proto::{Gauge, LabelPair, Metric, MetricType};
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::GAUGE);
        for (label, value) in (self.read)() {
            let mut pair = LabelPair::default();
            pair.set_name(self.label.to_string());
            pair.set_value(label);
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            let mut metric = Metric::default();
            metric.set_label(vec![pair]);
            metric.set_gauge(gauge);
            family.mut_metric().push(metric);
        }
        vec![family]
    }
}
