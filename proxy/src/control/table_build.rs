//! Builds the routing table the data plane reads ([`Runtime`]) from a route
//! table, the endpoints discovered for its Services, and the admission queues.
use std::collections::HashMap;
use std::sync::Arc;

use ringress_ring::{build, Algorithm, Registry};
use ringress_routes::{BackendTarget, RouteTable, ServiceRef};

use crate::control::resolve::{EndpointTarget, Resolved};
use crate::control::upstream_tls::TlsFiles;
use crate::data::lifo::{LifoConfig, LifoMetrics, LifoQueue, LifoRegistry};
use crate::data::metrics::Metrics;
use crate::data::table::{Pool, RouteRuntime, Runtime, Upstream};

/// Endpoints discovered for Kubernetes Services; routes naming a Service read
/// their endpoint list from here.
pub type ServiceEndpoints = HashMap<ServiceRef, Vec<String>>;

/// What the build knows of endpoints beyond the route table: the Services'
/// endpoint lists, when an address new to the registry became ready
/// (the data plane's ms clock; 0 for "from the start"), and the routes' TLS
/// files, loaded with the route file.
#[derive(Clone, Copy)]
pub struct Discovered<'a> {
    pub services: &'a ServiceEndpoints,
    pub arrival: &'a dyn Fn(&str) -> u64,
    pub tls: &'a TlsFiles,
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

/// Joins `table` with balancers. Pools of `previous` whose endpoints and
/// settings are unchanged are reused as they are. Endpoint names take their
/// addresses from `resolved`: nothing here blocks. An endpoint new to
/// `registry` is ready since `discovered.arrival(address)` (for fade-in).
pub fn build_runtime(
    table: Arc<RouteTable>,
    discovered: Discovered<'_>,
    previous: &Runtime,
    registry: &Registry,
    metrics: &Metrics,
    queues: &Queues,
    resolved: &Resolved,
) -> Runtime {
    let Discovered {
        services,
        arrival,
        tls,
    } = discovered;
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
    for route in table.routes() {
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
                None => Arc::new(new_pool(
                    backend.algorithm,
                    factor,
                    addrs,
                    registry,
                    metrics,
                    resolved,
                    arrival,
                )),
            }
        });
        let tls_endpoints = pool
            .as_ref()
            .is_some_and(|p| p.upstreams.iter().any(|u| u.tls));
        routes.push(RouteRuntime {
            route: Arc::clone(route),
            not_plain_http1: tls_endpoints || backend.protocol.is_h2(),
            tls: tls.get(&route.name).cloned(),
            queues: route_queues.next().unwrap_or_default(),
            pool,
            metrics: metrics.route(&route.name),
            health: backend.passive_health_check.map(|c| c.policy()),
            fade_in: route.fade_in.map(|f| f.policy()),
        });
    }
    Runtime::new(table, routes)
}

fn new_pool(
    algorithm: Algorithm,
    factor: f64,
    addrs: &[String],
    registry: &Registry,
    metrics: &Metrics,
    resolved: &Resolved,
    arrival: &dyn Fn(&str) -> u64,
) -> Pool {
    let endpoints = addrs
        .iter()
        .map(|a| registry.endpoint_ready_since(a, arrival(a)))
        .collect();
    let upstreams: Vec<Upstream> = addrs
        .iter()
        .map(|a| upstream(a, metrics, resolved))
        .collect();
    Pool {
        balancer: build(algorithm, endpoints, factor),
        upstreams,
        addrs: addrs.to_vec(),
        factor_bits: factor.to_bits(),
    }
}

fn upstream(endpoint: &str, metrics: &Metrics, resolved: &Resolved) -> Upstream {
    let target = EndpointTarget::parse(endpoint);
    let addr = resolved.addr(target.authority);
    if addr.is_none() {
        log::error!("endpoint {endpoint}: address does not resolve; it will not be chosen");
    }
    Upstream {
        addr,
        tls: target.tls,
        sni: target.host.to_string(),
        latency: metrics.upstream(endpoint),
        ejections: metrics.ejections(endpoint),
    }
}
