//! The routing table in force: the compiled route table joined with each
//! route's balancer and upstream handles. The control plane builds it
//! (`control::table_build`) off the hot path and publishes it whole.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use pingora::protocols::tls::CaType;
use pingora::utils::tls::CertKey;
use prometheus::{Histogram, IntCounter};
use ringress_ring::{Balancer, FadeIn, HealthPolicy, Soft};
use ringress_routes::{Route, RouteTable};

use crate::data::lifo::LifoQueue;
use crate::data::metrics::RouteMetrics;

/// Where to connect for one balancer endpoint.
pub struct Upstream {
    /// `None` when the host did not resolve; the endpoint is then never chosen.
    pub addr: Option<SocketAddr>,
    pub tls: bool,
    pub sni: String,
    pub latency: Histogram,
    /// `ringress_endpoint_ejections_total` for this endpoint.
    pub ejections: IntCounter,
}

/// Milliseconds on a monotonic clock starting near process start: the time
/// passive health checking runs on (the ring crate reads no clock itself).
pub fn now_ms() -> u64 {
    ms_since_start(Instant::now())
}

/// [`now_ms`] for an instant the caller already read.
pub fn ms_since_start(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_millis() as u64
}

/// A balancer with the connection details of its endpoints (same indices).
pub struct Pool {
    pub balancer: Arc<dyn Balancer>,
    pub upstreams: Vec<Upstream>,
    /// The endpoint list it was built from, to recognise it on the next build.
    pub addrs: Vec<String>,
    pub factor_bits: u64,
}

/// How the proxy checks `https://` endpoints and presents itself to them:
/// loaded from the route's `backend.tls` files when the table is built, so a
/// request only clones `Arc`s into pingora's peer.
#[derive(Default)]
pub struct TlsClient {
    /// SNI and the name the certificate must hold; `None`: the endpoint's host.
    pub server_name: Option<String>,
    /// Trusted CAs; `None`: pingora's connector's roots (the system's).
    pub ca: Option<Arc<CaType>>,
    /// Certificate chain and key for mutual TLS.
    pub client_cert_key: Option<Arc<CertKey>>,
    /// `false` with `insecureSkipVerify: true`.
    pub verify: bool,
    /// Set as the peer's `group_key`: pingora's connection pool tells peers
    /// apart by address, SNI, client certificate and verify flags, not by
    /// the CAs trusted, so without it a connection verified against one
    /// route's CA could serve a route trusting others. A hash of the CA
    /// certificates: the same files keep their pooled connections across reloads.
    pub pool_key: u64,
}

pub struct RouteRuntime {
    pub route: Arc<Route>,
    /// The route's endpoints speak something other than plain HTTP/1 (TLS or
    /// HTTP/2): the fast path, which speaks only that, leaves it to pingora.
    pub not_plain_http1: bool,
    /// The route's `backend.tls`, loaded; `None`: the defaults.
    pub tls: Option<Arc<TlsClient>>,
    /// LIFO admission queues a request must pass, in order.
    pub queues: Vec<Arc<LifoQueue>>,
    /// `None` for `status` backends.
    pub pool: Option<Arc<Pool>>,
    pub metrics: Arc<RouteMetrics>,
    /// Passive health checking; `None` when the route turned it off (its
    /// picks then ignore ejections and its failures are not recorded).
    pub health: Option<HealthPolicy>,
    /// The route's `fadeIn` filter.
    pub fade_in: Option<FadeIn>,
}

impl RouteRuntime {
    /// The soft rules of this route's picks at `now_ms`.
    #[inline]
    pub fn soft(&self, now_ms: u64) -> Soft {
        Soft {
            now_ms,
            health: self.health.is_some(),
            fade_in: self.fade_in,
        }
    }
}

pub struct Runtime {
    pub table: Arc<RouteTable>,
    /// Parallel to `table.routes()`.
    pub routes: Vec<RouteRuntime>,
    by_name: HashMap<String, usize>,
}

impl Runtime {
    pub fn empty() -> Self {
        Self::new(Arc::new(RouteTable::empty()), Vec::new())
    }

    /// `routes` parallel to `table.routes()`.
    pub fn new(table: Arc<RouteTable>, routes: Vec<RouteRuntime>) -> Self {
        let by_name = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.route.name.clone(), i))
            .collect();
        Self {
            table,
            routes,
            by_name,
        }
    }

    pub fn route(&self, name: &str) -> Option<&RouteRuntime> {
        self.by_name.get(name).map(|&i| &self.routes[i])
    }

    /// Index of `route` (an `Arc` from `self.table`) in `self.routes`.
    pub fn index_of(&self, route: &Arc<Route>) -> Option<usize> {
        self.by_name.get(&route.name).copied()
    }
}
