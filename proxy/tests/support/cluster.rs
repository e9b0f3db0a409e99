//! Pods of one Service behind the in-test Kubernetes API server: real backends
//! on distinct loopback IPs (127.0.0.2, .3, …) sharing one port, as pods of a
//! Deployment share a container port, and the binary following their slices.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::k8s_apiserver::{slice, Ep, FakeApiServer};
use super::{eventually, free_port, Backend, Ringress};

/// A route table naming Service `shop/web`, port `http`, keyed by `{id}`.
pub const SERVICE_ROUTES: &str = r#"routes:
  - name: web
    match: {path: "/products/{id}"}
    filters:
      - consistentHashKey: "${id}"
    backend:
      service: {namespace: shop, name: web, port: http}
      retries: 1
"#;

pub struct Cluster {
    pub api: FakeApiServer,
    pub port: u16,
    pub pods: Vec<Backend>,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Starts the API server and `pods` backends, each named by its IP.
    pub fn new(pods: usize) -> Self {
        let api = FakeApiServer::start_blocking();
        let port = free_port();
        let pods = (0..pods)
            .map(|i| {
                let ip = format!("127.0.0.{}", i + 2);
                Backend::start_on(&ip, SocketAddr::new(ip.parse().unwrap(), port))
            })
            .collect();
        let dir = super::process::temp_dir("kube");
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig);
        Self {
            api,
            port,
            pods,
            kubeconfig,
        }
    }

    pub fn ip(&self, i: usize) -> String {
        format!("127.0.0.{}", i + 2)
    }

    /// Pod `i`'s endpoint as ringress names it: `http://IP:PORT`.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}:{}", self.ip(i), self.port)
    }

    /// Publishes one slice `web-abc` of Service `web` with the given pods' conditions.
    pub fn publish(&self, eps: Vec<Ep>) {
        self.api.apply(
            "shop",
            slice("web-abc", "web", &[("http", self.port as i32)], &eps),
        );
    }

    /// The binary with [`SERVICE_ROUTES`], following this cluster.
    pub fn proxy(&self) -> Ringress {
        self.proxy_with(SERVICE_ROUTES)
    }

    pub fn proxy_with(&self, routes: &str) -> Ringress {
        Ringress::start_with(routes, &["--kubeconfig", self.kubeconfig.to_str().unwrap()])
    }
}

/// The endpoint addresses of the first route in force, from admin `/routes`.
pub fn ring_endpoints(proxy: &Ringress) -> HashSet<String> {
    let routes = proxy.admin_get("/routes").body;
    let v: serde_json::Value = serde_json::from_str(&routes).unwrap();
    v["routes"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the first route's endpoints are exactly `want`; returns how long that took.
pub fn wait_for_endpoints(proxy: &Ringress, want: &[String]) -> Duration {
    let start = Instant::now();
    let want: HashSet<String> = want.iter().cloned().collect();
    eventually(
        Duration::from_secs(20),
        "the ring to follow the change",
        || (ring_endpoints(proxy) == want).then_some(()),
    );
    start.elapsed()
}
