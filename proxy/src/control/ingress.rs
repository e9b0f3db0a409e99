//! The control plane's state: the route source, discovered endpoints and the
//! admission queues, from which it builds the routing table and publishes it
//! to the data plane ([`DataPlane`]). Rebuilds are serialised so the last
//! change always wins; name lookups happen before the rebuild lock is taken.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ringress_ring::Registry;
use ringress_routes::{BackendTarget, RouteErrors, RouteSource, RouteTable, ServiceRef};

use crate::control::resolve::Resolved;
use crate::control::table_build::{build_runtime, Discovered, Queues, ServiceEndpoints};
use crate::control::upstream_tls::TlsFiles;
use crate::data::lifo::{LifoConfig, LifoMetrics, LifoQueue};
use crate::data::metrics::{Metrics, ScrapeGauge};
use crate::data::plane::DataPlane;
use crate::data::table::{now_ms, Runtime};

/// Told which Services the route table references, so it can watch them.
pub trait ServiceWatch: Send + Sync {
    fn set_services(&self, services: HashSet<ServiceRef>);
    /// Services whose endpoints have not been listed yet (for `/readyz`).
    fn unsynced(&self) -> Vec<String>;
}

pub struct Ingress {
    source: RouteSource,
    /// What the transports read: the table in force, metrics, queues.
    pub data: Arc<DataPlane>,
    pub registry: Registry,
    queues: Queues,
    services: Mutex<ServiceEndpoints>,
    /// Per Service, when its endpoints became ready (the data plane's ms clock).
    ready_since: Mutex<HashMap<ServiceRef, HashMap<String, u64>>>,
    /// Addresses of the endpoint names in the route file, looked up before
    /// each rebuild (never under `rebuild`, never on a runtime thread).
    resolved: Mutex<Arc<Resolved>>,
    /// The TLS files the table in force names, loaded with it.
    tls_files: Mutex<Arc<TlsFiles>>,
    /// Serialises rebuilds so the last change always wins.
    rebuild: Mutex<()>,
    service_watch: OnceLock<Arc<dyn ServiceWatch>>,
    draining: AtomicBool,
}

impl Ingress {
    /// Fails when a file the table's `backend.tls` names cannot be used.
    pub fn new(
        origin: &str,
        table: RouteTable,
        access_log: bool,
        listener_limit: Option<LifoConfig>,
    ) -> Result<Arc<Self>, RouteErrors> {
        // Start-up: no runtime runs yet, blocking reads are fine here.
        let tls_files = Arc::new(TlsFiles::load(origin, &table)?);
        let metrics = Metrics::new();
        let lifo_metrics =
            LifoMetrics::new(metrics.registry()).expect("lifo metrics register once");
        let listener_queue =
            listener_limit.map(|config| LifoQueue::new("listener", config, Some(&lifo_metrics)));
        let queues = Queues::new(Some(lifo_metrics));
        let source = RouteSource::new(origin, table);
        let table = source.current();
        let registry = Registry::new();
        // Start-up: no runtime runs yet, a blocking lookup is fine here.
        let resolved = Arc::new(Resolved::lookup(&table, None));
        let discovered = Discovered {
            services: &ServiceEndpoints::new(),
            // The first table's endpoints were there from the start: nothing
            // to fade in from.
            arrival: &|_: &str| 0,
            tls: &tls_files,
        };
        let runtime = build_runtime(
            Arc::clone(&table),
            discovered,
            &Runtime::empty(),
            &registry,
            &metrics,
            &queues,
            &resolved,
        );
        let data = Arc::new(DataPlane::new(metrics, listener_queue, access_log));
        data.publish(Arc::new(runtime));
        let ingress = Arc::new(Self {
            source,
            data,
            registry,
            queues,
            services: Mutex::new(ServiceEndpoints::new()),
            ready_since: Mutex::default(),
            resolved: Mutex::new(resolved),
            tls_files: Mutex::new(tls_files),
            rebuild: Mutex::new(()),
            service_watch: OnceLock::new(),
            draining: AtomicBool::new(false),
        });
        ingress.metrics().reloads.inc();
        ingress.register_scrape_gauges();
        Ok(ingress)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.data.metrics
    }

    /// The runtime in force; cheap, never blocks.
    #[inline]
    pub fn runtime(&self) -> Arc<Runtime> {
        self.data.runtime()
    }

    pub fn generation(&self) -> u64 {
        self.source.generation()
    }

    /// Compiles a new route file text and puts it in force; on errors (in
    /// the text or in a TLS file it names) the previous table stays and the
    /// failure is counted. Reads TLS files and looks up endpoint names
    /// (blocking): call it off the runtime threads (`spawn_blocking`).
    pub fn reload(&self, text: &str) -> Result<(), RouteErrors> {
        let origin = self.source.origin();
        let compiled = RouteTable::parse(origin, text)
            .and_then(|table| Ok((TlsFiles::load(origin, &table)?, table)));
        match compiled {
            Ok((tls_files, table)) => {
                let table = Arc::new(table);
                self.source.publish(Arc::clone(&table));
                *self.tls_files.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(tls_files);
                self.metrics().reloads.inc();
                let previous = Arc::clone(&self.resolved.lock().unwrap_or_else(|e| e.into_inner()));
                let resolved = Arc::new(Resolved::lookup(&table, Some(&previous)));
                *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = resolved;
                self.rebuild_with(Some(table));
                Ok(())
            }
            Err(errors) => {
                self.metrics().reload_failures.inc();
                Err(errors)
            }
        }
    }

    /// New endpoints for a Service: only routes whose endpoint list changed get
    /// new rings.
    /// The ready endpoints of `service`, each with the time it became ready
    /// (`ready_since`, parallel; the data plane's ms clock, 0 for "from the start").
    pub fn set_service_endpoints(
        &self,
        service: &ServiceRef,
        endpoints: Vec<String>,
        ready_since: Vec<u64>,
    ) {
        {
            let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
            if services.get(service) == Some(&endpoints) {
                return;
            }
            let since = endpoints.iter().cloned().zip(ready_since).collect();
            self.ready_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(service.clone(), since);
            services.insert(service.clone(), endpoints);
        }
        self.rebuild_with(None);
    }

    pub fn set_service_watch(&self, watch: Arc<dyn ServiceWatch>) {
        let _ = self.service_watch.set(watch);
        self.announce_services(&self.runtime().table);
    }

    pub fn unsynced_services(&self) -> Vec<String> {
        self.service_watch
            .get()
            .map(|w| w.unsynced())
            .unwrap_or_default()
    }

    /// Metric series of routes and endpoints that `next` no longer has.
    fn forget_removed(&self, previous: &Runtime, next: &Runtime) {
        let endpoints = |rt: &Runtime| -> HashSet<String> {
            rt.routes
                .iter()
                .filter_map(|r| r.pool.as_ref())
                .flat_map(|pool| pool.balancer.endpoints().iter())
                .map(|e| e.addr().to_string())
                .collect()
        };
        let kept = endpoints(next);
        for gone in endpoints(previous).difference(&kept) {
            self.metrics().forget_endpoint(gone);
        }
        for route in &previous.routes {
            if next.route(&route.route.name).is_none() {
                self.metrics().forget_route(&route.route.name);
            }
        }
    }

    fn rebuild_with(&self, table: Option<Arc<RouteTable>>) {
        let resolved = Arc::clone(&self.resolved.lock().unwrap_or_else(|e| e.into_inner()));
        let _serial = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        // Under the rebuild lock: a reload stores its files before it
        // rebuilds, so a table is never built with older files than its own.
        let tls_files = Arc::clone(&self.tls_files.lock().unwrap_or_else(|e| e.into_inner()));
        let previous = self.runtime();
        let table = table.unwrap_or_else(|| Arc::clone(&previous.table));
        let services = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ready_since = self.ready_since.lock().unwrap_or_else(|e| e.into_inner());
        // Discovery says when its endpoints became ready; an endpoint a route
        // file adds became ready now.
        let now = now_ms().max(1);
        let arrival = |addr: &str| {
            ready_since
                .values()
                .find_map(|service| service.get(addr).copied())
                .unwrap_or(now)
        };
        let discovered = Discovered {
            services: &services,
            arrival: &arrival,
            tls: &tls_files,
        };
        let next = build_runtime(
            Arc::clone(&table),
            discovered,
            &previous,
            &self.registry,
            self.metrics(),
            &self.queues,
            &resolved,
        );
        drop(ready_since);
        let next = Arc::new(next);
        self.data.publish(Arc::clone(&next));
        self.forget_removed(&previous, &next);
        drop(previous);
        self.registry.prune();
        self.metrics()
            .route_generation
            .set(self.source.generation() as i64);
        self.announce_services(&table);
    }

    fn announce_services(&self, table: &RouteTable) {
        if let Some(watch) = self.service_watch.get() {
            let services = table
                .routes()
                .iter()
                .filter_map(|r| match &r.backend.target {
                    BackendTarget::Service(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            watch.set_services(services);
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Downstream requests being handled right now.
    pub fn active_requests(&self) -> usize {
        self.data.active_requests()
    }

    fn register_scrape_gauges(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let in_flight = ScrapeGauge::new(
            "ringress_endpoint_in_flight",
            "Requests in flight to each endpoint",
            "endpoint",
            move || {
                weak.upgrade().map_or_else(Vec::new, |ingress| {
                    ingress
                        .registry
                        .snapshot()
                        .into_iter()
                        .map(|e| (e.addr().to_string(), e.in_flight() as f64))
                        .collect()
                })
            },
        );
        let weak = Arc::downgrade(self);
        let ejected = ScrapeGauge::new(
            "ringress_endpoint_ejected",
            "1 while the passive health check keeps an endpoint out of picks, else 0",
            "endpoint",
            move || {
                weak.upgrade().map_or_else(Vec::new, |ingress| {
                    let now = crate::data::table::now_ms();
                    ingress
                        .registry
                        .snapshot()
                        .into_iter()
                        .map(|e| {
                            let ejected = e.health().is_ejected(now);
                            (e.addr().to_string(), f64::from(u8::from(ejected)))
                        })
                        .collect()
                })
            },
        );
        let weak = Arc::downgrade(self);
        let endpoints = ScrapeGauge::new(
            "ringress_route_endpoints",
            "Endpoints each route balances over",
            "route",
            move || {
                weak.upgrade().map_or_else(Vec::new, |ingress| {
                    ingress
                        .runtime()
                        .routes
                        .iter()
                        .filter_map(|r| {
                            let pool = r.pool.as_ref()?;
                            Some((r.route.name.clone(), pool.balancer.endpoints().len() as f64))
                        })
                        .collect()
                })
            },
        );
        let weak = Arc::downgrade(self);
        let active = ScrapeGauge::new(
            "ringress_active_requests",
            "Downstream requests being handled",
            "listener",
            move || {
                weak.upgrade().map_or_else(Vec::new, |ingress| {
                    vec![("proxy".to_string(), ingress.active_requests() as f64)]
                })
            },
        );
        let registry = self.metrics().registry();
        registry.register(Box::new(in_flight)).unwrap();
        registry.register(Box::new(ejected)).unwrap();
        registry.register(Box::new(endpoints)).unwrap();
        registry.register(Box::new(active)).unwrap();
    }
}
