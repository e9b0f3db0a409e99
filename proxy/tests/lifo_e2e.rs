//! LIFO admission through the real binary, in front of real slow backends.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::{eventually, free_port, Backend, Client, Response, Ringress};

/// A LIFO-guarded route to `backend`, and `/warm` answered by the proxy (to
/// open connections without passing the queue).
fn lifo_route(backend: &str, lifo: &str, extra: &str) -> String {
    format!(
        "routes:\n  - name: warm\n    match: {{path: /warm}}\n    backend: {{status: 200}}\n  - name: slow\n    match: {{pathPrefix: /}}\n    filters:\n      - lifo: {lifo}\n{extra}    backend:\n      algorithm: roundRobin\n      endpoints: [\"{backend}\"]\n      retries: 0\n"
    )
}

/// Sends one request per pre-opened connection, all released at once.
fn burst(proxy: &Ringress, n: usize, path: &str) -> Vec<(Response, Duration)> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut client = Client::new(proxy.listen);
            let barrier = Arc::clone(&barrier);
            let path = format!("{path}?i={i}");
            thread::spawn(move || {
                client.get("/warm").ok(); // open the connection before the burst
                barrier.wait();
                let start = Instant::now();
                let resp = client.get(&path).expect("response");
                (resp, start.elapsed())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn twenty_requests_against_five_slots_and_seven_waiters_give_skippers_counts() {
    let backend = Backend::start("slow");
    let proxy = Ringress::start(&lifo_route(
        &backend.url(),
        "{maxConcurrency: 5, maxQueueSize: 7, timeout: 100ms}",
        "",
    ));
    backend.set_delay(Duration::from_millis(1000));
    let results = burst(&proxy, 20, "/item");
    let ok = results.iter().filter(|(r, _)| r.status == 200).count();
    let full: Vec<_> = results
        .iter()
        .filter(|(r, _)| r.body == "queue full\n")
        .collect();
    let timeout: Vec<_> = results
        .iter()
        .filter(|(r, _)| r.body == "queue timeout\n")
        .collect();
    assert_eq!((ok, full.len(), timeout.len()), (5, 8, 7), "{results:?}");
    for (r, took) in full.iter().chain(&timeout) {
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(
            *took < Duration::from_millis(900),
            "rejections are fast: {took:?}"
        );
    }
    for (_, took) in &timeout {
        assert!(
            *took >= Duration::from_millis(100),
            "waited its timeout: {took:?}"
        );
    }
    // Rejected requests never reached the backend.
    assert_eq!(backend.hits(), 5);
    assert_eq!(
        proxy.metric(
            "ringress_lifo_rejected_total",
            r#"queue="slow",reason="full""#
        ),
        8.0
    );
    assert_eq!(
        proxy.metric(
            "ringress_lifo_rejected_total",
            r#"queue="slow",reason="timeout""#
        ),
        7.0
    );
}

#[test]
fn the_newest_waiter_is_served_first() {
    let backend = Backend::start("order");
    backend.set_delay(Duration::from_millis(300));
    let proxy = Ringress::start(&lifo_route(
        &backend.url(),
        "{maxConcurrency: 1, maxQueueSize: 10, timeout: 10s}",
        "",
    ));
    let listen = proxy.listen;
    let blocker = thread::spawn(move || Client::new(listen).get("/blocker").unwrap());
    eventually(Duration::from_secs(5), "blocker at the backend", || {
        (backend
            .seen
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
            .then_some(())
    });
    let waiters: Vec<_> = (1..=4)
        .map(|i| {
            let h = thread::spawn(move || Client::new(listen).get(&format!("/w{i}")).unwrap());
            // Each arrives while the previous one waits.
            eventually(Duration::from_secs(5), "waiter queued", || {
                (proxy.metric("ringress_lifo_queued", r#"queue="slow""#) == i as f64).then_some(())
            });
            h
        })
        .collect();
    assert_eq!(blocker.join().unwrap().status, 200);
    for w in waiters {
        assert_eq!(w.join().unwrap().status, 200);
    }
    let order = backend.seen.paths.lock().unwrap().clone();
    assert_eq!(order, ["/blocker", "/w4", "/w3", "/w2", "/w1"]);
}

#[test]
fn slots_are_not_leaked_by_cancelled_clients_or_upstream_errors() {
    let backend = Backend::start("slow");
    backend.set_delay(Duration::from_millis(500));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let routes = format!(
        "{}  - name: down\n    match: {{pathPrefix: /down}}\n    filters:\n      - lifo: {{maxConcurrency: 2, maxQueueSize: 2, timeout: 1s}}\n    backend: {{endpoints: [\"{dead}\"], retries: 0}}\n",
        lifo_route(&backend.url(), "{maxConcurrency: 3, maxQueueSize: 3, timeout: 5s}", "")
    );
    let proxy = Ringress::start(&routes);
    // Clients that give up while running or waiting.
    let mut abandoned = Vec::new();
    for i in 0..6 {
        let mut s = TcpStream::connect(proxy.listen).unwrap();
        write!(s, "GET /cancel{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        abandoned.push(s);
    }
    eventually(Duration::from_secs(5), "3 active, 3 queued", || {
        let active = proxy.metric("ringress_lifo_active", r#"queue="slow""#);
        let queued = proxy.metric("ringress_lifo_queued", r#"queue="slow""#);
        (active == 3.0 && queued == 3.0).then_some(())
    });
    drop(abandoned);
    // Upstream errors.
    for _ in 0..5 {
        assert_eq!(proxy.get("/down/x").status, 502);
    }
    eventually(Duration::from_secs(5), "every slot back", || {
        let total = proxy.metric_sum("ringress_lifo_active", &[])
            + proxy.metric_sum("ringress_lifo_queued", &[]);
        (total == 0.0).then_some(())
    });
    // And the full capacity is usable again.
    let results = burst(&proxy, 3, "/again");
    assert!(results.iter().all(|(r, _)| r.status == 200), "{results:?}");
    let in_flight = format!(r#"endpoint="{}""#, backend.url());
    eventually(Duration::from_secs(5), "no request in flight", || {
        (proxy.metric("ringress_endpoint_in_flight", &in_flight) == 0.0).then_some(())
    });
}

#[test]
fn a_reload_keeps_the_queue_and_its_waiters() {
    let backend = Backend::start("slow");
    backend.set_delay(Duration::from_millis(1500));
    let lifo = "{maxConcurrency: 1, maxQueueSize: 5, timeout: 10s}";
    let proxy = Ringress::start(&lifo_route(&backend.url(), lifo, ""));
    let listen = proxy.listen;
    let requests: Vec<_> = (0..3)
        .map(|i| thread::spawn(move || Client::new(listen).get(&format!("/r{i}")).unwrap()))
        .collect();
    eventually(Duration::from_secs(5), "1 active, 2 waiting", || {
        (proxy.metric("ringress_lifo_queued", r#"queue="slow""#) == 2.0).then_some(())
    });
    proxy.write_routes(&lifo_route(
        &backend.url(),
        lifo,
        "      - setResponseHeader: {name: X-Generation, value: \"2\"}\n",
    ));
    eventually(Duration::from_secs(5), "reload", || {
        (proxy.metric("ringress_route_reloads_total", "") == 2.0).then_some(())
    });
    assert_eq!(
        proxy.metric("ringress_lifo_queued", r#"queue="slow""#),
        2.0,
        "waiters kept"
    );
    for r in requests {
        assert_eq!(r.join().unwrap().status, 200);
    }
}

#[test]
fn max_concurrency_bounds_the_whole_listener() {
    let backend = Backend::start("slow");
    let routes = format!(
        "routes:\n  - name: a\n    match: {{pathPrefix: /a}}\n    backend: {{endpoints: [\"{0}\"]}}\n  - name: b\n    match: {{pathPrefix: /b}}\n    backend: {{endpoints: [\"{0}\"]}}\n",
        backend.url()
    );
    let proxy = Ringress::start_with(&routes, &["--max-concurrency", "2", "--max-queue", "0"]);
    backend.set_delay(Duration::from_millis(800));
    let listen = proxy.listen;
    let running: Vec<_> = ["/a/1", "/b/1"]
        .into_iter()
        .map(|p| thread::spawn(move || Client::new(listen).get(p).unwrap()))
        .collect();
    eventually(Duration::from_secs(5), "two running", || {
        (proxy.metric("ringress_lifo_active", r#"queue="listener""#) == 2.0).then_some(())
    });
    let third = proxy.get("/a/2");
    assert_eq!((third.status, third.body.as_str()), (503, "queue full\n"));
    for r in running {
        assert_eq!(r.join().unwrap().status, 200);
    }
}

#[test]
fn cancelled_raw_client_mid_body_releases_its_slot() {
    // A client that reads half a response and hangs up.
    let backend = Backend::start(&"x".repeat(64 * 1024));
    let proxy = Ringress::start(&lifo_route(
        &backend.url(),
        "{maxConcurrency: 1, maxQueueSize: 0, timeout: 1s}",
        "",
    ));
    let mut s = TcpStream::connect(proxy.listen).unwrap();
    write!(s, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let _ = s.read(&mut buf).unwrap();
    drop(s);
    eventually(Duration::from_secs(5), "slot released", || {
        (proxy.metric("ringress_lifo_active", r#"queue="slow""#) == 0.0).then_some(())
    });
    assert_eq!(proxy.get("/next").status, 200);
}
