//! Properties of fade-in on generated endpoint sets: a key whose owner is a
//! fading pod goes to that pod or to the owner it had before, never to a third;
//! once moved it stays; the share moved follows the ramp; keys of other pods
//! never move.
use std::sync::Arc;

use proptest::prelude::*;
use ringress_ring::{
    build, hash_key, pick, Algorithm, Balancer, Endpoint, FadeIn, NoExclusion, PickContext,
    Registry, Soft,
};

const FADE: FadeIn = FadeIn {
    duration_ms: 30_000,
    exponent: 1.0,
};
/// When the new pod became ready, on the test's clock.
const READY: u64 = 100_000;

fn pod(i: usize) -> String {
    format!("http://10.0.{}.{}:8080", (i >> 8) & 255, i & 255)
}

fn keys(n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| hash_key(format!("product-{i}").as_bytes()))
        .collect()
}

/// The balancer over `old` plus a new pod ready since [`READY`] (last index).
fn with_new_pod(registry: &Registry, old: &[String], new: &str) -> Arc<dyn Balancer> {
    let mut endpoints: Vec<Arc<Endpoint>> = old.iter().map(|a| registry.endpoint(a)).collect();
    endpoints.push(registry.endpoint_ready_since(new, READY));
    build(Algorithm::ConsistentHash, endpoints, 2.0)
}

fn owner_at(b: &dyn Balancer, key: u64, now_ms: u64, fade: Option<FadeIn>) -> usize {
    let ctx = PickContext {
        key_hash: key,
        random: 0,
    };
    let soft = Soft {
        now_ms,
        health: false,
        fade_in: fade,
    };
    pick(b, &ctx, &NoExclusion, soft).unwrap().endpoint
}

fn endpoint_set(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::hash_set(0usize..60_000, 1..=max)
        .prop_map(|ids| ids.into_iter().map(pod).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn keys_go_to_their_old_or_new_owner_and_move_once(
        old in endpoint_set(10),
        new_id in 60_000usize..65_000,
        exponent in 0.3f64..3.0,
    ) {
        let registry = Registry::new();
        let b = with_new_pod(&registry, &old, &pod(new_id));
        let new = old.len();
        let fade = FadeIn { exponent, ..FADE };
        let before = build(Algorithm::ConsistentHash, old.iter().map(|a| registry.endpoint(a)).collect(), 2.0);
        let steps: Vec<u64> = (0..=12).map(|s| READY + s * 3_000).collect();
        for key in keys(2_000) {
            let was = owner_at(&*before, key, READY, None);
            let will = owner_at(&*b, key, READY + FADE.duration_ms, Some(fade));
            let mut moved = false;
            for &now in &steps {
                let at = owner_at(&*b, key, now, Some(fade));
                prop_assert!(at == was || at == new, "key went to a third pod");
                prop_assert_eq!(at, owner_at(&*b, key, now, Some(fade)), "not stable at one moment");
                if at == new {
                    moved = true;
                } else {
                    prop_assert!(!moved, "a key that moved came back");
                }
            }
            prop_assert_eq!(moved, will == new, "faded in: every key the new pod owns is there");
            if will != new {
                prop_assert_eq!(will, was, "keys of other pods never move");
            }
        }
    }
}

#[test]
fn the_share_moved_follows_the_ramp() {
    let registry = Registry::new();
    let old: Vec<String> = (0..4).map(pod).collect();
    let b = with_new_pod(&registry, &old, &pod(99));
    let keys = keys(40_000);
    let owned = keys
        .iter()
        .filter(|&&k| owner_at(&*b, k, READY + FADE.duration_ms, Some(FADE)) == 4)
        .count() as f64;
    for (exponent, at, want) in [
        (1.0, 0.25, 0.25),
        (1.0, 0.5, 0.5),
        (2.0, 0.5, 0.25),
        (0.5, 0.25, 0.5),
    ] {
        let fade = FadeIn { exponent, ..FADE };
        let now = READY + (FADE.duration_ms as f64 * at) as u64;
        let moved = keys
            .iter()
            .filter(|&&k| owner_at(&*b, k, now, Some(fade)) == 4)
            .count() as f64;
        let share = moved / owned;
        assert!(
            (share - want).abs() < 0.03,
            "exponent {exponent} at {at} of the duration: {share:.3} of the new pod's keys moved, want {want}"
        );
    }
    assert_eq!(
        keys.iter()
            .filter(|&&k| owner_at(&*b, k, READY, Some(FADE)) == 4)
            .count(),
        0,
        "nothing at the start"
    );
}

#[test]
fn pods_that_fade_in_together_are_not_starved() {
    // A fleet that comes up at once (every endpoint equally new) serves every key
    // at its owner: nothing to fade in from.
    let registry = Registry::new();
    let endpoints: Vec<Arc<Endpoint>> = (0..5)
        .map(|i| registry.endpoint_ready_since(&pod(i), READY))
        .collect();
    let b = build(Algorithm::ConsistentHash, endpoints, 2.0);
    for key in keys(2_000) {
        assert_eq!(
            owner_at(&*b, key, READY + 1_000, Some(FADE)),
            owner_at(&*b, key, READY + 1_000, None)
        );
    }
}

#[test]
fn keyless_algorithms_fade_in_by_request() {
    let registry = Registry::new();
    for algorithm in [
        Algorithm::PowerOfRandomNChoices,
        Algorithm::RoundRobin,
        Algorithm::Random,
    ] {
        let mut endpoints: Vec<Arc<Endpoint>> =
            (0..3).map(|i| registry.endpoint(&pod(i))).collect();
        endpoints.push(registry.endpoint_ready_since(&pod(50), READY));
        let b = build(algorithm, endpoints, 2.0);
        let share_at = |now: u64| {
            let n = 40_000u64;
            let hits = (0..n)
                .filter(|&i| {
                    let ctx = PickContext {
                        key_hash: 0,
                        random: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    };
                    let soft = Soft {
                        now_ms: now,
                        health: false,
                        fade_in: Some(FADE),
                    };
                    pick(&*b, &ctx, &NoExclusion, soft).unwrap().endpoint == 3
                })
                .count();
            hits as f64 / n as f64
        };
        let (start, half, full) = (
            share_at(READY),
            share_at(READY + FADE.duration_ms / 2),
            share_at(READY + FADE.duration_ms),
        );
        assert!(start < 0.001, "{algorithm}: {start}");
        assert!((half - 0.125).abs() < 0.02, "{algorithm}: {half}");
        assert!((full - 0.25).abs() < 0.02, "{algorithm}: {full}");
    }
}
