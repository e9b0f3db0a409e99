//! Rebuilding after one endpoint of a 1,000-endpoint Service changes.
//!
//! `ring/*`: what the proxy does for the changed pool alone (registry lookups
//! for every address, then the balancer build), as `runtime::Pool::new` does.
//! `runtime/*`: the whole discovery path, `Ingress::set_service_endpoints`,
//! which copies the Service map, rebuilds the runtime (reusing every unchanged
//! pool), swaps it in and prunes the registry; with the big Service alone and
//! with 999 other routes on 10-endpoint Services beside it.
use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringress::control::ingress::Ingress;
use ringress_ring::{build, Algorithm, Registry};
use ringress_routes::{PortRef, RouteTable, ServiceRef};

const BIG: usize = 1000;

fn pod(service: usize, i: usize) -> String {
    format!(
        "http://10.{}.{}.{}:8080",
        service & 255,
        (i >> 8) & 255,
        i & 255
    )
}

/// The big Service's endpoints before and after a rolling update replaced
/// one pod (one address gone, a new one in), sorted as discovery sorts them.
fn big_lists() -> (Vec<String>, Vec<String>) {
    let mut before: Vec<String> = (0..BIG).map(|i| pod(0, i)).collect();
    before.sort();
    let mut after = before.clone();
    after[BIG / 2] = pod(0, BIG + 7);
    after.sort();
    (before, after)
}

fn ring_rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild/ring");
    group.sample_size(20);
    let (before, after) = big_lists();
    let mut removed = before.clone();
    removed.remove(BIG / 2);
    let registry = Registry::new();
    // The rings in force hold their endpoints, as the running proxy's do.
    let _in_force = build(
        Algorithm::ConsistentHash,
        before.iter().map(|a| registry.endpoint(a)).collect(),
        2.0,
    );
    for (case, list) in [
        ("replace_one", &after),
        ("remove_one", &removed),
        ("unchanged", &before),
    ] {
        group.bench_with_input(BenchmarkId::new(case, BIG), list, |b, list| {
            b.iter(|| {
                let endpoints = list.iter().map(|a| registry.endpoint(a)).collect();
                black_box(build(Algorithm::ConsistentHash, endpoints, 2.0))
            })
        });
    }
    group.finish();
}

fn service(i: usize) -> ServiceRef {
    ServiceRef {
        namespace: "shop".into(),
        name: format!("svc{i}"),
        port: PortRef::Name("http".into()),
    }
}

/// `routes` routes, route `i` on Service `svc{i}`; route 0 is the big one.
fn ingress(routes: usize) -> std::sync::Arc<Ingress> {
    let mut y = String::from("routes:\n");
    for i in 0..routes {
        let _ = write!(
            y,
            "  - name: r{i}\n    match: {{path: \"/s{i}/products/{{id}}\"}}\n    \
             filters: [{{consistentHashKey: \"${{id}}\"}}]\n    \
             backend: {{service: {{namespace: shop, name: svc{i}, port: http}}}}\n"
        );
    }
    let table = RouteTable::parse("bench.yaml", &y).expect("generated routes are valid");
    let ingress = Ingress::new("bench.yaml", table, false, None).expect("no TLS files");
    for i in 1..routes {
        ingress.set_service_endpoints(
            &service(i),
            (0..10).map(|p| pod(i, p)).collect(),
            vec![0; 10],
        );
    }
    ingress
}

fn runtime_rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild/runtime");
    group.sample_size(20);
    let (before, after) = big_lists();
    for routes in [1, 1000] {
        let ingress = ingress(routes);
        let big = service(0);
        ingress.set_service_endpoints(&big, before.clone(), vec![0; before.len()]);
        // Alternate between the two lists so every call really rebuilds.
        let mut flip = false;
        group.bench_with_input(BenchmarkId::new("replace_one", routes), &routes, |b, _| {
            b.iter(|| {
                flip = !flip;
                let list = if flip { &after } else { &before };
                ingress.set_service_endpoints(&big, list.clone(), vec![0; list.len()]);
            })
        });
        let runtime = ingress.runtime();
        assert_eq!(runtime.routes.len(), routes);
        let endpoints = runtime.routes[0]
            .pool
            .as_ref()
            .unwrap()
            .balancer
            .endpoints();
        assert_eq!(endpoints.len(), BIG);
    }
    group.finish();
}

criterion_group!(benches, ring_rebuild, runtime_rebuild);
criterion_main!(benches);
