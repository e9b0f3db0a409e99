//! Joins Kubernetes discovery to the rings: routes name Services, discovery
//! watches their EndpointSlices, and endpoint changes rebuild the affected rings.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use ringress_routes::{PortRef, ServiceRef};

use crate::control::discovery::{
    self, Discovery, DiscoveryMetrics, EndpointsSink, PortSpec, ServiceTarget,
};
use crate::control::ingress::{Ingress, ServiceWatch};
use crate::data::table::now_ms;

/// How long to wait before trying again to build a Kubernetes client.
const CLIENT_RETRY: Duration = Duration::from_secs(5);

pub fn target_of(service: &ServiceRef) -> ServiceTarget {
    let port = match &service.port {
        PortRef::Name(name) => PortSpec::Name(name.clone()),
        PortRef::Number(n) => PortSpec::Number(*n),
    };
    ServiceTarget::new(service.namespace.clone(), service.name.clone(), port)
}

fn service_of(target: &ServiceTarget) -> ServiceRef {
    let port = match &target.port {
        PortSpec::Name(name) => PortRef::Name(name.clone()),
        PortSpec::Number(n) => PortRef::Number(*n),
    };
    ServiceRef {
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        port,
    }
}

/// The proxy's side of discovery: remembers which Services routes want (even
/// before a Kubernetes client exists) and passes endpoint changes to the rings.
pub struct KubeBridge {
    ingress: Weak<Ingress>,
    wanted: Mutex<HashSet<ServiceRef>>,
    discovery: OnceLock<Arc<Discovery>>,
}

impl KubeBridge {
    pub fn new(ingress: &Arc<Ingress>) -> Arc<Self> {
        Arc::new(Self {
            ingress: Arc::downgrade(ingress),
            wanted: Mutex::new(HashSet::new()),
            discovery: OnceLock::new(),
        })
    }

    fn wanted(&self) -> HashSet<ServiceRef> {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Builds the client (retrying while the cluster is unreachable or the
    /// configuration missing, as long as some route needs it) and runs the
    /// watches until the process ends.
    pub async fn run(self: Arc<Self>, kubeconfig: Option<PathBuf>, metrics: DiscoveryMetrics) {
        let mut warned = false;
        let client = loop {
            match discovery::client(kubeconfig.as_deref()).await {
                Ok(client) => break client,
                Err(e) => {
                    // Without Service routes a missing cluster is normal, not news.
                    if !self.wanted().is_empty() && !warned {
                        log::warn!("kubernetes discovery: {e}; retrying every {CLIENT_RETRY:?}");
                        warned = true;
                    }
                    tokio::time::sleep(CLIENT_RETRY).await;
                }
            }
        };
        let sink: Arc<dyn EndpointsSink> = Arc::clone(&self) as Arc<dyn EndpointsSink>;
        let discovery = Arc::new(Discovery::new(client, sink, metrics));
        discovery.set_services(self.wanted().iter().map(target_of));
        let _ = self.discovery.set(Arc::clone(&discovery));
        discovery.run(std::future::pending::<()>()).await;
    }
}

impl ServiceWatch for KubeBridge {
    fn set_services(&self, services: HashSet<ServiceRef>) {
        if let Some(discovery) = self.discovery.get() {
            discovery.set_services(services.iter().map(target_of));
        }
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = services;
    }

    fn unsynced(&self) -> Vec<String> {
        let wanted = self.wanted();
        let mut unsynced: Vec<String> = match self.discovery.get() {
            None => wanted.iter().map(|s| target_of(s).to_string()).collect(),
            Some(discovery) => discovery
                .sync_status()
                .into_iter()
                .filter(|(target, synced)| !synced && wanted.contains(&service_of(target)))
                .map(|(target, _)| target.to_string())
                .collect(),
        };
        unsynced.sort();
        unsynced
    }
}

impl EndpointsSink for KubeBridge {
    fn endpoints_changed(
        &self,
        service: &ServiceTarget,
        endpoints: &[String],
        ready_since: &[SystemTime],
    ) {
        if let Some(ingress) = self.ingress.upgrade() {
            let since = ready_since.iter().map(|&t| ready_since_ms(t)).collect();
            ingress.set_service_endpoints(&service_of(service), endpoints.to_vec(), since);
        }
    }
}

/// A wall-clock time as the data plane's millisecond clock ([`now_ms`]);
/// 0 ("there from the start") for times before this process started.
fn ready_since_ms(at: SystemTime) -> u64 {
    let age = SystemTime::now()
        .duration_since(at)
        .unwrap_or_default()
        .as_millis() as u64;
    now_ms().checked_sub(age).map_or(0, |ms| ms.max(1))
}
