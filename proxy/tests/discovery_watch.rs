//! Endpoint discovery against an API server: the real kube client and watcher, talking HTTP
//! to the in-test fake API server of `support/k8s_apiserver.rs` (no cluster can run here).

#[path = "support/k8s_apiserver.rs"]
mod k8s_apiserver;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_apiserver::{not_ready, ready, slice, terminating, unknown, FakeApiServer};
use prometheus::proto::MetricType;
use prometheus::Registry;
use ringress::control::discovery::{
    Discovery, DiscoveryMetrics, EndpointsSink, PortSpec, RetryBackoff, ServiceTarget,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NS: &str = "shop";
/// Generous: the machine is shared; propagation is measured and printed, not raced.
const WAIT: Duration = Duration::from_secs(10);

fn target(name: &str, port: &str) -> ServiceTarget {
    ServiceTarget::new(NS, name, PortSpec::Name(port.to_string()))
}

fn http(addresses: &[&str]) -> Vec<String> {
    addresses.iter().map(|a| format!("http://{a}")).collect()
}

/// When an update arrived, and the endpoints it carried.
type Update = (Instant, Vec<String>);

/// Records every update the discovery pushes, with when it arrived.
#[derive(Default)]
struct RecordingSink {
    updates: Mutex<HashMap<ServiceTarget, Vec<Update>>>,
    /// The latest ready-since time reported for each address.
    ready_since: Mutex<HashMap<String, SystemTime>>,
}

impl EndpointsSink for RecordingSink {
    fn endpoints_changed(
        &self,
        service: &ServiceTarget,
        endpoints: &[String],
        ready_since: &[SystemTime],
    ) {
        assert_eq!(endpoints.len(), ready_since.len());
        self.ready_since
            .lock()
            .unwrap()
            .extend(endpoints.iter().cloned().zip(ready_since.iter().copied()));
        let mut updates = self.updates.lock().unwrap();
        let history = updates.entry(service.clone()).or_default();
        history.push((Instant::now(), endpoints.to_vec()));
    }
}

impl RecordingSink {
    fn history(&self, service: &ServiceTarget) -> Vec<Vec<String>> {
        let updates = self.updates.lock().unwrap();
        let history = updates.get(service).into_iter().flatten();
        history.map(|(_, endpoints)| endpoints.clone()).collect()
    }

    fn latest(&self, service: &ServiceTarget) -> Option<Vec<String>> {
        self.history(service).pop()
    }

    /// Waits until the latest update of `service` is `expected`; returns when it arrived.
    async fn wait_for(&self, service: &ServiceTarget, expected: &[String]) -> Instant {
        let give_up = Instant::now() + WAIT;
        loop {
            if let Some((at, endpoints)) = self
                .updates
                .lock()
                .unwrap()
                .get(service)
                .and_then(|h| h.last())
            {
                if endpoints == expected {
                    return *at;
                }
            }
            assert!(
                Instant::now() < give_up,
                "{service}: wanted {expected:?}, updates so far: {:?}",
                self.history(service)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Discovery running against one client, with fast retries so outages heal within a test.
struct Running {
    discovery: Arc<Discovery>,
    sink: Arc<RecordingSink>,
    registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

fn run_discovery(client: kube::Client, services: &[ServiceTarget]) -> Running {
    let registry = Registry::new();
    let metrics = DiscoveryMetrics::new(&registry).expect("register metrics");
    let sink = Arc::new(RecordingSink::default());
    let discovery =
        Discovery::new(client, sink.clone(), metrics).with_backoff(RetryBackoff::Exponential {
            min: Duration::from_millis(50),
            max: Duration::from_millis(250),
        });
    discovery.set_services(services.iter().cloned());
    let discovery = Arc::new(discovery);
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = discovery.clone();
    let task = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        discovery,
        sink,
        registry,
        stop: Some(stop),
        task,
    }
}

impl Running {
    fn synced(&self, service: &ServiceTarget) -> Option<bool> {
        let status = self.discovery.sync_status();
        status
            .into_iter()
            .find(|(s, _)| s == service)
            .map(|(_, synced)| synced)
    }

    async fn wait_synced(&self, service: &ServiceTarget) {
        let give_up = Instant::now() + WAIT;
        while self.synced(service) != Some(true) {
            assert!(Instant::now() < give_up, "{service} never synced");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A metric's value, optionally the series with `service="<label>"`.
    fn metric(&self, name: &str, service: Option<&ServiceTarget>) -> Option<f64> {
        let family = self
            .registry
            .gather()
            .into_iter()
            .find(|f| f.name() == name)?;
        let wanted = service.map(ToString::to_string);
        let series = family.get_metric().iter().find(|m| {
            let label = m.get_label().iter().find(|l| l.name() == "service");
            label.map(|l| l.value().to_string()) == wanted
        })?;
        if family.get_field_type() == MetricType::COUNTER {
            Some(series.get_counter().get_value())
        } else {
            Some(series.get_gauge().get_value())
        }
    }

    async fn wait_metric_above(&self, name: &str, floor: f64) {
        let give_up = Instant::now() + WAIT;
        while self.metric(name, None).unwrap_or(0.0) <= floor {
            assert!(
                Instant::now() < give_up,
                "{name} stayed at or below {floor}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("discovery stops on shutdown")
            .expect("discovery task did not panic");
    }
}

/// Waits until `service`'s open watches and watch requests so far reach the given counts.
async fn wait_watches(server: &FakeApiServer, service: &str, open: usize, started_at_least: usize) {
    let give_up = Instant::now() + WAIT;
    loop {
        let stats = server.stats(NS, service);
        if stats.open_watches == open && stats.watches >= started_at_least {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{service}: wanted {open} open of >= {started_at_least} watches, have {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_through_a_kubeconfig_file() {
    let server = FakeApiServer::start().await;
    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &[("http", 8080)],
            &[ready("10.0.0.2"), ready("10.0.0.1"), unknown("10.0.0.3")],
        ),
    );
    // A slice of another service in the same namespace must not leak in.
    server.apply(
        NS,
        slice("api-a", "api", &[("http", 8080)], &[ready("10.9.9.9")]),
    );
    let dir = std::env::temp_dir().join(format!("ringress-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig);
    let client = ringress::control::discovery::client(Some(&kubeconfig))
        .await
        .expect("client");

    let web = target("web", "http");
    let running = run_discovery(client, std::slice::from_ref(&web));
    let expected = http(&["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]);
    running.sink.wait_for(&web, &expected).await;
    running.wait_synced(&web).await;
    assert_eq!(
        running.sink.history(&web),
        [expected],
        "one update for the initial list"
    );
    assert_eq!(
        running.metric("ringress_discovery_endpoints", Some(&web)),
        Some(3.0)
    );
    assert!(
        running
            .metric("ringress_discovery_events_total", None)
            .unwrap()
            >= 1.0
    );
    assert!(running
        .metric(
            "ringress_discovery_last_event_timestamp_seconds",
            Some(&web)
        )
        .is_some());
    wait_watches(&server, "web", 1, 1).await;
    assert_eq!(server.stats(NS, "web").lists, 1);
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_scale_up_and_scale_down() {
    let server = FakeApiServer::start().await;
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    running.wait_synced(&web).await;
    running.sink.wait_for(&web, &[]).await;

    let pods = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    for n in 1..=pods.len() {
        let eps: Vec<_> = pods[..n].iter().map(|ip| ready(ip)).collect();
        server.apply(NS, slice("web-a", "web", &[("http", 80)], &eps));
        let want: Vec<_> = pods[..n].iter().map(|ip| format!("{ip}:80")).collect();
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        running.sink.wait_for(&web, &http(&want)).await;
    }
    server.apply(
        NS,
        slice("web-a", "web", &[("http", 80)], &[ready("10.0.0.3")]),
    );
    running.sink.wait_for(&web, &http(&["10.0.0.3:80"])).await;
    assert!(server.delete(NS, "web-a"));
    running.sink.wait_for(&web, &[]).await;
    assert_eq!(
        running.metric("ringress_discovery_endpoints", Some(&web)),
        Some(0.0)
    );
    running.shutdown().await;
}

/// Fade-in needs each endpoint's age: endpoints of the first list are as old as their slice
/// (a restarted proxy must not fade in every pod again); one added later became ready at the
/// pod change the controller stamped on the slice; a known endpoint keeps its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_carry_the_time_they_became_ready() {
    let server = FakeApiServer::start().await;
    let web = target("web", "http");
    let mut old = slice("web-a", "web", &[("http", 80)], &[ready("10.0.0.1")]);
    let created = SystemTime::now() - Duration::from_secs(3600);
    old.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        created.try_into().unwrap(),
    ));
    server.apply(NS, old);
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    running.wait_synced(&web).await;
    running.sink.wait_for(&web, &http(&["10.0.0.1:80"])).await;
    let since = |addr: &str| running.sink.ready_since.lock().unwrap()[&format!("http://{addr}")];
    let first = since("10.0.0.1:80");
    assert!(
        first < SystemTime::now() - Duration::from_secs(3000),
        "first list: the slice's creation, not now: {first:?}"
    );

    let before = SystemTime::now() - Duration::from_secs(1);
    let eps = [ready("10.0.0.1"), ready("10.0.0.2")];
    server.apply(NS, slice("web-a", "web", &[("http", 80)], &eps));
    running
        .sink
        .wait_for(&web, &http(&["10.0.0.1:80", "10.0.0.2:80"]))
        .await;
    let added = since("10.0.0.2:80");
    assert!(
        added >= before && added <= SystemTime::now(),
        "a later endpoint became ready at the slice's last change: {added:?}"
    );
    assert_eq!(
        since("10.0.0.1:80"),
        first,
        "a known endpoint keeps its time"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_and_terminating_endpoints_leave() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 8080)];
    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[ready("10.0.0.1"), not_ready("10.0.0.2")],
        ),
    );
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    running.sink.wait_for(&web, &http(&["10.0.0.1:8080"])).await;

    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[ready("10.0.0.1"), ready("10.0.0.2")],
        ),
    );
    running
        .sink
        .wait_for(&web, &http(&["10.0.0.1:8080", "10.0.0.2:8080"]))
        .await;

    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[not_ready("10.0.0.1"), ready("10.0.0.2")],
        ),
    );
    running.sink.wait_for(&web, &http(&["10.0.0.2:8080"])).await;

    // Terminating but still ready (graceful shutdown): out of the ring all the same.
    let mut draining = ready("10.0.0.2");
    draining.terminating = Some(true);
    server.apply(
        NS,
        slice("web-a", "web", &ports, &[ready("10.0.0.1"), draining]),
    );
    running.sink.wait_for(&web, &http(&["10.0.0.1:8080"])).await;

    server.apply(
        NS,
        slice("web-a", "web", &ports, &[terminating("10.0.0.1")]),
    );
    running.sink.wait_for(&web, &[]).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_addresses_are_bracketed() {
    let server = FakeApiServer::start().await;
    server.apply(
        NS,
        slice(
            "web-v6",
            "web",
            &[("http", 8080)],
            &[ready("fd00::2"), ready("fd00::1")],
        ),
    );
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    running
        .sink
        .wait_for(&web, &http(&["[fd00::1]:8080", "[fd00::2]:8080"]))
        .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_by_name_and_by_number() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 8080), ("metrics", 9090)];
    server.apply(NS, slice("web-a", "web", &ports, &[ready("10.0.0.1")]));
    // A slice without the named port contributes nothing to that target.
    server.apply(
        NS,
        slice("web-b", "web", &[("grpc", 9000)], &[ready("10.0.0.2")]),
    );
    let by_name = target("web", "http");
    let by_number = ServiceTarget::new(NS, "web", PortSpec::Number(9090));
    let grpc = ServiceTarget::new(NS, "web", PortSpec::Number(9000));
    let missing = target("web", "admin");
    let all = [
        by_name.clone(),
        by_number.clone(),
        grpc.clone(),
        missing.clone(),
    ];
    let running = run_discovery(server.client(), &all);

    running
        .sink
        .wait_for(&by_name, &http(&["10.0.0.1:8080"]))
        .await;
    running
        .sink
        .wait_for(&by_number, &http(&["10.0.0.1:9090"]))
        .await;
    running
        .sink
        .wait_for(&grpc, &http(&["10.0.0.2:9000"]))
        .await;
    running.sink.wait_for(&missing, &[]).await;
    running.wait_synced(&missing).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_slices_count_each_address_once() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 80)];
    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[ready("10.0.0.1"), ready("10.0.0.2")],
        ),
    );
    server.apply(
        NS,
        slice(
            "web-b",
            "web",
            &ports,
            &[ready("10.0.0.2"), ready("10.0.0.3")],
        ),
    );
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    let all = http(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
    running.sink.wait_for(&web, &all).await;

    // The controller moves 10.0.0.2 out of web-a: it is still listed by web-b, so no change.
    server.apply(NS, slice("web-a", "web", &ports, &[ready("10.0.0.1")]));
    server.apply(NS, slice("web-c", "web", &ports, &[ready("10.0.0.4")]));
    let four = http(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]);
    running.sink.wait_for(&web, &four).await;
    assert!(
        running
            .sink
            .history(&web)
            .iter()
            .all(|update| update.contains(&all[1])),
        "10.0.0.2 never left: {:?}",
        running.sink.history(&web)
    );
    server.delete(NS, "web-b");
    running
        .sink
        .wait_for(&web, &http(&["10.0.0.1:80", "10.0.0.4:80"]))
        .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_relists_without_emptying_the_ring() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 80)];
    server.apply(NS, slice("web-a", "web", &ports, &[ready("10.0.0.1")]));
    server.apply(NS, slice("web-b", "web", &ports, &[ready("10.0.0.2")]));
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    let both = http(&["10.0.0.1:80", "10.0.0.2:80"]);
    running.sink.wait_for(&web, &both).await;
    wait_watches(&server, "web", 1, 1).await;
    assert_eq!(server.stats(NS, "web").lists, 1);
    let errors = running
        .metric("ringress_discovery_errors_total", None)
        .unwrap();

    server.inject_gone();
    wait_until("a re-list after 410 Gone", || {
        server.stats(NS, "web").lists >= 2
    })
    .await;
    wait_watches(&server, "web", 1, 2).await;
    assert_eq!(
        server.stats(NS, "web").lists,
        2,
        "one re-list, then watching again"
    );
    assert!(
        running
            .metric("ringress_discovery_errors_total", None)
            .unwrap()
            > errors
    );
    assert_eq!(
        running.sink.history(&web),
        std::slice::from_ref(&both),
        "a re-list of the same state is silent"
    );

    // Changes after the re-list flow as before.
    server.apply(NS, slice("web-b", "web", &ports, &[ready("10.0.0.3")]));
    running
        .sink
        .wait_for(&web, &http(&["10.0.0.1:80", "10.0.0.3:80"]))
        .await;

    // Expired history while the watch is down: only a re-list can reveal the deletion.
    server.stop();
    server.delete(NS, "web-a");
    server.compact();
    server.restart().await;
    running.sink.wait_for(&web, &http(&["10.0.0.3:80"])).await;
    assert!(
        running
            .sink
            .history(&web)
            .iter()
            .all(|update| !update.is_empty()),
        "the ring was never emptied: {:?}",
        running.sink.history(&web)
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watch_connection_resumes_without_relist() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 80)];
    server.apply(NS, slice("web-a", "web", &ports, &[ready("10.0.0.1")]));
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    running.sink.wait_for(&web, &http(&["10.0.0.1:80"])).await;
    wait_watches(&server, "web", 1, 1).await;

    server.drop_watches();
    // A change made while no watch is open arrives when the watch resumes from its version.
    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[ready("10.0.0.1"), ready("10.0.0.5")],
        ),
    );
    running
        .sink
        .wait_for(&web, &http(&["10.0.0.1:80", "10.0.0.5:80"]))
        .await;
    wait_watches(&server, "web", 1, 2).await;
    assert_eq!(
        server.stats(NS, "web").lists,
        1,
        "resumed from resourceVersion, no re-list"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_keeps_endpoints_then_resyncs() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 80)];
    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[ready("10.0.0.1"), ready("10.0.0.2")],
        ),
    );
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    let before = http(&["10.0.0.1:80", "10.0.0.2:80"]);
    running.sink.wait_for(&web, &before).await;
    let errors = running
        .metric("ringress_discovery_errors_total", None)
        .unwrap();

    server.stop();
    running
        .wait_metric_above("ringress_discovery_errors_total", errors + 2.0)
        .await;
    assert_eq!(
        running.sink.history(&web),
        std::slice::from_ref(&before),
        "endpoints kept while down"
    );
    assert_eq!(running.synced(&web), Some(true), "synced once stays synced");
    assert_eq!(
        running.metric("ringress_discovery_endpoints", Some(&web)),
        Some(2.0)
    );

    // The cluster moved on meanwhile; the store survives the restart, so the watch resumes.
    server.apply(
        NS,
        slice(
            "web-a",
            "web",
            &ports,
            &[ready("10.0.0.2"), ready("10.0.0.3")],
        ),
    );
    server.restart().await;
    running
        .sink
        .wait_for(&web, &http(&["10.0.0.2:80", "10.0.0.3:80"]))
        .await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_start_is_not_synced_until_the_server_appears() {
    // A port that was free a moment ago: nothing listens there.
    let addr: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let client =
        kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap()))
            .unwrap();
    let web = target("web", "http");
    let running = run_discovery(client, std::slice::from_ref(&web));
    running
        .wait_metric_above("ringress_discovery_errors_total", 1.0)
        .await;
    assert_eq!(running.synced(&web), Some(false));
    assert_eq!(
        running.sink.latest(&web),
        None,
        "nothing published before a list"
    );

    let server = FakeApiServer::start_on(addr).await;
    server.apply(
        NS,
        slice("web-a", "web", &[("http", 80)], &[ready("10.0.0.1")]),
    );
    running.sink.wait_for(&web, &http(&["10.0.0.1:80"])).await;
    running.wait_synced(&web).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_service_stops_its_watch() {
    let server = FakeApiServer::start().await;
    let ports = [("http", 80)];
    server.apply(NS, slice("web-a", "web", &ports, &[ready("10.0.0.1")]));
    server.apply(NS, slice("api-a", "api", &ports, &[ready("10.0.1.1")]));
    let web = target("web", "http");
    let api = target("api", "http");
    let running = run_discovery(server.client(), &[web.clone(), api.clone()]);
    running.sink.wait_for(&web, &http(&["10.0.0.1:80"])).await;
    running.sink.wait_for(&api, &http(&["10.0.1.1:80"])).await;
    wait_watches(&server, "web", 1, 1).await;
    wait_watches(&server, "api", 1, 1).await;

    running.discovery.set_services([web.clone()]);
    wait_watches(&server, "api", 0, 1).await;
    assert_eq!(running.discovery.sync_status(), [(web.clone(), true)]);
    wait_until("api's series to go", || {
        running
            .metric("ringress_discovery_endpoints", Some(&api))
            .is_none()
    })
    .await;
    server.apply(NS, slice("api-a", "api", &ports, &[ready("10.0.1.2")]));
    server.apply(NS, slice("web-a", "web", &ports, &[ready("10.0.0.2")]));
    running.sink.wait_for(&web, &http(&["10.0.0.2:80"])).await;
    assert_eq!(
        running.sink.latest(&api),
        Some(http(&["10.0.1.1:80"])),
        "no updates after removal"
    );
    assert_eq!(
        server.stats(NS, "web").open_watches,
        1,
        "the kept service keeps its watch"
    );
    assert_eq!(server.stats(NS, "web").watches, 1);

    // Adding it back starts a fresh watch and sync.
    running.discovery.set_services([web.clone(), api.clone()]);
    running.sink.wait_for(&api, &http(&["10.0.1.2:80"])).await;
    running.wait_synced(&api).await;
    wait_watches(&server, "api", 1, 2).await;
    running.shutdown().await;
    wait_watches(&server, "web", 0, 1).await;
    wait_watches(&server, "api", 0, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_from_event_to_sink() {
    let server = FakeApiServer::start().await;
    let web = target("web", "http");
    let running = run_discovery(server.client(), std::slice::from_ref(&web));
    running.wait_synced(&web).await;

    let mut took = Vec::new();
    for i in 1..=20u8 {
        let address = format!("10.0.2.{i}");
        let changed = Instant::now();
        server.apply(
            NS,
            slice("web-a", "web", &[("http", 80)], &[ready(&address)]),
        );
        let arrived = running
            .sink
            .wait_for(&web, &http(&[&format!("{address}:80")]))
            .await;
        took.push(arrived - changed);
    }
    took.sort();
    let median = took[took.len() / 2];
    let max = *took.last().unwrap();
    println!(
        "event -> sink propagation over {} changes: median {median:?}, max {max:?}",
        took.len()
    );
    assert!(max < Duration::from_secs(2), "propagation took {max:?}");
    running.shutdown().await;
}

/// The fake server's synchronous mode, as the binary's end-to-end tests use it: plain GETs.
#[test]
fn blocking_fake_server_serves_lists_across_restarts() {
    use std::io::{Read, Write};
    let get = |server: &FakeApiServer| {
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        let path = format!(
            "/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices\
             ?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
        );
        write!(stream, "GET {path} HTTP/1.1\r\nHost: fake\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let server = FakeApiServer::start_blocking();
    server.apply(
        NS,
        slice("web-a", "web", &[("http", 80)], &[ready("10.0.0.1")]),
    );
    server.apply(
        NS,
        slice("api-a", "api", &[("http", 80)], &[ready("10.0.9.9")]),
    );
    let response = get(&server);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"EndpointSliceList\"") && response.contains("10.0.0.1"));
    assert!(
        !response.contains("10.0.9.9"),
        "label selector applies: {response}"
    );

    let addr = server.addr();
    server.stop();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "stopped means refused"
    );
    server.restart_blocking();
    assert_eq!(server.addr(), addr);
    assert!(
        get(&server).contains("10.0.0.1"),
        "the store survives a restart"
    );
    assert_eq!(server.stats(NS, "web").lists, 2);
}
