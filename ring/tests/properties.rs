//! Properties of the ring and the balancers over generated endpoint sets.
use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use ringress_ring::{
    build, hash_key, Algorithm, Balancer, ConsistentHash, Endpoint, HashRing, InFlightGuard,
    NoExclusion, PickContext, Registry,
};

fn pod(i: usize) -> String {
    format!(
        "http://10.{}.{}.{}:8080",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    )
}

fn ring_of(registry: &Registry, addrs: &[String]) -> HashRing {
    HashRing::new(addrs.iter().map(|a| registry.endpoint(a)).collect())
}

fn owner_addr(ring: &HashRing, key: u64) -> &str {
    ring.endpoints()[ring.owner(key).unwrap()].addr()
}

fn keys(n: usize, salt: u64) -> Vec<u64> {
    (0..n)
        .map(|i| hash_key(format!("key-{salt}-{i}").as_bytes()))
        .collect()
}

/// Distinct endpoint addresses, 1..=max of them.
fn endpoint_set(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::hash_set(0usize..100_000, 1..=max)
        .prop_map(|ids| ids.into_iter().map(pod).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn removing_an_endpoint_moves_only_its_keys(addrs in endpoint_set(12), victim in any::<prop::sample::Index>()) {
        prop_assume!(addrs.len() >= 2);
        let registry = Registry::new();
        let before = ring_of(&registry, &addrs);
        let gone = addrs[victim.index(addrs.len())].clone();
        let rest: Vec<String> = addrs.iter().filter(|a| **a != gone).cloned().collect();
        let after = ring_of(&registry, &rest);
        for k in keys(3000, 1) {
            let (b, a) = (owner_addr(&before, k), owner_addr(&after, k));
            prop_assert!(b == a || b == gone, "key moved from {b} to {a} though only {gone} left");
        }
    }

    #[test]
    fn adding_an_endpoint_moves_keys_only_onto_it(addrs in endpoint_set(12), new in 100_000usize..200_000) {
        let registry = Registry::new();
        let before = ring_of(&registry, &addrs);
        let added = pod(new);
        let mut grown = addrs.clone();
        grown.push(added.clone());
        let after = ring_of(&registry, &grown);
        for k in keys(3000, 2) {
            let (b, a) = (owner_addr(&before, k), owner_addr(&after, k));
            prop_assert!(b == a || a == added, "key moved from {b} to {a}, not onto {added}");
        }
    }

    /// One addition's share has ~10% relative spread (100 positions), so a single
    /// draw would break ±25% now and then; averaged over 8 additions it must hold.
    #[test]
    fn scaling_n_to_n_plus_1_moves_about_one_over_n_plus_1(addrs in endpoint_set(20), base in 200_000usize..300_000) {
        let registry = Registry::new();
        let before = ring_of(&registry, &addrs);
        let keys = keys(20_000, 3);
        let expected = 1.0 / (addrs.len() + 1) as f64;
        let mut total = 0.0;
        for extra in 0..8 {
            let mut grown = addrs.clone();
            grown.push(pod(base + extra * 1000));
            let after = ring_of(&registry, &grown);
            let moved = keys.iter().filter(|&&k| owner_addr(&before, k) != owner_addr(&after, k)).count();
            total += moved as f64 / keys.len() as f64;
        }
        let mean = total / 8.0;
        prop_assert!((mean - expected).abs() <= 0.25 * expected, "moved {mean:.4}, expected {expected:.4}");
    }

    #[test]
    fn sequential_arrivals_never_exceed_the_bound(n in 1usize..16, factor in 1.0f64..4.0, hot in any::<bool>(), seed in any::<u64>()) {
        let registry = Registry::new();
        let addrs: Vec<String> = (0..n).map(pod).collect();
        let endpoints: Vec<Arc<Endpoint>> = addrs.iter().map(|a| registry.endpoint(a)).collect();
        let ring = ConsistentHash::new(endpoints.clone(), factor);
        let mut held: Vec<InFlightGuard> = Vec::new();
        for i in 0..400u64 {
            // A hot key (every request the same) is the adversarial case.
            let key = if hot { 42 } else { hash_key(&(seed ^ i).to_le_bytes()) };
            let pick = ring.pick(&PickContext { key_hash: key, random: 0 }, &NoExclusion).unwrap();
            held.push(endpoints[pick.endpoint].acquire());
            let total = held.len() as f64;
            let bound = (total / n as f64 * factor).floor() as usize + 1;
            for e in &endpoints {
                prop_assert!(e.in_flight() <= bound, "{} holds {} > {bound}", e.addr(), e.in_flight());
            }
        }
    }

    #[test]
    fn excluded_endpoints_are_never_returned(
        n in 1usize..24,
        excluded in prop::collection::hash_set(0usize..24, 0..24),
        loads in prop::collection::vec(0usize..6, 24),
        key in any::<u64>(),
        random in any::<u64>(),
    ) {
        let registry = Registry::new();
        let endpoints: Vec<Arc<Endpoint>> = (0..n).map(|i| registry.endpoint(&pod(i))).collect();
        let _held: Vec<InFlightGuard> = endpoints.iter().zip(&loads)
            .flat_map(|(e, &l)| (0..l).map(|_| e.acquire())).collect();
        let candidates = (0..n).filter(|i| !excluded.contains(i)).count();
        let exclude = |i: usize| excluded.contains(&i);
        for algorithm in Algorithm::ALL {
            let balancer = build(algorithm, endpoints.clone(), 1.25);
            for r in 0..8u64 {
                let ctx = PickContext { key_hash: key, random: random.wrapping_add(r) };
                match balancer.pick(&ctx, &exclude) {
                    Some(p) => {
                        prop_assert!(!excluded.contains(&p.endpoint), "{algorithm} returned excluded {}", p.endpoint);
                        prop_assert!(!excluded.contains(&p.owner));
                    }
                    None => prop_assert_eq!(candidates, 0, "{} found nothing among {} candidates", algorithm, candidates),
                }
            }
        }
    }
}

/// Pods named like a real Deployment's, scaled one at a time. A single step's
/// share has ~10% relative spread (100 positions per pod), so each step is held
/// to ±35% and the mean over all steps to ±5%.
#[test]
fn scaling_each_step_from_1_to_30_pods_moves_about_one_over_n_plus_1() {
    let registry = Registry::new();
    let keys = keys(50_000, 4);
    let mut ratios = Vec::new();
    for n in 1..30 {
        let addrs: Vec<String> = (0..n).map(pod).collect();
        let before = ring_of(&registry, &addrs);
        let grown: Vec<String> = (0..=n).map(pod).collect();
        let after = ring_of(&registry, &grown);
        let moved = keys
            .iter()
            .filter(|&&k| owner_addr(&before, k) != owner_addr(&after, k))
            .count() as f64
            / keys.len() as f64;
        let ratio = moved * (n + 1) as f64;
        assert!(
            (ratio - 1.0).abs() <= 0.35,
            "{n}→{}: moved {moved:.4} = {ratio:.2} × 1/(N+1)",
            n + 1
        );
        ratios.push(ratio);
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!(
        (mean - 1.0).abs() <= 0.05,
        "mean moved share {mean:.3} × 1/(N+1); steps {ratios:.2?}"
    );
}

#[test]
fn counters_survive_ring_rebuilds_and_idle_entries_are_dropped() {
    let registry = Registry::new();
    let a = pod(1);
    let b = pod(2);
    let first = ring_of(&registry, &[a.clone(), b.clone()]);
    let guard = first.endpoints()[0].acquire();
    let rebuilt = ring_of(&registry, &[b.clone(), a.clone()]);
    let a_again = rebuilt.endpoints().iter().find(|e| e.addr() == a).unwrap();
    assert_eq!(a_again.in_flight(), 1, "count survives the rebuild");

    // `a` leaves every ring while a request is still in flight.
    drop(first);
    drop(rebuilt);
    let without_a = ring_of(&registry, std::slice::from_ref(&b));
    registry.prune();
    assert_eq!(
        registry.get(&a).map(|e| e.in_flight()),
        Some(1),
        "busy entry kept"
    );
    drop(guard);
    registry.prune();
    assert!(registry.get(&a).is_none(), "idle entry dropped");
    assert_eq!(registry.len(), 1);
    assert_eq!(without_a.endpoints()[0].in_flight(), 0);
}

#[test]
fn guard_releases_on_panic() {
    let registry = Registry::new();
    let e = registry.endpoint(&pod(7));
    let e2 = Arc::clone(&e);
    let result = std::panic::catch_unwind(move || {
        let _g = e2.acquire();
        panic!("request handler failed");
    });
    assert!(result.is_err());
    assert_eq!(e.in_flight(), 0);
}

#[test]
fn power_of_two_prefers_the_less_loaded_draw_and_spreads_a_batch() {
    let registry = Registry::new();
    let endpoints: Vec<Arc<Endpoint>> = (0..4).map(|i| registry.endpoint(&pod(i))).collect();
    let p2c = build(Algorithm::PowerOfRandomNChoices, endpoints.clone(), 2.0);
    let mut held = Vec::new();
    for r in 0..400u64 {
        let pick = p2c
            .pick(
                &PickContext {
                    key_hash: 0,
                    random: r.wrapping_mul(0x9e37_79b9),
                },
                &NoExclusion,
            )
            .unwrap();
        held.push(endpoints[pick.endpoint].acquire());
    }
    let loads: Vec<usize> = endpoints.iter().map(|e| e.in_flight()).collect();
    let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
    // Uniform random would leave a spread of ~±20 here; two choices keep it tight.
    assert!(max - min <= 4, "loads {loads:?}");
}

#[test]
fn round_robin_visits_every_candidate_in_turn() {
    let registry = Registry::new();
    let endpoints: Vec<Arc<Endpoint>> = (0..3).map(|i| registry.endpoint(&pod(i))).collect();
    let rr = build(Algorithm::RoundRobin, endpoints, 2.0);
    let ctx = PickContext::default();
    let seq: Vec<usize> = (0..6)
        .map(|_| rr.pick(&ctx, &NoExclusion).unwrap().endpoint)
        .collect();
    assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    let skip_1 = |i: usize| i == 1;
    let seq: HashSet<usize> = (0..6)
        .map(|_| rr.pick(&ctx, &skip_1).unwrap().endpoint)
        .collect();
    assert_eq!(seq, HashSet::from([0, 2]));
}

#[test]
fn empty_rings_pick_nothing() {
    for algorithm in Algorithm::ALL {
        let b = build(algorithm, Vec::new(), 2.0);
        assert!(
            b.pick(&PickContext::default(), &NoExclusion).is_none(),
            "{algorithm}"
        );
    }
}
