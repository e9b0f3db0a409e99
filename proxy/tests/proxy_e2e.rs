//! End to end: the real `ringress` binary in front of real loopback backends.
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use ringress_ring::{hash_key, HashRing, Registry};
use support::{consistent_routes, eventually, free_port, Backend, Client, Load, Ringress};

fn owner(backends: &[&Backend], key: &str) -> String {
    let registry = Registry::new();
    let ring = HashRing::new(
        backends
            .iter()
            .map(|b| registry.endpoint(&b.url()))
            .collect(),
    );
    let i = ring.owner(hash_key(key.as_bytes())).unwrap();
    backends
        .iter()
        .find(|b| b.url() == ring.endpoints()[i].addr())
        .unwrap()
        .name
        .clone()
}

#[test]
fn same_key_same_backend_matching_the_ring_crate() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let all = [&a, &b, &c];
    let proxy = Ringress::start(&consistent_routes(&all, ""));
    let mut client = proxy.client();
    let mut served = HashSet::new();
    for id in 0..60 {
        let key = format!("sku-{id}");
        let want = owner(&all, &key);
        for _ in 0..3 {
            let resp = client.get(&format!("/products/{key}")).unwrap();
            assert_eq!(resp.status, 200);
            assert_eq!(resp.body, want, "key {key}");
        }
        // The admin view names the same owner.
        let want_url = all.iter().find(|b| b.name == want).unwrap().url();
        let ring = proxy.admin_get(&format!("/ring?route=products&key={key}"));
        assert!(
            ring.body.contains(&format!("\"owner\":\"{want_url}\"")),
            "{}",
            ring.body
        );
        served.insert(want);
    }
    assert_eq!(served.len(), 3, "60 keys spread over all three backends");

    // The CLI agrees as well.
    let out = std::process::Command::new(support::process::binary())
        .args([
            "ring",
            "--endpoints",
            &all.map(|b| b.url()).join(","),
            "sku-1",
            "sku-2",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for key in ["sku-1", "sku-2"] {
        let want = all
            .iter()
            .find(|b| b.name == owner(&all, key))
            .unwrap()
            .url();
        assert!(text.contains(&format!("{key}\t{want}")), "{text}");
    }
}

#[test]
fn a_hot_key_spills_once_its_owner_is_over_the_bound() {
    let backends: Vec<Backend> = (0..4).map(|i| Backend::start(&format!("b{i}"))).collect();
    for b in &backends {
        b.set_delay(Duration::from_millis(400));
    }
    let refs: Vec<&Backend> = backends.iter().collect();
    let proxy = Ringress::start(&consistent_routes(
        &refs,
        "      - consistentHashBalanceFactor: 1.25\n",
    ));
    let hot_owner = owner(&refs, "hot");
    let listen = proxy.listen;
    let handles: Vec<_> = (0..24)
        .map(|i| {
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(i * 5));
                Client::new(listen).get("/products/hot").unwrap()
            })
        })
        .collect();
    let bodies: Vec<String> = handles
        .into_iter()
        .map(|h| {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200);
            r.body
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &bodies {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    assert!(counts.len() > 1, "the hot key spread: {counts:?}");
    assert!(
        counts[hot_owner.as_str()] < 24,
        "owner {hot_owner} did not take everything: {counts:?}"
    );
    let max_seen = backends
        .iter()
        .map(|b| b.seen.max_in_flight.load(Ordering::SeqCst))
        .max()
        .unwrap();
    // 24 requests over 4 endpoints, factor 1.25: no endpoint above ⌊6 × 1.25⌋ + 1.
    assert!(
        max_seen <= 8,
        "max in flight at one backend {max_seen}: {counts:?}"
    );
    assert!(proxy.metric("ringress_bounded_load_spills_total", r#"route="products""#) >= 1.0);
}

#[test]
fn power_of_two_choices_spreads_a_batch_route() {
    let backends: Vec<Backend> = (0..3).map(|i| Backend::start(&format!("p{i}"))).collect();
    for b in &backends {
        b.set_delay(Duration::from_millis(200));
    }
    let endpoints: Vec<String> = backends
        .iter()
        .map(|b| format!("        - {}", b.url()))
        .collect();
    let routes = format!(
        "routes:\n  - name: batch\n    match:\n      pathPrefix: /batch\n    backend:\n      algorithm: powerOfRandomNChoices\n      endpoints:\n{}\n",
        endpoints.join("\n")
    );
    let proxy = Ringress::start(&routes);
    let listen = proxy.listen;
    let handles: Vec<_> = (0..30)
        .map(|_| thread::spawn(move || Client::new(listen).get("/batch/items").unwrap()))
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().status, 200);
    }
    let hits: Vec<usize> = backends.iter().map(|b| b.hits()).collect();
    assert_eq!(hits.iter().sum::<usize>(), 30);
    assert!(
        hits.iter().all(|&h| h >= 5),
        "every backend took a share: {hits:?}"
    );
}

#[test]
fn connection_failures_retry_on_the_next_candidate() {
    let live = Backend::start("live");
    let dead = format!("http://127.0.0.1:{}", free_port());
    // Without the passive health check, which would eject the dead endpoint
    // after three failures (backend_faults.rs tests it).
    let routes = |retries: u32| {
        format!(
            "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    filters:\n      - consistentHashKey: \"${{id}}\"\n    backend:\n      endpoints: [{dead}, {}]\n      retries: {retries}\n      passiveHealthCheck: false\n",
            live.url()
        )
    };
    let proxy = Ringress::start(&routes(1));
    // Find keys owned by the dead endpoint.
    let registry = Registry::new();
    let ring = HashRing::new(vec![
        registry.endpoint(&dead),
        registry.endpoint(&live.url()),
    ]);
    let dead_keys: Vec<String> = (0..200)
        .map(|i| format!("k{i}"))
        .filter(|k| ring.endpoints()[ring.owner(hash_key(k.as_bytes())).unwrap()].addr() == dead)
        .take(10)
        .collect();
    assert!(!dead_keys.is_empty());
    let mut client = proxy.client();
    for key in &dead_keys {
        let resp = client.get(&format!("/products/{key}")).unwrap();
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (200, "live"),
            "key {key}"
        );
    }
    assert!(
        proxy.metric("ringress_retries_total", r#"route="products""#) >= dead_keys.len() as f64
    );

    // Without retries the same keys fail with 502 and say why.
    proxy.write_routes(&routes(0));
    eventually(Duration::from_secs(5), "reload", || {
        (proxy.metric("ringress_route_reloads_total", "") >= 2.0).then_some(())
    });
    let resp = client.get(&format!("/products/{}", dead_keys[0])).unwrap();
    assert_eq!(resp.status, 502);
    assert_eq!(resp.body, "all endpoints failed\n");
}

#[test]
fn proxy_answers_404_502_503_and_status_backends_itself() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let routes = format!(
        r#"routes:
  - name: down
    match: {{pathPrefix: /down}}
    backend: {{endpoints: ["{dead}"], retries: 0}}
  - name: svc
    match: {{pathPrefix: /svc}}
    backend: {{service: {{namespace: shop, name: products, port: http}}}}
  - name: health
    match: {{path: /health}}
    backend: {{status: 200}}
  - name: gone
    match: {{path: /old}}
    backend: {{status: 410}}
"#
    );
    // No cluster here: the Service route keeps the proxy unready, and says why.
    let proxy = Ringress::start_live(&routes, &[]);
    let readyz = proxy.admin_get("/readyz");
    assert_eq!(readyz.status, 503);
    assert!(
        readyz.body.contains("shop/products:http"),
        "{}",
        readyz.body
    );
    let mut client = proxy.client();
    // Answers decided before any upstream is tried keep the connection alive.
    let cases = [
        ("/nowhere", 404, "no route\n"),
        ("/svc/x", 503, "no endpoints\n"),
        ("/health", 200, "ok\n"),
        ("/old", 410, "gone\n"),
    ];
    for (path, status, body) in cases {
        let resp = client.get(path).unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (status, body), "{path}");
        assert_ne!(
            resp.header("connection"),
            Some("close"),
            "{path} keeps the connection"
        );
    }
    // After a failed upstream attempt pingora closes the connection, and says so.
    let resp = client.get("/down/x").unwrap();
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (502, "all endpoints failed\n")
    );
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(
        client.get("/health").unwrap().status,
        200,
        "a new connection is opened"
    );
    assert!(
        proxy.metric_sum(
            "ringress_requests_total",
            &[r#"route="""#, r#"status_class="4xx""#]
        ) >= 1.0
    );
    assert!(
        proxy.metric_sum(
            "ringress_requests_total",
            &[r#"route="svc""#, r#"status_class="5xx""#]
        ) >= 1.0
    );
}

#[test]
fn standard_proxy_headers_and_header_filters() {
    let backend = Backend::start("h");
    let routes = format!(
        r#"routes:
  - name: h
    match: {{pathPrefix: /}}
    filters:
      - setRequestHeader: {{name: X-From, value: ringress}}
      - setResponseHeader: {{name: Cache-Control, value: no-store}}
    backend: {{endpoints: ["{}"]}}
"#,
        backend.url()
    );
    let proxy = Ringress::start(&routes);
    let mut client = proxy.client();
    let resp = client
        .request(
            "GET",
            "/p?q=1",
            &[
                ("Host", "shop.example.com"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "hop"),
                ("Keep-Alive", "timeout=5"),
            ],
            "",
        )
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(backend.header("host").as_deref(), Some("shop.example.com"));
    assert_eq!(
        backend.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(backend.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        backend.header("x-forwarded-host").as_deref(),
        Some("shop.example.com")
    );
    assert_eq!(backend.header("x-from").as_deref(), Some("ringress"));
    assert_eq!(
        backend.header("x-secret"),
        None,
        "header named by Connection removed"
    );
    assert_eq!(backend.header("keep-alive"), None);
    assert_eq!(backend.seen.paths.lock().unwrap().last().unwrap(), "/p?q=1");
}

#[test]
fn reload_under_traffic_loses_no_request_and_rejects_bad_files() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let routes_v = |v: usize| {
        format!(
            "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    filters:\n      - consistentHashKey: \"${{id}}\"\n      - setResponseHeader: {{name: X-Version, value: \"v{v}\"}}\n    backend:\n      endpoints: [{}, {}]\n",
            a.url(),
            b.url()
        )
    };
    let proxy = Ringress::start(&routes_v(0));
    let load = Load::start(proxy.listen, 4);
    let started = Instant::now();
    for v in 1..=12 {
        if v % 2 == 0 {
            proxy.write_routes("routes:\n  - name: broken\n    backend: {status: 99}\n");
        } else {
            proxy.write_routes(&routes_v(v));
            eventually(Duration::from_secs(5), "new version in force", || {
                let r = proxy.get("/products/x");
                (r.header("x-version") == Some(&format!("v{v}"))).then_some(())
            });
        }
        thread::sleep(Duration::from_millis(600));
    }
    let outcome = load.stop();
    let failures = outcome.failures;
    assert!(
        failures.is_empty(),
        "failed requests during reloads: {failures:?}"
    );
    assert!(
        outcome.ok > 100,
        "traffic flowed for {:?}",
        started.elapsed()
    );
    assert!(proxy.metric("ringress_route_reload_failures_total", "") >= 1.0);
    // The last file written was valid and is in force.
    assert_eq!(proxy.get("/products/x").header("x-version"), Some("v11"));
}

#[test]
fn check_reports_errors_with_positions_and_exit_codes() {
    let dir = support::process::temp_dir("check");
    let good = dir.join("good.yaml");
    std::fs::write(&good, "routes:\n  - name: ok\n    backend: {status: 200}\n").unwrap();
    let out = std::process::Command::new(support::process::binary())
        .args(["check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "routes:\n  - name: products\n    filters:\n      - consistentHashBalanceFactor: 0.5\n    backend: {endpoints: [http://10.0.0.1:8080]}\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::process::binary())
        .args(["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:", bad.display()))
            && stderr.contains("consistentHashBalanceFactor must be >= 1"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn metrics_follow_traffic() {
    let backend = Backend::start("m");
    let proxy = Ringress::start(&consistent_routes(&[&backend], ""));
    let before = proxy.metric_sum("ringress_requests_total", &[r#"route="products""#]);
    let mut client = proxy.client();
    for i in 0..25 {
        assert_eq!(client.get(&format!("/products/{i}")).unwrap().status, 200);
    }
    // Metrics are recorded in pingora's logging phase, just after the client
    // has its response: wait for the last one to land.
    let upstream = format!(r#"endpoint="{}""#, backend.url());
    eventually(Duration::from_secs(5), "25 requests counted", || {
        let after = proxy.metric_sum(
            "ringress_requests_total",
            &[
                r#"route="products""#,
                r#"method="GET""#,
                r#"status_class="2xx""#,
            ],
        );
        let durations = proxy.metric(
            "ringress_request_duration_seconds_count",
            r#"route="products""#,
        );
        let upstreams = proxy.metric("ringress_upstream_duration_seconds_count", &upstream);
        (after - before == 25.0 && durations == 25.0 && upstreams == 25.0).then_some(())
    });
    assert_eq!(
        proxy.metric(
            "ringress_endpoint_in_flight",
            &format!(r#"endpoint="{}""#, backend.url())
        ),
        0.0
    );
    assert_eq!(
        proxy.metric("ringress_route_endpoints", r#"route="products""#),
        1.0
    );
    let routes = proxy.admin_get("/routes");
    assert_eq!(routes.status, 200);
    assert!(
        routes.body.contains("\"products\"") && routes.body.contains(&backend.url()),
        "{}",
        routes.body
    );
    assert_eq!(proxy.admin_get("/healthz").status, 200);
}

#[test]
fn series_of_removed_routes_and_endpoints_are_dropped() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Ringress::start(&consistent_routes(&[&a, &b], ""));
    let mut client = proxy.client();
    for i in 0..40 {
        assert_eq!(client.get(&format!("/products/{i}")).unwrap().status, 200);
    }
    let series = |endpoint: &Backend| {
        proxy.metric_sum(
            "ringress_upstream_duration_seconds_count",
            &[&format!(r#"endpoint="{}""#, endpoint.url())],
        )
    };
    eventually(Duration::from_secs(5), "both endpoints observed", || {
        (series(&a) + series(&b) == 40.0 && series(&a) > 0.0 && series(&b) > 0.0).then_some(())
    });
    // The same backends behind a route with another name, `b` gone: under pod
    // churn series of departed endpoints and routes must not pile up.
    proxy.write_routes(&consistent_routes(&[&a], "").replace("name: products", "name: catalogue"));
    eventually(Duration::from_secs(10), "new table in force", || {
        proxy
            .admin_get("/routes")
            .body
            .contains("catalogue")
            .then_some(())
    });
    let text = proxy.admin_get("/metrics").body;
    assert!(!text.contains(&b.url()), "b's series dropped:\n{text}");
    assert!(
        !text.contains(r#"route="products""#),
        "old route's series dropped:\n{text}"
    );
    assert!(series(&a) > 0.0, "a kept its series");
    for i in 0..10 {
        assert_eq!(client.get(&format!("/products/{i}")).unwrap().status, 200);
    }
    eventually(Duration::from_secs(5), "the renamed route counts", || {
        let n = proxy.metric_sum("ringress_requests_total", &[r#"route="catalogue""#]);
        (n == 10.0).then_some(())
    });
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let backend = Backend::start("slow");
    backend.set_delay(Duration::from_millis(1500));
    let mut proxy = Ringress::start_with(
        &consistent_routes(&[&backend], ""),
        &["--grace-period", "10s"],
    );
    let listen = proxy.listen;
    let in_flight = thread::spawn(move || Client::new(listen).get("/products/1"));
    eventually(Duration::from_secs(5), "request at the backend", || {
        (backend.seen.in_flight.load(Ordering::SeqCst) == 1).then_some(())
    });
    proxy.signal("TERM");
    eventually(Duration::from_secs(2), "/readyz to turn 503", || {
        (proxy.admin_get("/readyz").status == 503).then_some(())
    });
    let resp = in_flight
        .join()
        .unwrap()
        .expect("in-flight request completed");
    assert_eq!((resp.status, resp.body.as_str()), (200, "slow"));
    assert_eq!(proxy.wait_exit(Duration::from_secs(15)), Some(0));
}
