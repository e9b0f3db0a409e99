//! The real binary following a Service's EndpointSlices, served by the in-test
//! Kubernetes API server (see `support::k8s_apiserver`: no cluster runs here, so
//! it speaks the API server's real list/watch protocol on loopback).
//!
//! Pods are backends on distinct loopback IPs (127.0.0.2, .3, …) sharing one
//! port, as pods of a Deployment share a container port.
mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use support::cluster::{ring_endpoints, wait_for_endpoints, Cluster, SERVICE_ROUTES};
use support::k8s_apiserver::{not_ready, ready, slice, terminating, FakeApiServer};
use support::{eventually, free_port, Backend, Load, Ringress};

const ROUTES: &str = SERVICE_ROUTES;

fn url(c: &Cluster, i: usize) -> String {
    c.url(i)
}

#[test]
fn a_service_route_follows_its_endpoint_slices() {
    let cluster = Cluster::new(3);
    cluster.publish(vec![ready(&cluster.ip(0)), ready(&cluster.ip(1))]);
    let proxy = cluster.proxy();
    wait_for_endpoints(&proxy, &[url(&cluster, 0), url(&cluster, 1)]);
    let mut client = proxy.client();
    for i in 0..40 {
        assert_eq!(client.get(&format!("/products/{i}")).unwrap().status, 200);
    }
    assert!(cluster.pods[0].hits() > 0 && cluster.pods[1].hits() > 0);
    assert_eq!(cluster.pods[2].hits(), 0);
    assert_eq!(
        proxy.metric("ringress_discovery_endpoints", r#"service="shop/web:http""#),
        2.0
    );

    // Readiness flips: a pod that is not ready leaves the ring.
    cluster.publish(vec![
        ready(&cluster.ip(0)),
        not_ready(&cluster.ip(1)),
        ready(&cluster.ip(2)),
    ]);
    let took = wait_for_endpoints(&proxy, &[url(&cluster, 0), url(&cluster, 2)]);
    eprintln!("event to routing change: {took:?} (includes /routes polling every 20 ms)");

    // No ready pods: the route answers 503 and says why.
    cluster.publish(vec![not_ready(&cluster.ip(0))]);
    wait_for_endpoints(&proxy, &[]);
    let resp = client.get("/products/1").unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (503, "no endpoints\n"));
}

#[test]
fn scaling_up_and_down_under_traffic_loses_nothing() {
    let cluster = Cluster::new(3);
    cluster.publish(vec![ready(&cluster.ip(0)), ready(&cluster.ip(1))]);
    let proxy = cluster.proxy();
    wait_for_endpoints(&proxy, &[url(&cluster, 0), url(&cluster, 1)]);
    for pod in &cluster.pods {
        pod.set_delay(Duration::from_millis(20));
    }
    let load = Load::start(proxy.listen, 4);
    let pause = || thread::sleep(Duration::from_millis(400));
    // Scale up.
    cluster.publish((0..3).map(|i| ready(&cluster.ip(i))).collect());
    wait_for_endpoints(
        &proxy,
        &(0..3).map(|i| url(&cluster, i)).collect::<Vec<_>>(),
    );
    pause();
    // Scale down gracefully: pod 2 terminates (still serving what it has), then goes.
    cluster.publish(vec![
        ready(&cluster.ip(0)),
        ready(&cluster.ip(1)),
        terminating(&cluster.ip(2)),
    ]);
    wait_for_endpoints(&proxy, &[url(&cluster, 0), url(&cluster, 1)]);
    eventually(Duration::from_secs(5), "pod 2 drained", || {
        (cluster.pods[2].seen.in_flight.load(Ordering::SeqCst) == 0).then_some(())
    });
    pause();
    cluster.publish(vec![ready(&cluster.ip(0)), ready(&cluster.ip(1))]);
    pause();
    // The API server goes away: the last known endpoints keep serving.
    cluster.api.stop();
    pause();
    pause();
    assert_eq!(
        ring_endpoints(&proxy).len(),
        2,
        "endpoints kept while the API server is away"
    );
    cluster.api.restart_blocking();
    cluster.publish(vec![ready(&cluster.ip(0))]);
    wait_for_endpoints(&proxy, &[url(&cluster, 0)]);
    pause();
    let outcome = load.stop();
    let failures = outcome.failures;
    assert!(
        failures.is_empty(),
        "failed requests while scaling: {failures:?}"
    );
    assert!(outcome.ok > 50);
    assert!(
        cluster.pods[2].hits() > 0,
        "the scaled-up pod served traffic"
    );
}

#[test]
fn ipv6_pods_are_reachable() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    };
    drop(probe);
    let api = FakeApiServer::start_blocking();
    let port = free_port();
    let pod = Backend::start_on("v6", SocketAddr::new("::1".parse().unwrap(), port));
    api.apply(
        "shop",
        slice("web-v6", "web", &[("http", port as i32)], &[ready("::1")]),
    );
    let dir = support::process::temp_dir("kube6");
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let proxy = Ringress::start_with(ROUTES, &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    wait_for_endpoints(&proxy, &[format!("http://[::1]:{port}")]);
    let resp = proxy.get("/products/1");
    assert_eq!((resp.status, resp.body.as_str()), (200, "v6"));
    assert_eq!(pod.hits(), 1);
}

#[test]
fn unreachable_api_server_at_start_leaves_static_routes_serving() {
    let kube_port = free_port();
    let dir = support::process::temp_dir("kube-down");
    let kubeconfig = dir.join("kubeconfig");
    // A kubeconfig naming a port nothing listens on yet.
    let api_later = SocketAddr::from(([127, 0, 0, 1], kube_port));
    let routes = format!(
        "{ROUTES}  - name: health\n    match: {{path: /health}}\n    backend: {{status: 200}}\n"
    );
    {
        let api = FakeApiServer::start_blocking();
        api.write_kubeconfig(&kubeconfig);
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        std::fs::write(
            &kubeconfig,
            text.replace(&api.addr().to_string(), &api_later.to_string()),
        )
        .unwrap();
    }
    let proxy = Ringress::start_live(&routes, &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(proxy.get("/health").status, 200, "static routes serve");
    assert_eq!(proxy.get("/products/1").status, 503);
    let readyz = proxy.admin_get("/readyz");
    assert_eq!(readyz.status, 503);
    assert!(readyz.body.contains("shop/web:http"), "{}", readyz.body);

    // The API server appears: the Service syncs and the proxy becomes ready.
    let api = FakeApiServer::start_on_blocking(api_later);
    let pod = Backend::start_on("pod", SocketAddr::from(([127, 0, 0, 2], free_port())));
    api.apply(
        "shop",
        slice(
            "web-1",
            "web",
            &[("http", pod.addr.port() as i32)],
            &[ready("127.0.0.2")],
        ),
    );
    eventually(Duration::from_secs(20), "ready once synced", || {
        (proxy.admin_get("/readyz").status == 200).then_some(())
    });
    assert_eq!(proxy.get("/products/1").status, 200);
}
