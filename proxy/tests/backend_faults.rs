//! Backends failing under sustained keyed load: refused connections, resets
//! mid-response and before a response, stalls past the response timeout, and
//! the passive health check that ejects and readmits endpoints. Real binary,
//! real loopback backends; every test is bounded in time and prints its
//! figures (`FIGURES ...` lines, `cargo test -- --nocapture`).
mod support;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use ringress_ring::{hash_key, HashRing, Registry};
use support::faulty::FaultyBackend;
use support::traffic::{Sample, Traffic};
use support::{eventually, Backend, Client, Ringress};

/// Index (into `urls`) of the ring owner of `key`, skipping `excluded`.
fn owner_among(urls: &[String], key: &str, excluded: &[usize]) -> usize {
    let registry = Registry::new();
    let ring = HashRing::new(urls.iter().map(|u| registry.endpoint(u)).collect());
    ring.owner_among(hash_key(key.as_bytes()), excluded)
        .expect("an endpoint left")
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

/// A consistent-hash route `name` on `/{name}/{id}` over `urls`.
fn keyed_route(name: &str, urls: &[String], settings: &str) -> String {
    format!(
        "  - name: {name}\n    match: {{path: \"/{name}/{{id}}\"}}\n    filters: [{{consistentHashKey: \"${{id}}\"}}]\n    backend:\n      endpoints: [{}]\n{settings}",
        urls.join(", ")
    )
}

fn ejected(proxy: &Ringress, url: &str) -> f64 {
    proxy.metric("ringress_endpoint_ejected", &format!(r#"endpoint="{url}""#))
}

fn ejections(proxy: &Ringress, url: &str) -> f64 {
    proxy.metric(
        "ringress_endpoint_ejections_total",
        &format!(r#"endpoint="{url}""#),
    )
}

/// Failures grouped by reason, for messages and figures.
fn reasons(samples: &[&Sample]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for s in samples {
        let why = s.why();
        // Error details vary (ports, byte counts); keep the kind.
        let why = why.split(':').take(2).collect::<Vec<_>>().join(":");
        *out.entry(why).or_default() += 1;
    }
    out
}

/// Two healthy backends and a faulty one, `r` (index 2), behind a
/// consistent-hash route `products` that ejects after 3 connection failures;
/// 60 keys to send.
struct FaultyFleet {
    healthy: (Backend, Backend),
    r: FaultyBackend,
    urls: Vec<String>,
    proxy: Ringress,
    keys: Vec<String>,
}

impl FaultyFleet {
    fn start(r_delay: Duration) -> Self {
        let healthy = (Backend::start("a"), Backend::start("b"));
        let r = FaultyBackend::start("r", r_delay);
        let urls = vec![healthy.0.url(), healthy.1.url(), r.url()];
        let routes = format!(
            "routes:\n{}",
            keyed_route(
                "products",
                &urls,
                "      passiveHealthCheck: {consecutiveFailures: 3, ejectFor: 30s}\n"
            )
        );
        let proxy = Ringress::start(&routes);
        Self {
            healthy,
            r,
            urls,
            proxy,
            keys: keys(60),
        }
    }
}

#[test]
fn a_refused_endpoint_is_retried_around_then_ejected_and_readmitted() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut c = Backend::start("c");
    for backend in [&a, &b, &c] {
        backend.set_delay(Duration::from_millis(30));
    }
    let urls = vec![a.url(), b.url(), c.url()];
    let routes = format!(
        "routes:\n{}",
        keyed_route(
            "products",
            &urls,
            "      retries: 1\n      passiveHealthCheck: {consecutiveFailures: 3, ejectFor: 1s, maxEjectFor: 2s}\n",
        )
    );
    let proxy = Ringress::start(&routes);
    let keys = keys(60);
    let owned_by_c: Vec<bool> = keys
        .iter()
        .map(|k| owner_among(&urls, k, &[]) == 2)
        .collect();
    let c_key = |k: &str| owned_by_c[keys.iter().position(|x| x == k).unwrap()];
    let workers = 6;
    let traffic = Traffic::start(proxy.listen, workers, "/products/", &keys);
    thread::sleep(Duration::from_secs(1));

    // The listener closes and open connections drop: connection refused from now on.
    let at_c = c.seen.in_flight.load(std::sync::atomic::Ordering::SeqCst);
    let addr_c = c.addr;
    c.stop();
    let killed = Instant::now();
    eventually(Duration::from_secs(10), "c ejected", || {
        (ejected(&proxy, &urls[2]) == 1.0).then_some(())
    });
    let ejected_after = killed.elapsed();
    let ejected_at = Instant::now();
    let c_key_now = keys.iter().find(|k| c_key(k)).unwrap();
    let ring = proxy.admin_get(&format!("/ring?route=products&key={c_key_now}"));
    let neighbour = &urls[owner_among(&urls, c_key_now, &[2])];
    assert!(
        ring.body.contains(&format!("\"endpoint\":\"{neighbour}\""))
            && ring.body.contains(&format!("\"owner\":\"{}\"", urls[2]))
            && ring
                .body
                .contains(&format!("\"ejected\":[\"{}\"]", urls[2])),
        "{}",
        ring.body
    );
    // Down for a while: readmitted on probation each time the back-off ends,
    // re-ejected by the first refused connection (1 s, then 2 s, capped).
    // 1 s ejected, readmitted, re-ejected for 2 s: two ejections by +2.5 s.
    let down_until =
        (killed + Duration::from_millis(3500)).max(ejected_at + Duration::from_millis(2500));
    thread::sleep(down_until.saturating_duration_since(Instant::now()));
    let down_for = killed.elapsed();
    let connect_failures_down = proxy.metric(
        "ringress_upstream_connect_failures_total",
        r#"route="products""#,
    );
    let ejections_down = ejections(&proxy, &urls[2]);

    let c = Backend::start_on("c", addr_c);
    c.set_delay(Duration::from_millis(30));
    let restarted = Instant::now();
    eventually(Duration::from_secs(10), "c readmitted and serving", || {
        (c.hits() > 0 && ejected(&proxy, &urls[2]) == 0.0).then_some(())
    });
    let readmitted = Instant::now();
    thread::sleep(Duration::from_millis(1000));
    let samples = traffic.stop();

    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.ok()).collect();
    for f in &failed {
        assert!(
            f.started < killed && c_key(&f.key),
            "only requests already sent to c may fail: {f:?}"
        );
    }
    assert!(
        failed.len() <= workers,
        "at most one request per client was at c: {:?}",
        reasons(&failed)
    );
    let during = |s: &&Sample| s.started > killed && s.finished < restarted && c_key(&s.key);
    let moved: Vec<&Sample> = samples.iter().filter(during).collect();
    assert!(!moved.is_empty());
    for s in &moved {
        let want = owner_among(&urls, &s.key, &[2]);
        // Two candidates left, factor 2: the bound never spills, so each key
        // is at its clockwise neighbour.
        assert_eq!(s.backend(), Some(["a", "b"][want]), "{s:?}");
    }
    let back: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > readmitted && c_key(&s.key))
        .collect();
    let home = back.iter().filter(|s| s.backend() == Some("c")).count();
    assert!(
        !back.is_empty() && home * 10 >= back.len() * 8,
        "c's keys come back: {home} of {}",
        back.len()
    );
    assert!(
        ejections_down >= 2.0,
        "re-ejected on probation while down ({ejections_down})"
    );
    let retries = proxy.metric("ringress_retries_total", r#"route="products""#);
    let connect_failures = proxy.metric(
        "ringress_upstream_connect_failures_total",
        r#"route="products""#,
    );
    eprintln!(
        "FIGURES refused: {workers} clients, 60 keys (c owns {}), 30 ms backends; sent {}, failed {} {:?} \
         (c had {at_c} in flight at the kill); ejected {:.1?} after the kill; down {:.1?}: {} requests for c's keys \
         served by a/b, {connect_failures_down} connect failures, {ejections_down} ejections; \
         after restart: readmitted in {:.1?}, {home}/{} of c's keys back at c; total connect failures \
         {connect_failures}, retries {retries}",
        owned_by_c.iter().filter(|&&o| o).count(),
        samples.len(),
        failed.len(),
        reasons(&failed),
        ejected_after,
        down_for,
        moved.len(),
        readmitted - restarted,
        back.len(),
    );
}

#[test]
fn a_crash_mid_response_fails_only_the_requests_in_flight_to_it() {
    let FaultyFleet {
        healthy: _healthy,
        mut r,
        urls,
        proxy,
        keys,
    } = FaultyFleet::start(Duration::from_millis(300));
    let r_key = |k: &str| owner_among(&urls, k, &[]) == 2;
    let workers = 6;
    let traffic = Traffic::start(proxy.listen, workers, "/products/", &keys);
    eventually(
        Duration::from_secs(10),
        "responses in progress at r",
        || (r.counts.mid_body.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(()),
    );
    let before = Instant::now();
    let crash = r.crash();
    let crashed = Instant::now();
    eventually(Duration::from_secs(10), "r ejected", || {
        (ejected(&proxy, &urls[2]) == 1.0).then_some(())
    });
    thread::sleep(Duration::from_millis(1500));
    let samples = traffic.stop();

    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.ok()).collect();
    for f in &failed {
        assert!(
            f.started < crashed && r_key(&f.key),
            "only requests already at r may fail: {f:?}"
        );
    }
    let others_failed = samples.iter().filter(|s| !r_key(&s.key) && !s.ok()).count();
    assert_eq!(others_failed, 0, "keys r does not own are unaffected");
    // Cut after the head: the client has a 200 head and half a body, then the
    // connection closes; nothing can be retried once bytes went downstream.
    let cut = failed.iter().filter(|s| s.result.is_err()).count();
    assert!(
        cut >= crash.mid_body,
        "every response cut mid-body failed at its client: {crash:?}, {:?}",
        reasons(&failed)
    );
    assert!(
        failed.len() <= crash.in_flight.max(crash.mid_body) + workers,
        "{crash:?}, {:?}",
        reasons(&failed)
    );
    // Counted as not served ("other"), not under the 200 their heads announced.
    eventually(Duration::from_secs(5), "cut responses counted", || {
        let other = proxy.metric_sum(
            "ringress_requests_total",
            &[r#"route="products""#, r#"status_class="other""#],
        );
        (other >= crash.mid_body as f64).then_some(())
    });
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > crashed && r_key(&s.key))
        .collect();
    assert!(!after.is_empty() && after.iter().all(|s| s.ok()));
    let connect_failures = proxy.metric(
        "ringress_upstream_connect_failures_total",
        r#"route="products""#,
    );
    eprintln!(
        "FIGURES reset mid-response: {workers} clients, 60 keys, r answers head + half body then waits 300 ms; \
         sent {}, failed {} {:?}; at the crash r had {} requests in flight, {} mid-body; {} later requests \
         for r's keys all served by a/b; {connect_failures} connect failures before ejection; crash took {:.1?}",
        samples.len(),
        failed.len(),
        reasons(&failed),
        crash.in_flight,
        crash.mid_body,
        after.len(),
        crashed - before,
    );
}

#[test]
fn an_endpoint_resetting_before_answering_is_ejected() {
    let FaultyFleet {
        healthy: _healthy,
        r,
        urls,
        proxy,
        keys,
    } = FaultyFleet::start(Duration::ZERO);
    let r_key = |k: &str| owner_among(&urls, k, &[]) == 2;
    let workers = 4;
    let traffic = Traffic::start(proxy.listen, workers, "/products/", &keys);
    eventually(Duration::from_secs(10), "traffic at r", || {
        (r.hits() >= 20).then_some(())
    });
    r.reset_before_head(true);
    let fault = Instant::now();
    eventually(Duration::from_secs(10), "r ejected", || {
        (ejected(&proxy, &urls[2]) == 1.0).then_some(())
    });
    let ejected_at = Instant::now();
    thread::sleep(Duration::from_millis(1500));
    let samples = traffic.stop();

    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.ok()).collect();
    for f in &failed {
        // In flight when the fault began (a request sent just before it can
        // reach r after it), and sent before the ejection was seen.
        assert!(
            r_key(&f.key) && f.finished > fault && f.started < ejected_at,
            "{f:?}"
        );
        assert_eq!(f.why(), "502 upstream error", "{f:?}");
    }
    // Three counted resets eject; requests racing the ejection may fail too.
    assert!(
        (1..=3 + workers).contains(&failed.len()),
        "{:?}",
        reasons(&failed)
    );
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > ejected_at && r_key(&s.key))
        .collect();
    assert!(!after.is_empty() && after.iter().all(|s| s.ok()));
    eprintln!(
        "FIGURES reset before head: {workers} clients, 60 keys; sent {}, failed {} {:?}; r reset {} connections; \
         ejected {:.1?} after the fault; {} later requests for r's keys all served by a/b; ejections {}",
        samples.len(),
        failed.len(),
        reasons(&failed),
        r.counts.resets.load(std::sync::atomic::Ordering::SeqCst),
        ejected_at - fault,
        after.len(),
        ejections(&proxy, &urls[2]),
    );
}

#[test]
fn a_stalled_endpoint_times_out_with_504_and_others_are_unaffected() {
    let (a, b, s) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("s"),
    );
    s.set_delay(Duration::from_secs(5));
    let urls = vec![a.url(), b.url(), s.url()];
    let routes = format!(
        "routes:\n{}",
        keyed_route("products", &urls, "      timeouts: {response: 500ms}\n")
    );
    let proxy = Ringress::start(&routes);
    let keys = keys(40);
    let s_key = |k: &str| owner_among(&urls, k, &[]) == 2;
    let workers = 4;
    let traffic = Traffic::start(proxy.listen, workers, "/products/", &keys);
    thread::sleep(Duration::from_secs(3));
    let samples = traffic.stop();

    let (stalled, others): (Vec<&Sample>, Vec<&Sample>) =
        samples.iter().partition(|x| s_key(&x.key));
    assert!(!stalled.is_empty() && !others.is_empty());
    // Other keys are served, except where bounded load spilled one onto s:
    // with four clients, an owner holding the other three requests while s
    // holds none is over the bound, and the next pod clockwise may be s.
    // Each such failure is a counted spill and the same timeout.
    let hurt: Vec<&Sample> = others.iter().copied().filter(|x| !x.ok()).collect();
    let spills = proxy.metric("ringress_bounded_load_spills_total", r#"route="products""#);
    assert!(
        hurt.iter().all(|x| x.why() == "504 upstream timeout") && hurt.len() as f64 <= spills,
        "other keys unaffected but for spills onto s ({spills} spills): {:?}",
        reasons(&hurt)
    );
    // s's in-flight requests pile up, so bounded load spills some of its keys
    // to the next endpoint; the rest wait for the timeout.
    let (spilled, timed_out): (Vec<&Sample>, Vec<&Sample>) = stalled.iter().partition(|x| x.ok());
    assert!(spilled.iter().all(|x| x.backend() != Some("s")));
    assert!(!timed_out.is_empty());
    let mut slowest = Duration::ZERO;
    for x in &timed_out {
        assert_eq!(x.why(), "504 upstream timeout", "{x:?}");
        let took = x.finished - x.started;
        slowest = slowest.max(took);
        // The timeout, plus slack for a loaded machine, and well before the
        // 5 s stall would have ended.
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(3500),
            "{took:?}"
        );
    }
    // Timeouts are not connection failures: the endpoint stays in.
    assert_eq!(ejections(&proxy, &urls[2]), 0.0);
    for url in &urls {
        eventually(Duration::from_secs(5), "in-flight counts back to 0", || {
            let n = proxy.metric(
                "ringress_endpoint_in_flight",
                &format!(r#"endpoint="{url}""#),
            );
            (n == 0.0).then_some(())
        });
    }
    let routes_view = proxy.admin_get("/routes").body;
    assert_eq!(
        routes_view.matches("\"in_flight\":0").count(),
        3,
        "{routes_view}"
    );
    eprintln!(
        "FIGURES stall: {workers} clients, 40 keys, s stalls 5 s, response timeout 500 ms; sent {}, \
         failed {} (all 504 upstream timeout, all s's keys, slowest {:.0?}); {} requests for s's keys \
         spilled to a/b by bounded load; {} other requests all 200; in flight back to 0 on every \
         endpoint; s not ejected",
        samples.len(),
        timed_out.len(),
        slowest,
        spilled.len(),
        others.len(),
    );
}

#[test]
fn ejection_applies_to_every_algorithm_and_an_all_ejected_pool_still_serves() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut c = Backend::start("c");
    let (mut d1, mut d2) = (Backend::start("d1"), Backend::start("d2"));
    let urls = vec![a.url(), b.url(), c.url()];
    let pair = vec![d1.url(), d2.url()];
    let health =
        "      passiveHealthCheck: {consecutiveFailures: 3, ejectFor: 8s, maxEjectFor: 8s}\n";
    let keyless = |name: &str, algorithm: &str| {
        format!(
            "  - name: {name}\n    match: {{pathPrefix: /{name}}}\n    backend:\n      algorithm: {algorithm}\n      endpoints: [{}]\n{health}",
            urls.join(", ")
        )
    };
    let routes = format!(
        "routes:\n{}{}{}{}{}",
        keyed_route("ch", &urls, health),
        keyless("p2c", "powerOfRandomNChoices"),
        keyless("rr", "roundRobin"),
        keyless("rnd", "random"),
        keyed_route(
            "pair",
            &pair,
            "      passiveHealthCheck: {consecutiveFailures: 3, ejectFor: 30s}\n"
        ),
    );
    let proxy = Ringress::start(&routes);
    let keys = keys(90);
    let names = ["a", "b", "c"];
    let mut client = Client::new(proxy.listen);
    let mut serve = |path: &str| {
        let r = client.get(path).expect("request");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.body
    };
    for k in &keys {
        assert_eq!(
            serve(&format!("/ch/{k}")),
            names[owner_among(&urls, k, &[])]
        );
    }

    // Eject c through its own keys' refused connections, then bring it back up
    // at once: it is healthy, but ejected for 8 s, so no algorithm may use it.
    let c_keys: Vec<&String> = keys
        .iter()
        .filter(|k| owner_among(&urls, k, &[]) == 2)
        .collect();
    let addr_c = c.addr;
    c.stop();
    let mut to_eject = 0;
    for k in c_keys.iter().cycle() {
        if ejected(&proxy, &urls[2]) == 1.0 {
            break;
        }
        assert!(to_eject < 50, "c not ejected after {to_eject} requests");
        serve(&format!("/ch/{k}"));
        to_eject += 1;
        thread::sleep(Duration::from_millis(20));
    }
    let c = Backend::start_on("c", addr_c);
    let mut moved = 0;
    for k in &keys {
        let owner = owner_among(&urls, k, &[]);
        let want = if owner == 2 {
            moved += 1;
            owner_among(&urls, k, &[2])
        } else {
            owner
        };
        assert_eq!(serve(&format!("/ch/{k}")), names[want], "key {k}");
    }
    let mut spread: HashMap<String, usize> = HashMap::new();
    for route in ["p2c", "rr", "rnd"] {
        for i in 0..30 {
            *spread
                .entry(format!("{route}:{}", serve(&format!("/{route}/{i}"))))
                .or_default() += 1;
        }
    }
    assert_eq!(
        c.hits(),
        0,
        "no algorithm picked the ejected endpoint: {spread:?}"
    );
    assert_eq!(
        ejected(&proxy, &urls[2]),
        1.0,
        "the checks above ran within the 8 s ejection (machine too slow?)"
    );

    // Readmitted after the back-off: c's keys come home, the others never moved.
    eventually(Duration::from_secs(15), "c readmitted", || {
        (ejected(&proxy, &urls[2]) == 0.0).then_some(())
    });
    for k in &keys {
        assert_eq!(
            serve(&format!("/ch/{k}")),
            names[owner_among(&urls, k, &[])]
        );
    }
    for i in 0..30 {
        serve(&format!("/rr/{i}"));
    }
    assert!(c.hits() >= moved + 5, "c serves again: {} hits", c.hits());

    // Both endpoints of a pool down: every request is still attempted (502
    // after trying both, never 503 "no endpoints"), and once they are back the
    // pool serves at once although both are still ejected.
    let (addr1, addr2) = (d1.addr, d2.addr);
    d1.stop();
    d2.stop();
    let mut attempts = 0;
    while ejected(&proxy, &pair[0]) + ejected(&proxy, &pair[1]) < 2.0 || attempts < 6 {
        assert!(attempts < 50, "pair not ejected after {attempts} requests");
        let r = client.get(&format!("/pair/k{attempts}")).unwrap();
        assert_eq!((r.status, r.body.as_str()), (502, "all endpoints failed\n"));
        attempts += 1;
    }
    let failures_all_ejected = proxy.metric(
        "ringress_upstream_connect_failures_total",
        r#"route="pair""#,
    );
    assert!(
        failures_all_ejected >= 2.0 * attempts as f64 - 1.0,
        "both endpoints attempted on every request: {failures_all_ejected} for {attempts}"
    );
    let (d1, d2) = (
        Backend::start_on("d1", addr1),
        Backend::start_on("d2", addr2),
    );
    for k in &keys[..20] {
        let r = client.get(&format!("/pair/{k}")).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, ["d1", "d2"][owner_among(&pair, k, &[])]);
    }
    assert_eq!(ejected(&proxy, &pair[0]) + ejected(&proxy, &pair[1]), 2.0);
    eprintln!(
        "FIGURES all algorithms: c ejected after {to_eject} requests for its keys (3 refused connects); \
         while ejected: {moved} of 90 ch keys moved, each to its clockwise neighbour, 0 others moved; \
         90 p2c/rr/random requests {spread:?}, 0 at c; after readmission all 90 keys at their owners; \
         all-ejected pair: {attempts} requests 502 after trying both ({failures_all_ejected} connect \
         failures), then 20/20 served by d1/d2 while both still ejected ({} + {} hits)",
        d1.hits(),
        d2.hits(),
    );
}
