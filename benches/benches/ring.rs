//! Ring algorithms: lookup, bounded-load pick, build, power of two choices.
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ringress_ring::{
    build, hash_key, Algorithm, Balancer, ConsistentHash, Endpoint, HashRing, NoExclusion,
    PickContext, Registry,
};

fn pods(registry: &Registry, n: usize) -> Vec<Arc<Endpoint>> {
    (0..n)
        .map(|i| {
            registry.endpoint(&format!(
                "http://10.{}.{}.{}:8080",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            ))
        })
        .collect()
}

/// Pseudo-random key hashes, so lookups land all over the ring as real keys do.
fn key_hashes(n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| hash_key(format!("sku-{i}").as_bytes()))
        .collect()
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/lookup");
    for n in [10, 100, 1000] {
        let registry = Registry::new();
        let ring = HashRing::new(pods(&registry, n));
        let keys = key_hashes(4096);
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(ring.owner(black_box(keys[i])))
            })
        });
    }
    group.finish();
}

fn bounded_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/bounded_pick");
    for n in [10, 100, 1000] {
        let registry = Registry::new();
        let endpoints = pods(&registry, n);
        // Every endpoint busy (so the bound is computed), a few far over target.
        let mut held = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let load = if i % (n / 5).max(1) == 0 { 50 } else { 2 };
            held.extend((0..load).map(|_| e.acquire()));
        }
        let ring = ConsistentHash::new(endpoints, 2.0);
        let keys = key_hashes(4096);
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                let ctx = PickContext {
                    key_hash: keys[i],
                    random: 0,
                };
                black_box(ring.pick(black_box(&ctx), &NoExclusion))
            })
        });
        drop(held);
    }
    group.finish();
}

fn ring_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/build");
    group.sample_size(20);
    for n in [10, 1000] {
        let registry = Registry::new();
        let endpoints = pods(&registry, n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(HashRing::new(endpoints.clone())))
        });
    }
    group.finish();
}

fn p2c_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/p2c_pick");
    for n in [10, 1000] {
        let registry = Registry::new();
        let endpoints = pods(&registry, n);
        let held: Vec<_> = endpoints.iter().map(|e| e.acquire()).collect();
        let p2c = build(Algorithm::PowerOfRandomNChoices, endpoints, 2.0);
        let mut r = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                r = r.wrapping_add(1);
                let ctx = PickContext {
                    key_hash: 0,
                    random: r,
                };
                black_box(p2c.pick(black_box(&ctx), &NoExclusion))
            })
        });
        drop(held);
    }
    group.finish();
}

criterion_group!(benches, lookup, bounded_pick, ring_build, p2c_pick);
criterion_main!(benches);
