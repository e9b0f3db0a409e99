//! Fade-in end to end: a pod joins a running proxy (by a route-file reload, and
//! by an EndpointSlice event from the in-test API server) and takes its keys
//! gradually over the `fadeIn` window; every key is served by its old owner or
//! its new one, and a key that moved stays moved. Retries follow the ring.
mod support;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use support::cluster::{wait_for_endpoints, Cluster, SERVICE_ROUTES};
use support::k8s_apiserver::ready;
use support::{consistent_routes, eventually, Backend, Ringress};

const FADE_SECS: f64 = 4.0;
const FADE: &str = "      - fadeIn: {duration: 4s, exponent: 1.0}\n";

fn sample() -> Vec<String> {
    (0..240).map(|i| format!("p{i}")).collect()
}

/// Which backend serves each key now (one request each, one at a time, so
/// bounded load never spills).
fn owners(proxy: &Ringress, keys: &[String]) -> HashMap<String, String> {
    let mut client = proxy.client();
    keys.iter()
        .map(|k| {
            let resp = client.get(&format!("/products/{k}")).unwrap();
            assert_eq!(resp.status, 200, "{k}: {}", resp.body);
            (k.clone(), resp.header("x-backend").unwrap().to_string())
        })
        .collect()
}

/// Rounds of the sample through the proxy from `joined` until the window is
/// well over; checks every answer and returns (seconds since `joined`, share
/// of the new pod's eventual keys it served) per round.
fn watch_fade_in(
    proxy: &Ringress,
    keys: &[String],
    before: &HashMap<String, String>,
    new_pod: &str,
    joined: Instant,
) -> Vec<(f64, f64)> {
    let mut rounds = Vec::new();
    let mut history: Vec<HashMap<String, String>> = Vec::new();
    while joined.elapsed().as_secs_f64() < FADE_SECS + 1.5 {
        let at = joined.elapsed().as_secs_f64();
        history.push(owners(proxy, keys));
        rounds.push(at);
        thread::sleep(Duration::from_millis(150));
    }
    let after = history.last().unwrap();
    let moving: Vec<&String> = keys.iter().filter(|k| after[*k] == new_pod).collect();
    assert!(
        moving.len() > keys.len() / 10,
        "the new pod owns a share of the sample: {}",
        moving.len()
    );
    for k in keys {
        let mut moved = false;
        for round in &history {
            let at = &round[k];
            assert!(
                *at == before[k] || *at == after[k],
                "{k} went to a third pod: {} then {at} then {}",
                before[k],
                after[k]
            );
            if at == new_pod {
                moved = true;
            } else {
                assert!(!moved, "{k} moved to {new_pod} and came back");
            }
        }
        if after[k] != new_pod {
            assert_eq!(after[k], before[k], "{k} is not the new pod's, yet moved");
        }
    }
    rounds
        .into_iter()
        .zip(&history)
        .map(|(at, round)| {
            let there = moving.iter().filter(|k| round[**k] == new_pod).count();
            (at, there as f64 / moving.len() as f64)
        })
        .collect()
}

/// The share rose over the window, roughly along the ramp: little in the
/// first fifth, part-way in the middle, all of it once the window is over.
fn assert_rises(shares: &[(f64, f64)]) {
    eprintln!("FIGURES share of the new pod's keys at (s since it joined, share): {shares:.2?}");
    let early: Vec<f64> = shares
        .iter()
        .filter(|(t, _)| *t < FADE_SECS * 0.15)
        .map(|s| s.1)
        .collect();
    assert!(
        !early.is_empty() && early.iter().all(|&s| s < 0.4),
        "{shares:?}"
    );
    assert!(
        shares
            .iter()
            .any(|&(t, s)| t > FADE_SECS * 0.3 && t < FADE_SECS * 0.8 && s > 0.1 && s < 0.95),
        "part-way in the middle of the window: {shares:?}"
    );
    assert!(shares.windows(2).all(|w| w[1].1 >= w[0].1), "{shares:?}");
    assert_eq!(shares.last().unwrap().1, 1.0, "{shares:?}");
}

#[test]
fn a_pod_added_by_a_route_file_reload_fades_in() {
    let pods: Vec<Backend> = (0..5).map(|i| Backend::start(&format!("b{i}"))).collect();
    let all: Vec<&Backend> = pods.iter().collect();
    let proxy = Ringress::start(&consistent_routes(&all[..4], FADE));
    let keys = sample();
    let before = owners(&proxy, &keys);
    // Pods of the first table were there from the start: no fade-in at all.
    assert!(before.values().all(|b| b != "b4"));

    proxy.write_routes(&consistent_routes(&all, FADE));
    eventually(Duration::from_secs(10), "the reload", || {
        let routes = proxy.admin_get("/routes").body;
        routes.contains(&pods[4].url()).then_some(())
    });
    let joined = Instant::now();
    // The admin view says who is fading in, and how far.
    let routes: serde_json::Value = serde_json::from_str(&proxy.admin_get("/routes").body).unwrap();
    let fading: Vec<(&str, f64)> = routes["routes"][0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["address"].as_str()?, e["fade_in_share"].as_f64()?)))
        .collect();
    assert!(
        fading.len() == 1 && fading[0].0 == pods[4].url() && fading[0].1 < 0.5,
        "{fading:?}"
    );
    let shares = watch_fade_in(&proxy, &keys, &before, "b4", joined);
    assert_rises(&shares);
}

#[test]
fn a_pod_added_by_an_endpoint_slice_event_fades_in_and_a_restart_does_not_fade_again() {
    let cluster = Cluster::new(5);
    let eps = |n: usize| (0..n).map(|i| ready(&cluster.ip(i))).collect::<Vec<_>>();
    cluster.publish(eps(4));
    let routes = SERVICE_ROUTES.replace(
        "      - consistentHashKey: \"${id}\"\n",
        &format!("      - consistentHashKey: \"${{id}}\"\n{FADE}"),
    );
    assert!(routes.contains("fadeIn"));
    let proxy = cluster.proxy_with(&routes);
    let urls: Vec<String> = (0..5).map(|i| cluster.url(i)).collect();
    wait_for_endpoints(&proxy, &urls[..4]);
    let keys = sample();
    let before = owners(&proxy, &keys);

    cluster.publish(eps(5));
    wait_for_endpoints(&proxy, &urls);
    let joined = Instant::now();
    let shares = watch_fade_in(&proxy, &keys, &before, &cluster.ip(4), joined);
    assert_rises(&shares);

    // A restarted proxy reads the slice's creation time, older than itself:
    // every pod counts as established and the new pod's keys are at once its.
    cluster.publish(eps(5));
    let after = owners(&proxy, &keys);
    drop(proxy);
    let restarted = cluster.proxy_with(&routes);
    wait_for_endpoints(&restarted, &urls);
    assert_eq!(owners(&restarted, &keys), after);
}

/// The pod the ring gives `key` among `urls`, skipping the `down` ones.
fn ring_owner(urls: &[String], key: &str, down: &[usize]) -> usize {
    let registry = ringress_ring::Registry::new();
    let ring = ringress_ring::HashRing::new(urls.iter().map(|u| registry.endpoint(u)).collect());
    ring.owner_among(ringress_ring::hash_key(key.as_bytes()), down)
        .unwrap()
}

#[test]
fn retries_follow_the_ring_clockwise() {
    // Two pods refuse connections (nothing listens on their ports); the
    // passive health check is off so only the retry order decides.
    let up: Vec<Backend> = (0..3).map(|i| Backend::start(&format!("b{i}"))).collect();
    let dead: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}", support::free_port()))
        .collect();
    let mut urls: Vec<String> = up.iter().map(|b| b.url()).collect();
    urls.extend(dead.iter().cloned());
    let routes = format!(
        "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    filters: [{{consistentHashKey: \"${{id}}\"}}]\n    backend:\n      endpoints: [{}]\n      retries: 2\n      passiveHealthCheck: false\n",
        urls.join(", ")
    );
    let proxy = Ringress::start(&routes);
    let name = |i: usize| format!("b{i}");
    let mut client = proxy.client();
    let (mut once, mut twice) = (0, 0);
    for i in 0..200 {
        let key = format!("k{i}");
        let owner = ring_owner(&urls, &key, &[]);
        if owner < 3 {
            continue;
        }
        // The owner refuses: the next distinct pod clockwise, then the one after.
        let next = ring_owner(&urls, &key, &[owner]);
        let expected = if next < 3 {
            once += 1;
            next
        } else {
            twice += 1;
            ring_owner(&urls, &key, &[3, 4])
        };
        let resp = client.get(&format!("/products/{key}")).unwrap();
        assert_eq!(resp.status, 200, "{key}: {}", resp.body);
        assert_eq!(
            resp.header("x-backend"),
            Some(name(expected).as_str()),
            "{key}"
        );
    }
    assert!(
        once > 0 && twice > 0,
        "both orders exercised: {once} {twice}"
    );
    // Counted once a response is out, a moment after the client has it: poll.
    let want = (once + twice) as f64;
    eventually(
        Duration::from_secs(5),
        "every retried request counted",
        || {
            let served = proxy.metric_sum(
                "ringress_retried_requests_total",
                &[r#"route="products""#, r#"outcome="served""#],
            );
            (served == want).then_some(())
        },
    );

    // With one retry, keys whose first two pods refuse fail, counted as failed.
    let one_retry = routes.replace("retries: 2", "retries: 1");
    proxy.write_routes(&one_retry);
    eventually(Duration::from_secs(10), "the reload", || {
        proxy
            .admin_get("/routes")
            .body
            .contains("\"retries\":1")
            .then_some(())
    });
    let key = (0..200)
        .map(|i| format!("k{i}"))
        .find(|k| {
            ring_owner(&urls, k, &[]) >= 3
                && ring_owner(&urls, k, &[3, 4]) < 3
                && ring_owner(&urls, k, &[ring_owner(&urls, k, &[])]) >= 3
        })
        .unwrap();
    let resp = client.get(&format!("/products/{key}")).unwrap();
    assert_eq!(resp.status, 502, "{}", resp.body);
    eventually(Duration::from_secs(5), "the failed retry counted", || {
        let failed = proxy.metric_sum(
            "ringress_retried_requests_total",
            &[r#"route="products""#, r#"outcome="failed""#],
        );
        (failed == 1.0).then_some(())
    });
}
