//! The policy core's per-request decision, without I/O: match the route,
//! resolve and hash the key, pick the endpoint (ring with bounded load,
//! passive health, fade-in), hold and release its in-flight count, and
//! record the request's metrics — what every transport asks of the core for
//! one GET. The routes are the quickstart's shape: one keyed product route
//! over 10 endpoints among a few others.
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use ringress::control::ingress::Ingress;
use ringress::data::policy::attempts::Attempts;
use ringress::data::policy::record::{self, Finished};
use ringress::data::policy::routing;
use ringress_routes::{RequestParts, RouteTable};

struct Req<'a> {
    path: &'a str,
}

impl RequestParts for Req<'_> {
    fn method(&self) -> &str {
        "GET"
    }
    fn host(&self) -> Option<&str> {
        Some("shop.example.com")
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header(&self, _lowercase_name: &str) -> Option<&str> {
        None
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        Some(IpAddr::from([10, 1, 2, 3]))
    }
}

fn routes(extra_filters: &str) -> String {
    let endpoints: Vec<String> = (1..=10)
        .map(|i| format!("http://10.0.0.{i}:8080"))
        .collect();
    format!(
        "routes:
  - name: health
    match: {{path: /healthz}}
    backend: {{status: 200}}
  - name: static
    match: {{pathPrefix: /static/}}
    backend: {{algorithm: roundRobin, endpoints: [http://10.0.1.1:8080]}}
  - name: products
    match: {{path: \"/products/{{id}}\", method: [GET, HEAD]}}
    filters:
      - consistentHashKey: \"${{id}}\"
{extra_filters}    backend: {{endpoints: [{}]}}
",
        endpoints.join(", ")
    )
}

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for (name, extra) in [
        ("consistent_hash", ""),
        ("consistent_hash_fade_in", "      - fadeIn: 30s\n"),
    ] {
        let table = RouteTable::parse("bench.yaml", &routes(extra)).expect("valid routes");
        let ingress = Ingress::new("bench.yaml", table, false, None).expect("no TLS files");
        let plane = &ingress.data;
        let paths: Vec<String> = (0..1024).map(|i| format!("/products/{i}")).collect();
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let req = Req { path: &paths[i] };
                let start = Instant::now();
                let runtime = plane.runtime();
                let routed = routing::route(&runtime, &req).expect("routed");
                let rr = &runtime.routes[routed.route];
                let mut attempts = Attempts::default();
                let candidate = attempts
                    .next(rr, routed.key_hash, start)
                    .expect("an endpoint");
                black_box(candidate.addr);
                attempts.responded();
                attempts.release();
                let done = Finished {
                    method: "GET",
                    host: Some("shop.example.com"),
                    path: req.path,
                    client: req.peer_ip(),
                    status: 200,
                    start,
                    protocol: "HTTP/1.1",
                    scheme: "http",
                };
                record::finish(plane, Some(rr), &attempts, &done);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
