//! Golden vectors computed from Skipper's `consistentHash` algorithm, so a team
//! moving from Skipper keeps the same key → pod mapping.
use std::sync::Arc;

use ringress_ring::{
    hash_key, xxh64, Balancer, ConsistentHash, Endpoint, InFlightGuard, NoExclusion, PickContext,
    Registry,
};

const A: &str = "http://10.0.0.1:8080";
const B: &str = "http://10.0.0.2:8080";
const C: &str = "http://10.0.0.3:8080";

fn endpoints(registry: &Registry, addrs: &[&str]) -> Vec<Arc<Endpoint>> {
    addrs.iter().map(|a| registry.endpoint(a)).collect()
}

fn chosen(balancer: &ConsistentHash, key: &str) -> String {
    let ctx = PickContext {
        key_hash: hash_key(key.as_bytes()),
        random: 0,
    };
    let pick = balancer.pick(&ctx, &NoExclusion).expect("non-empty ring");
    balancer.endpoints()[pick.endpoint].addr().to_string()
}

#[test]
fn xxh64_matches_published_values() {
    assert_eq!(xxh64(b""), 0xef46db3751d8e999);
    assert_eq!(xxh64(b"a"), 0xd24ec4f1a98c6e5b);
    assert_eq!(xxh64(b"abc"), 0x44bc2cf5ad770999);
}

#[test]
fn three_endpoints_match_skipper() {
    let registry = Registry::new();
    let ring = ConsistentHash::new(endpoints(&registry, &[A, B, C]), 2.0);
    for (key, want) in [
        ("1", A),
        ("2", C),
        ("3", B),
        ("42", B),
        ("192.168.0.1", A),
        ("user-42", C),
        ("sku-1", B),
        ("/products/123", B),
    ] {
        assert_eq!(chosen(&ring, key), want, "key {key:?}");
    }
}

#[test]
fn two_endpoints_match_skipper() {
    let registry = Registry::new();
    let ring = ConsistentHash::new(endpoints(&registry, &[A, B]), 2.0);
    for (key, want) in [
        ("1", A),
        ("2", B),
        ("3", B),
        ("5", A),
        ("123", A),
        ("abc", B),
    ] {
        assert_eq!(chosen(&ring, key), want, "key {key:?}");
    }
}

#[test]
fn endpoint_order_does_not_change_placement() {
    let registry = Registry::new();
    let abc = ConsistentHash::new(endpoints(&registry, &[A, B, C]), 2.0);
    let cab = ConsistentHash::new(endpoints(&registry, &[C, A, B]), 2.0);
    for i in 0..2000 {
        let key = format!("sku-{i}");
        assert_eq!(chosen(&abc, &key), chosen(&cab, &key), "key {key}");
    }
}

#[test]
fn bounded_load_matches_skipper() {
    let registry = Registry::new();
    let eps = endpoints(&registry, &[A, B, C]);
    let ring = ConsistentHash::new(eps.clone(), 1.25);
    for (loads, want) in [
        ([0, 0, 0], A),
        ([5, 0, 0], C),
        ([5, 5, 0], C),
        ([5, 0, 5], B),
        ([2, 1, 1], A),
        ([3, 1, 1], C),
    ] {
        let _held: Vec<InFlightGuard> = eps
            .iter()
            .zip(loads)
            .flat_map(|(e, n)| (0..n).map(|_| e.acquire()))
            .collect();
        assert_eq!(chosen(&ring, "1"), want, "in-flight {loads:?}");
    }
    assert!(eps.iter().all(|e| e.in_flight() == 0), "guards released");
}
