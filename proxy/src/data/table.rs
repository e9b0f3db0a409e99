//! The routing state in force: the compiled route table joined with each
//! route's balancer and upstream handles. Built off the hot path and swapped
//! whole; unchanged balancers are carried over so their rings are not rebuilt.
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus::{Histogram, IntCounter};
use ringress_ring::{build, Algorithm, Balancer, HealthPolicy, Registry};
use ringress_routes::{BackendTarget, Route, RouteTable, ServiceRef};

use crate::data::lifo::{LifoConfig, LifoMetrics, LifoQueue, LifoRegistry};
use crate::data::metrics::{Metrics, RouteMetrics};

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
    /// Some endpoint speaks TLS (the fast path then leaves the route to pingora).
    pub any_tls: bool,
    /// The endpoint list it was built from, to recognise it on the next build.
    addrs: Vec<String>,
    factor_bits: u64,
}

/// Admission queues, kept by name across route-table reloads so waiters
/// survive a reload and settings apply to the next admissions.
pub struct Queues {
    routes: LifoRegistry,
    groups: LifoRegistry,
}

/// Group queues' metric label, apart from route queues of the same name.
pub fn group_queue_name(group: &str) -> String {
    format!("group:{group}")
}

impl Queues {
    pub fn new(metrics: Option<LifoMetrics>) -> Self {
        Self {
            routes: LifoRegistry::new(metrics.clone()),
            groups: LifoRegistry::new(metrics),
        }
    }

    /// The queues `table`'s routes use, in admission order (route, then group);
    /// queues no route names any more are dropped once idle.
    fn resolve(&self, table: &RouteTable) -> Vec<Vec<Arc<LifoQueue>>> {
        let mut route_names = Vec::new();
        let mut group_names = Vec::new();
        let queues = table
            .routes()
            .iter()
            .map(|route| {
                let mut queues = Vec::new();
                if let Some(spec) = &route.lifo {
                    queues.push(self.routes.get(&route.name, config(spec)));
                    route_names.push(route.name.as_str());
                }
                if let Some(group) = &route.lifo_group {
                    let name = group_queue_name(&group.name);
                    queues.push(self.groups.get(&name, config(&group.spec)));
                    group_names.push(name);
                }
                queues
            })
            .collect();
        self.routes.retain(route_names);
        self.groups.retain(group_names.iter().map(String::as_str));
        queues
    }
}

fn config(spec: &ringress_routes::LifoSpec) -> LifoConfig {
    LifoConfig {
        max_concurrency: spec.max_concurrency,
        max_queue_size: spec.max_queue_size,
        timeout: spec.timeout,
    }
}

pub struct RouteRuntime {
    pub route: Arc<Route>,
    /// LIFO admission queues a request must pass, in order.
    pub queues: Vec<Arc<LifoQueue>>,
    /// `None` for `status` backends.
    pub pool: Option<Arc<Pool>>,
    pub metrics: Arc<RouteMetrics>,
    /// Passive health checking; `None` when the route turned it off (its
    /// picks then ignore ejections and its failures are not recorded).
    pub health: Option<HealthPolicy>,
}

pub struct Runtime {
    pub table: Arc<RouteTable>,
    /// Parallel to `table.routes()`.
    pub routes: Vec<RouteRuntime>,
    by_name: HashMap<String, usize>,
}

/// Endpoints discovered for Kubernetes Services; routes naming a Service read
/// their endpoint list from here.
pub type ServiceEndpoints = HashMap<ServiceRef, Vec<String>>;

impl Runtime {
    pub fn empty() -> Self {
        Self {
            table: Arc::new(RouteTable::empty()),
            routes: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// Joins `table` with balancers. Pools of `previous` whose endpoints and
    /// settings are unchanged are reused as they are.
    pub fn build(
        table: Arc<RouteTable>,
        services: &ServiceEndpoints,
        previous: &Runtime,
        registry: &Registry,
        metrics: &Metrics,
        queues: &Queues,
    ) -> Self {
        let mut route_queues = queues.resolve(&table).into_iter();
        let mut reusable: HashMap<(Algorithm, u64, &[String]), &Arc<Pool>> = HashMap::new();
        for rt in &previous.routes {
            if let Some(pool) = &rt.pool {
                reusable.insert(
                    (pool.balancer.algorithm(), pool.factor_bits, &pool.addrs[..]),
                    pool,
                );
            }
        }
        let mut routes = Vec::with_capacity(table.routes().len());
        let mut by_name = HashMap::with_capacity(table.routes().len());
        for (i, route) in table.routes().iter().enumerate() {
            let backend = &route.backend;
            let addrs: Option<&[String]> = match &backend.target {
                BackendTarget::Endpoints(list) => Some(list),
                BackendTarget::Service(svc) => Some(services.get(svc).map_or(&[][..], |v| v)),
                BackendTarget::Status(_) => None,
            };
            let pool = addrs.map(|addrs| {
                let factor = if backend.algorithm == Algorithm::ConsistentHash {
                    route.balance_factor
                } else {
                    1.0
                };
                let key = (backend.algorithm, factor.to_bits(), addrs);
                match reusable.get(&key) {
                    Some(pool) => Arc::clone(pool),
                    None => Arc::new(Pool::new(
                        backend.algorithm,
                        factor,
                        addrs,
                        registry,
                        metrics,
                    )),
                }
            });
            by_name.insert(route.name.clone(), i);
            routes.push(RouteRuntime {
                route: Arc::clone(route),
                queues: route_queues.next().unwrap_or_default(),
                pool,
                metrics: metrics.route(&route.name),
                health: backend.passive_health_check.map(|c| c.policy()),
            });
        }
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

impl Pool {
    fn new(
        algorithm: Algorithm,
        factor: f64,
        addrs: &[String],
        registry: &Registry,
        metrics: &Metrics,
    ) -> Self {
        let endpoints = addrs.iter().map(|a| registry.endpoint(a)).collect();
        let upstreams: Vec<Upstream> = addrs
            .iter()
            .map(|a| Upstream::resolve(a, metrics))
            .collect();
        Self {
            balancer: build(algorithm, endpoints, factor),
            any_tls: upstreams.iter().any(|u| u.tls),
            upstreams,
            addrs: addrs.to_vec(),
            factor_bits: factor.to_bits(),
        }
    }
}

impl Upstream {
    fn resolve(endpoint: &str, metrics: &Metrics) -> Self {
        let (tls, rest) = match endpoint.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some((_, rest)) => (false, rest),
            None => (false, endpoint),
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => authority,
        };
        // Literal IPs parse without a lookup; names resolve once per ring build.
        let addr = authority
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| authority.to_socket_addrs().ok().and_then(|mut a| a.next()));
        if addr.is_none() {
            log::error!("endpoint {endpoint}: address does not resolve; it will not be chosen");
        }
        Self {
            addr,
            tls,
            sni: host.to_string(),
            latency: metrics.upstream(endpoint),
            ejections: metrics.ejections(endpoint),
        }
    }
}
