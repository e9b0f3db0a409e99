//! Every field of the route file, parsed into the public model.

mod common;

use std::time::Duration;

use common::table;
use ringress_ring::{Algorithm, DEFAULT_BALANCE_FACTOR};
use ringress_routes::{
    BackendTarget, Filter, LifoGroupSpec, LifoSpec, PassiveHealthCheck, PortRef, RouteTable,
    ServiceRef,
};

const FULL: &str = r#"
routes:
  - name: products
    match:
      path: /products/{id}
      host: Shop.Example.com
      method: GET
      headers: {X-Tenant: acme}
      query: {debug: "1"}
    filters:
      - consistentHashKey: "sku-${id}"
      - consistentHashBalanceFactor: 1.5
      - lifo: {maxConcurrency: 10, maxQueueSize: 0, timeout: 1.5s}
      - lifoGroup: {name: catalog, maxConcurrency: 200, maxQueueSize: 200, timeout: 5s}
      - setRequestHeader: {name: X-From, value: ringress}
      - setResponseHeader: {name: Cache-Control, value: no-store}
    backend:
      algorithm: consistentHash
      endpoints: [http://10.0.0.1:8080, "https://[::1]:8443"]
      timeouts: {connect: 100ms, response: 1m30s, tunnelIdle: 10m}
      retries: 3
  - name: static
    match: {pathPrefix: /static/, pathRegex: "^/static/v[0-9]+/", method: [GET, HEAD]}
    backend:
      algorithm: powerOfRandomNChoices
      service: {namespace: shop, name: assets, port: http}
  - name: numbered-port
    match: {host: "*.example.com"}
    backend: {algorithm: roundRobin, service: {namespace: shop, name: api, port: 8080}}
  - name: gone
    backend: {status: 410, algorithm: random}
"#;

#[test]
fn every_field_of_a_full_route() {
    let t = table(FULL);
    assert_eq!(t.len(), 4);
    let names: Vec<_> = t.routes().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["products", "static", "numbered-port", "gone"]);

    let p = t.get("products").unwrap();
    assert_eq!(p.matcher.path.as_deref(), Some("/products/{id}"));
    assert_eq!(p.matcher.host.as_deref(), Some("shop.example.com"));
    assert_eq!(p.matcher.methods, ["GET"]);
    assert_eq!(p.matcher.headers, [("x-tenant".into(), "acme".into())]);
    assert_eq!(p.matcher.query, [("debug".into(), "1".into())]);
    assert_eq!(p.param_names(), ["id"]);

    assert_eq!(p.filters.len(), 6);
    assert!(matches!(&p.filters[0], Filter::ConsistentHashKey(t) if t.as_str() == "sku-${id}"));
    assert!(matches!(p.filters[1], Filter::ConsistentHashBalanceFactor(f) if f == 1.5));
    let lifo = LifoSpec {
        max_concurrency: 10,
        max_queue_size: 0,
        timeout: Duration::from_millis(1500),
    };
    assert_eq!(p.lifo, Some(lifo));
    assert_eq!(
        p.lifo_group,
        Some(LifoGroupSpec {
            name: "catalog".into(),
            spec: LifoSpec {
                max_concurrency: 200,
                max_queue_size: 200,
                timeout: Duration::from_secs(5),
            },
        })
    );
    assert_eq!(p.balance_factor, 1.5);
    assert_eq!(p.request_headers, [("x-from".into(), "ringress".into())]);
    assert_eq!(
        p.response_headers,
        [("cache-control".into(), "no-store".into())]
    );

    assert_eq!(p.backend.algorithm, Algorithm::ConsistentHash);
    assert_eq!(
        p.backend.target,
        BackendTarget::Endpoints(vec![
            "http://10.0.0.1:8080".into(),
            "https://[::1]:8443".into()
        ])
    );
    assert_eq!(p.backend.timeouts.connect, Duration::from_millis(100));
    assert_eq!(p.backend.timeouts.response, Duration::from_secs(90));
    assert_eq!(p.backend.timeouts.tunnel_idle, Duration::from_secs(600));
    assert_eq!(p.backend.retries, 3);

    let s = t.get("static").unwrap();
    assert_eq!(s.matcher.path_prefix.as_deref(), Some("/static/"));
    assert_eq!(s.matcher.path_regex.as_deref(), Some("^/static/v[0-9]+/"));
    assert_eq!(s.matcher.methods, ["GET", "HEAD"]);
    assert_eq!(s.backend.algorithm, Algorithm::PowerOfRandomNChoices);
    assert_eq!(
        s.backend.target,
        BackendTarget::Service(ServiceRef {
            namespace: "shop".into(),
            name: "assets".into(),
            port: PortRef::Name("http".into()),
        })
    );

    let n = t.get("numbered-port").unwrap();
    assert_eq!(n.matcher.host.as_deref(), Some("*.example.com"));
    assert!(matches!(
        &n.backend.target,
        BackendTarget::Service(ServiceRef {
            port: PortRef::Number(8080),
            ..
        })
    ));
    assert_eq!(n.backend.algorithm, Algorithm::RoundRobin);

    let g = t.get("gone").unwrap();
    assert_eq!(g.backend.target, BackendTarget::Status(410));
    assert_eq!(g.backend.algorithm, Algorithm::Random);
    assert!(t.get("missing").is_none());
}

#[test]
fn defaults() {
    let t = table(
        "routes:\n  - name: a\n    filters:\n      - lifo:\n      - lifoGroup: {name: g}\n    backend: {endpoints: [http://a:1]}\n",
    );
    let a = t.get("a").unwrap();
    assert!(
        a.matcher == Default::default(),
        "no match: matches everything"
    );
    assert_eq!(a.backend.algorithm, Algorithm::ConsistentHash);
    assert_eq!(a.backend.timeouts.connect, Duration::from_secs(1));
    assert_eq!(a.backend.timeouts.response, Duration::from_secs(30));
    assert_eq!(a.backend.timeouts.tunnel_idle, Duration::from_secs(3600));
    assert_eq!(a.backend.retries, 1);
    assert_eq!(
        a.backend.passive_health_check,
        Some(PassiveHealthCheck {
            consecutive_failures: 3,
            eject_for: Duration::from_secs(10),
            max_eject_for: Duration::from_secs(60),
        })
    );
    assert_eq!(a.balance_factor, DEFAULT_BALANCE_FACTOR);
    let skipper = LifoSpec {
        max_concurrency: 100,
        max_queue_size: 100,
        timeout: Duration::from_secs(10),
    };
    assert_eq!(a.lifo, Some(skipper));
    assert_eq!(a.lifo_group.as_ref().unwrap().spec, skipper);
}

#[test]
fn partial_lifo_takes_defaults_for_the_rest_and_last_filter_wins() {
    let t = table(
        "routes:
  - name: a
    filters:
      - consistentHashBalanceFactor: 3
      - lifo: {maxConcurrency: 5}
      - consistentHashBalanceFactor: 1
      - lifo: {timeout: 2s}
    backend: {endpoints: [http://a:1]}
",
    );
    let a = t.get("a").unwrap();
    assert_eq!(a.balance_factor, 1.0);
    assert_eq!(
        a.lifo,
        Some(LifoSpec {
            max_concurrency: 100,
            max_queue_size: 100,
            timeout: Duration::from_secs(2),
        })
    );
}

#[test]
fn an_empty_or_null_route_list_is_an_empty_table() {
    assert!(table("routes: []\n").is_empty());
    assert!(table("routes:\n").is_empty());
    assert!(RouteTable::empty().is_empty());
}

#[test]
fn anchors_and_aliases_are_followed() {
    let t = table(
        "routes:
  - name: a
    backend: &be {endpoints: [http://a:1], retries: 0}
  - name: b
    backend: *be
",
    );
    assert_eq!(t.get("b").unwrap().backend.retries, 0);
}

#[test]
fn serialises_to_json_as_in_the_file() {
    let t = table(FULL);
    let json = serde_json::to_value(&t).unwrap();
    let p = &json["routes"][0];
    assert_eq!(p["name"], "products");
    assert_eq!(p["match"]["path"], "/products/{id}");
    assert_eq!(p["match"]["method"][0], "GET");
    assert_eq!(p["match"]["headers"]["x-tenant"], "acme");
    assert_eq!(p["filters"][0]["consistentHashKey"], "sku-${id}");
    assert_eq!(p["filters"][2]["lifo"]["timeout"], "1.5s");
    assert_eq!(p["filters"][3]["lifoGroup"]["name"], "catalog");
    assert_eq!(p["filters"][3]["lifoGroup"]["maxConcurrency"], 200);
    assert_eq!(p["filters"][4]["setRequestHeader"]["name"], "X-From");
    assert_eq!(p["backend"]["algorithm"], "consistentHash");
    assert_eq!(p["backend"]["endpoints"][0], "http://10.0.0.1:8080");
    assert_eq!(p["backend"]["timeouts"]["response"], "1m30s");
    assert_eq!(p["backend"]["timeouts"]["tunnelIdle"], "10m");
    assert_eq!(p["balanceFactor"], 1.5);
    let s = &json["routes"][1];
    assert_eq!(s["backend"]["service"]["port"], "http");
    assert!(s["match"].get("path").is_none());
    assert_eq!(json["routes"][2]["backend"]["service"]["port"], 8080);
    assert_eq!(json["routes"][3]["backend"]["status"], 410);
}

#[test]
fn passive_health_check_settings() {
    let t = table(
        "routes:
  - name: off
    backend: {endpoints: [http://a:1], passiveHealthCheck: false}
  - name: on
    backend: {endpoints: [http://a:1], passiveHealthCheck: true}
  - name: empty
    backend: {endpoints: [http://a:1], passiveHealthCheck: ~}
  - name: full
    backend:
      endpoints: [http://a:1]
      passiveHealthCheck: {consecutiveFailures: 5, ejectFor: 500ms, maxEjectFor: 2s}
  - name: long
    backend: {endpoints: [http://a:1], passiveHealthCheck: {ejectFor: 2m}}
",
    );
    let check = |name: &str| t.get(name).unwrap().backend.passive_health_check;
    assert_eq!(check("off"), None);
    assert_eq!(check("on"), Some(PassiveHealthCheck::default()));
    assert_eq!(check("empty"), Some(PassiveHealthCheck::default()));
    let full = PassiveHealthCheck {
        consecutive_failures: 5,
        eject_for: Duration::from_millis(500),
        max_eject_for: Duration::from_secs(2),
    };
    assert_eq!(check("full"), Some(full));
    let policy = full.policy();
    assert_eq!(
        (
            policy.consecutive_failures,
            policy.eject_for_ms,
            policy.max_eject_for_ms
        ),
        (5, 500, 2_000)
    );
    // Without a cap of its own, a long ejectFor is its own cap.
    let long = check("long").unwrap();
    assert_eq!(
        (long.eject_for, long.max_eject_for),
        (Duration::from_secs(120), Duration::from_secs(120))
    );
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["routes"][0]["backend"]["passiveHealthCheck"], false);
    assert_eq!(
        json["routes"][3]["backend"]["passiveHealthCheck"],
        serde_json::json!({"consecutiveFailures": 5, "ejectFor": "500ms", "maxEjectFor": "2s"})
    );
}

#[test]
fn a_later_header_filter_for_the_same_name_replaces_the_earlier() {
    let t = common::table(
        "routes:\n  - name: r\n    filters:\n      - setRequestHeader: {name: X-Forwarded-Proto, value: http}\n      - setRequestHeader: {name: x-forwarded-proto, value: https}\n      - setResponseHeader: {name: A, value: '1'}\n      - setResponseHeader: {name: B, value: '2'}\n      - setResponseHeader: {name: a, value: '3'}\n    backend: {endpoints: [http://a:1]}\n",
    );
    let r = &t.routes()[0];
    assert_eq!(
        r.request_headers,
        [("x-forwarded-proto".into(), "https".into())]
    );
    assert_eq!(
        r.response_headers,
        [("a".into(), "3".into()), ("b".into(), "2".into())]
    );
}
