//! The issue's "done when", step by step with the shipped `examples/routes.yaml`:
//! `ringress check` accepts it; the real binary serves it (the file as shipped,
//! with its three demo backends at 127.0.0.1:9001-9003 replaced by this test's
//! backends on free ports); traffic on every route; `/metrics` moves with it;
//! an edit of the file takes effect while serving.
mod support;

use std::time::Duration;

use support::{eventually, Backend, Ringress};

const EXAMPLE: &str = include_str!("../../examples/routes.yaml");

fn example_path() -> String {
    format!("{}/../examples/routes.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn ringress_check_accepts_the_example_file() {
    let out = std::process::Command::new(support::process::binary())
        .args(["check", &example_path()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_example_file_serves_every_route_counts_traffic_and_takes_an_edit() {
    let pods = [
        Backend::start("p1"),
        Backend::start("p2"),
        Backend::start("p3"),
    ];
    let mut yaml = EXAMPLE.to_string();
    for (i, pod) in pods.iter().enumerate() {
        yaml = yaml.replace(&format!("http://127.0.0.1:900{}", i + 1), &pod.url());
    }
    assert!(
        !yaml.contains("http://127.0.0.1:900"),
        "every demo address replaced"
    );
    let proxy = Ringress::start(&yaml);
    let mut client = proxy.client();

    // products: consistent hash on the id, the response header filter applied.
    let mut owner = None;
    for _ in 0..5 {
        let r = client.get("/products/123").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-served-by"), Some("ringress"));
        let served = r.header("x-backend").map(str::to_string);
        assert!(served.is_some());
        assert!(owner.is_none() || owner == served, "one key, one pod");
        owner = served;
    }
    let ring = proxy.admin_get("/ring?route=products&key=123");
    assert_eq!(ring.status, 200);
    let name = owner.unwrap();
    let pod = pods.iter().find(|p| p.name == name).unwrap();
    assert!(ring.body.contains(&pod.url()), "{}", ring.body);

    // batch (POST, power of two choices), search (LIFO), health (the proxy itself), no route.
    let r = client.request("POST", "/batch", &[], "[1,2,3]").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(client.get("/search?q=shoes").unwrap().status, 200);
    assert_eq!(client.get("/health").unwrap().status, 200);
    let r = client.get("/nothing/here").unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "no route\n"));

    // /metrics follows the traffic.
    let products = [r#"route="products""#, r#"status_class="2xx""#];
    eventually(Duration::from_secs(5), "5 product requests counted", || {
        (proxy.metric_sum("ringress_requests_total", &products) == 5.0).then_some(())
    });
    for route in ["batch", "search", "health"] {
        let labels = [&*format!("route=\"{route}\""), r#"status_class="2xx""#];
        eventually(Duration::from_secs(5), route, || {
            (proxy.metric_sum("ringress_requests_total", &labels) == 1.0).then_some(())
        });
    }
    for _ in 0..3 {
        client.get("/products/7").unwrap();
    }
    eventually(Duration::from_secs(5), "8 product requests counted", || {
        (proxy.metric_sum("ringress_requests_total", &products) == 8.0).then_some(())
    });

    // Edit the file as a user would: the new header value is served without a restart.
    let reloads = proxy.metric("ringress_route_reloads_total", "");
    proxy.write_routes(&yaml.replace("value: ringress", "value: ringress-edited"));
    eventually(Duration::from_secs(10), "the edit in force", || {
        let r = client.get("/products/123").ok()?;
        (r.header("x-served-by") == Some("ringress-edited")).then_some(())
    });
    assert!(proxy.metric("ringress_route_reloads_total", "") > reloads);
}
