//! Kubernetes endpoint discovery: one EndpointSlice watch per Service a route names, pushing
//! each Service port's ready endpoints to the proxy as they change.
//!
//! RBAC: `get`, `list`, `watch` on `endpointslices.discovery.k8s.io` — nothing else is read.

mod addresses;
mod backoff;
mod client;
mod metrics;
mod service_watch;
mod slice_set;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::addresses::{ready_address_times, ready_addresses, SliceTimes};
pub use self::backoff::RetryBackoff;
pub use self::client::{client, ClientError};
pub use self::metrics::DiscoveryMetrics;
pub use self::target::{PortSpec, ServiceTarget, SERVICE_NAME_LABEL};

use self::service_watch::ServiceWatch;

/// Where discovered endpoints go (the proxy's ring registry).
pub trait EndpointsSink: Send + Sync + 'static {
    /// The ready endpoints of `service` changed (sorted, deduplicated), each with the time it
    /// became ready as far as the EndpointSlices tell (`ready_since`, parallel to `endpoints`).
    /// Called from a tokio task; must not block long.
    fn endpoints_changed(
        &self,
        service: &ServiceTarget,
        endpoints: &[String],
        ready_since: &[std::time::SystemTime],
    );
}

/// The wanted services, each with the flag its watch sets once its first list is done.
type Wanted = BTreeMap<ServiceTarget, Arc<AtomicBool>>;

/// Watches the EndpointSlices of a changing set of services.
///
/// `set_services` and `sync_status` may be called from any thread; the watches themselves run
/// inside [`Discovery::run`], on whatever tokio runtime polls it.
pub struct Discovery {
    client: kube::Client,
    sink: Arc<dyn EndpointsSink>,
    metrics: DiscoveryMetrics,
    backoff: RetryBackoff,
    // A watch channel keeps only the latest wish, which is all `run` needs.
    wanted: watch::Sender<Wanted>,
}

impl Discovery {
    pub fn new(
        client: kube::Client,
        sink: Arc<dyn EndpointsSink>,
        metrics: DiscoveryMetrics,
    ) -> Self {
        Self {
            client,
            sink,
            metrics,
            backoff: RetryBackoff::default(),
            wanted: watch::Sender::new(Wanted::new()),
        }
    }

    /// Replaces how failed lists and watches are retried (default: kube's `DefaultBackoff`).
    pub fn with_backoff(mut self, backoff: RetryBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the set of watched services: watches start for new ones and stop for removed
    /// ones. Services kept keep their watch and their sync state.
    pub fn set_services(&self, services: impl IntoIterator<Item = ServiceTarget>) {
        let mut next: Wanted = services
            .into_iter()
            .map(|service| (service, Arc::default()))
            .collect();
        self.wanted.send_modify(|wanted| {
            for (service, synced) in next.iter_mut() {
                if let Some(kept) = wanted.get(service) {
                    *synced = kept.clone();
                }
            }
            *wanted = next;
        });
    }

    /// Per wanted service: has its initial list completed (ever)? For `/readyz`.
    pub fn sync_status(&self) -> Vec<(ServiceTarget, bool)> {
        self.wanted
            .borrow()
            .iter()
            .map(|(service, synced)| (service.clone(), synced.load(Ordering::Relaxed)))
            .collect()
    }

    /// Runs the watches until `shutdown` completes, then stops them all.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut wanted = self.wanted.subscribe();
        let mut running = RunningWatches::default();
        tokio::pin!(shutdown);
        loop {
            let services = wanted.borrow_and_update().clone();
            running.reconcile(&services, |service, synced| self.spawn(service, synced));
            tokio::select! {
                () = &mut shutdown => break,
                changed = wanted.changed() => {
                    // Unreachable while `self` holds the sender, but never spin if it were.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        running.stop_all();
    }

    fn spawn(&self, target: ServiceTarget, synced: Arc<AtomicBool>) -> JoinHandle<()> {
        log::info!("discovery: watching EndpointSlices of {target}");
        tokio::spawn(
            ServiceWatch {
                client: self.client.clone(),
                target,
                sink: self.sink.clone(),
                metrics: self.metrics.clone(),
                synced,
                backoff: self.backoff,
            }
            .run(),
        )
    }
}

/// The watch tasks `run` has started, keyed by service.
#[derive(Default)]
struct RunningWatches {
    tasks: HashMap<ServiceTarget, (Arc<AtomicBool>, JoinHandle<()>)>,
}

impl RunningWatches {
    fn reconcile(
        &mut self,
        wanted: &Wanted,
        mut spawn: impl FnMut(ServiceTarget, Arc<AtomicBool>) -> JoinHandle<()>,
    ) {
        // A service removed and re-added between two looks has a fresh flag: restart its watch
        // so the flag `sync_status` reads is the one being set.
        self.tasks.retain(|service, (synced, task)| {
            let keep = wanted
                .get(service)
                .is_some_and(|wanted_flag| Arc::ptr_eq(wanted_flag, synced));
            if !keep {
                log::info!("discovery: stopped watching {service}");
                task.abort();
            }
            keep
        });
        for (service, synced) in wanted {
            if !self.tasks.contains_key(service) {
                let task = spawn(service.clone(), synced.clone());
                self.tasks.insert(service.clone(), (synced.clone(), task));
            }
        }
    }

    fn stop_all(&mut self) {
        for (_, (_, task)) in self.tasks.drain() {
            task.abort();
        }
    }
}
