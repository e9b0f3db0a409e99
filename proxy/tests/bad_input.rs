//! Bad input from clients: malformed requests, oversized headers and bodies,
//! slow clients, request smuggling, Host and path tricks, and garbage under
//! load. Each rejection must be a precise status and a counted reason, must
//! reach no backend, and must leave the proxy serving.
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{eventually, exchange, Backend, Load, Raw, Ringress};

const WAIT: Duration = Duration::from_secs(20);

/// `admin` answers 403 itself, `shop` serves one host (a host and a prefix
/// beat the prefix alone), `app` everything else.
fn routes(app: &Backend, shop: &Backend) -> String {
    format!(
        r#"routes:
  - name: admin
    match: {{pathPrefix: /admin}}
    backend: {{status: 403}}
  - name: shop
    match: {{host: shop.example.com, pathPrefix: /}}
    backend: {{endpoints: ["{}"]}}
  - name: app
    match: {{pathPrefix: /}}
    backend: {{endpoints: ["{}"]}}
"#,
        shop.url(),
        app.url()
    )
}

fn rejected(proxy: &Ringress, reason: &str) -> f64 {
    proxy.metric(
        "ringress_rejected_requests_total",
        &format!("reason=\"{reason}\""),
    )
}

fn wait_rejected(proxy: &Ringress, reason: &str, want: f64) {
    eventually(WAIT, &format!("{want} rejections {reason}"), || {
        (rejected(proxy, reason) == want).then_some(())
    });
}

/// A normal request still works.
fn still_serves(proxy: &Ringress) {
    let resp = proxy.client().get("/ok").expect("proxy still serves");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "app");
}

#[test]
fn malformed_requests_get_a_precise_status_and_reach_no_backend() {
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    let proxy = Ringress::start(&routes(&app, &shop));
    let bad_request = "HTTP/1.1 400 Bad Request";
    #[rustfmt::skip]
    let cases: &[(&str, &[u8], &str, &str)] = &[
        ("binary garbage", b"\x00\x01\x02\xff garbage\r\n\r\n", bad_request, "bad_request"),
        ("request line without target", b"GET\r\n\r\n", bad_request, "bad_request"),
        ("request line without version", b"GET /x\r\n\r\n", bad_request, "bad_request"),
        ("unknown version", b"GET /x HTTP/9.9\r\nHost: a\r\n\r\n", bad_request, "bad_request"),
        ("space in a header name", b"GET /x HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n", bad_request, "bad_request"),
        ("header without colon", b"GET /x HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", bad_request, "bad_request"),
        ("control byte in a value", b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", bad_request, "bad_request"),
        ("obs-fold", b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n", bad_request, "bad_request"),
        ("space before colon", b"GET /x HTTP/1.1\r\nHost : a\r\n\r\n", bad_request, "bad_request"),
        ("two Host headers", b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", bad_request, "bad_request"),
        ("userinfo in Host", b"GET /x HTTP/1.1\r\nHost: u@shop.example.com\r\n\r\n", bad_request, "bad_request"),
        ("Host differs from absolute URI", b"GET http://shop.example.com/x HTTP/1.1\r\nHost: other\r\n\r\n", bad_request, "bad_request"),
        ("300 header fields", &many_headers(300), bad_request, "bad_request"),
        ("negative Content-Length", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", bad_request, "bad_request"),
        ("CONNECT", b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", "method_not_allowed"),
    ];
    let mut want = std::collections::HashMap::<&str, f64>::new();
    for (name, bytes, status_line, reason) in cases {
        let (resp, closed) = exchange(proxy.listen, bytes);
        let resp = resp.unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(&resp.status_line, status_line, "{name}");
        assert!(closed, "{name}: connection left open");
        *want.entry(reason).or_default() += 1.0;
    }
    for (reason, n) in &want {
        wait_rejected(&proxy, reason, *n);
    }
    assert_eq!(app.hits() + shop.hits(), 0, "a backend saw a bad request");
    still_serves(&proxy);
}

fn many_headers(n: usize) -> Vec<u8> {
    let mut req = b"GET /x HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..n {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[test]
fn smuggling_attempts_are_refused_and_close_the_connection() {
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    let proxy = Ringress::start(&routes(&app, &shop));
    // Each tries to make the proxy and a backend disagree on where a request
    // ends; the tail would be read as a second request to /admin.
    let tail = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str)> = vec![
        ("CL.TE", format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 38\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{tail}"), "smuggling"),
        ("TE.CL", format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n{tail}"), "smuggling"),
        ("lowercase content-length after TE", format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-length: 0\r\n\r\n0\r\n\r\n{tail}"), "smuggling"),
        ("two differing Content-Length", format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n{tail}"), "bad_request"),
        ("Content-Length list", format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 38\r\n\r\n{tail}"), "bad_request"),
        ("Content-Length with sign", format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +38\r\n\r\n{tail}"), "bad_request"),
        ("TE not ending in chunked", format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{tail}"), "bad_request"),
        ("two TE headers", format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{tail}"), "bad_request"),
        ("unknown TE", format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{tail}"), "bad_request"),
        ("space before TE colon", format!("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{tail}"), "bad_request"),
        ("TE in HTTP/1.0", format!("POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{tail}"), "bad_request"),
    ];
    let mut want = std::collections::HashMap::<&str, f64>::new();
    for (name, bytes, reason) in &cases {
        let (resp, closed) = exchange(proxy.listen, bytes.as_bytes());
        let resp = resp.unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(resp.status_line, "HTTP/1.1 400 Bad Request", "{name}");
        assert!(closed, "{name}: connection left open");
        *want.entry(reason).or_default() += 1.0;
    }
    for (reason, n) in &want {
        wait_rejected(&proxy, reason, *n);
    }
    assert_eq!(
        app.hits() + shop.hits(),
        0,
        "a backend saw a smuggling attempt"
    );

    // Honest pipelining is not smuggling: each request is routed on its own.
    let mut raw = Raw::connect(proxy.listen);
    raw.send(
        format!("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi{tail}").as_bytes(),
    );
    let first = raw.response().expect("first pipelined response");
    assert_eq!(first.status, 200);
    assert_eq!(first.body_text(), "app");
    let second = raw.response().expect("second pipelined response");
    assert_eq!(
        second.status, 403,
        "the pipelined /admin is the admin route's"
    );
    assert_eq!(*app.seen.paths.lock().unwrap(), ["/x"]);
    assert_eq!(*app.seen.bodies.lock().unwrap(), [2]);
    still_serves(&proxy);
}

#[test]
fn an_oversized_header_gets_431_and_reaches_no_backend() {
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    let proxy = Ringress::start_with(&routes(&app, &shop), &["--max-request-header", "8KiB"]);
    let with_header = |len: usize| {
        let mut req = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        req.resize(req.len() + len, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        req
    };
    for (name, bytes) in [
        ("one 9 KB field", with_header(9 * 1024)),
        ("a 100 KB field", with_header(100 * 1024)),
        ("2 MB, past pingora's own limit", with_header(2 << 20)),
    ] {
        let (resp, closed) = exchange(proxy.listen, &bytes);
        let resp = resp.unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(
            resp.status_line, "HTTP/1.1 431 Request Header Fields Too Large",
            "{name}"
        );
        assert_eq!(resp.body_text(), "request header too large\n");
        assert!(closed, "{name}: connection left open");
    }
    wait_rejected(&proxy, "header_too_large", 3.0);
    assert_eq!(app.hits(), 0, "a backend saw an oversized header");

    // Under the limit passes, with a body in the same packet as the header end.
    let mut raw = Raw::connect(proxy.listen);
    let mut req = with_header(7 * 1024);
    req.truncate(req.len() - 4);
    req.extend_from_slice(b"\r\nContent-Length: 4096\r\n\r\n");
    req.extend_from_slice(&[b'b'; 4096]);
    raw.send(&req);
    let resp = raw.response().expect("response under the limit");
    assert_eq!(resp.status, 200);
    assert_eq!(*app.seen.bodies.lock().unwrap(), [4096]);
    // Many small fields under the limit pass (the test backend takes up to 100).
    let (resp, _) = exchange(proxy.listen, &many_headers(90));
    assert_eq!(resp.expect("90 small fields").status, 200);
    still_serves(&proxy);
}

#[test]
fn slow_clients_get_408_after_the_header_timeout_and_idle_ones_are_closed() {
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    let proxy = Ringress::start_with(
        &routes(&app, &shop),
        &["--request-header-timeout", "1s", "--idle-timeout", "3s"],
    );
    let expect_408 = |raw: &mut Raw, name: &str, since: Instant| {
        let resp = raw
            .response()
            .unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(resp.status_line, "HTTP/1.1 408 Request Timeout", "{name}");
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(raw.closed_within(WAIT), "{name}: connection left open");
        assert!(
            since.elapsed() >= Duration::from_millis(900),
            "{name}: timed out early"
        );
    };

    // Half a header, then nothing.
    let start = Instant::now();
    let mut raw = Raw::connect(proxy.listen);
    raw.send(b"GET /x HTTP/1.1\r\nHo");
    expect_408(&mut raw, "half a header", start);

    // A byte every 200 ms: each read is quick, the header never ends.
    let start = Instant::now();
    let mut raw = Raw::connect(proxy.listen);
    let trickle = raw.stream_clone();
    let writer = thread::spawn(move || {
        let mut stream = trickle;
        for b in b"GET /x HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if std::io::Write::write_all(&mut stream, &[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    expect_408(&mut raw, "trickled header", start);
    writer.join().unwrap();

    // On a kept-alive connection: the timeout runs from the next request's first byte.
    let mut raw = Raw::connect(proxy.listen);
    raw.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(raw.response().expect("first response").status, 200);
    thread::sleep(Duration::from_millis(1500)); // idle, longer than the header timeout
    let start = Instant::now();
    raw.send(b"GET /second HTTP/1.1\r\nHo");
    expect_408(&mut raw, "second request on a kept-alive connection", start);
    wait_rejected(&proxy, "header_timeout", 3.0);

    // A client that gives up mid-header is counted, not logged as an error.
    let mut raw = Raw::connect(proxy.listen);
    raw.send(b"GET /x HTTP/1.1\r\nHo");
    drop(raw);
    wait_rejected(&proxy, "incomplete", 1.0);

    // An idle connection is closed quietly after --idle-timeout, uncounted.
    let start = Instant::now();
    let mut raw = Raw::connect(proxy.listen);
    assert!(raw.closed_within(WAIT), "idle connection left open");
    assert!(start.elapsed() >= Duration::from_millis(2900));
    assert_eq!(rejected(&proxy, "header_timeout"), 3.0);
    assert_eq!(
        *app.seen.paths.lock().unwrap(),
        ["/first"],
        "a backend saw a timed-out request"
    );
    still_serves(&proxy);
}

#[test]
fn bodies_over_the_limit_get_413() {
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    let proxy = Ringress::start_with(&routes(&app, &shop), &["--max-request-body", "1KiB"]);

    // Declared too large: refused before any backend is chosen, body unread.
    let (resp, closed) = exchange(
        proxy.listen,
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n",
    );
    let resp = resp.expect("413 response");
    assert_eq!(resp.status_line, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(resp.body_text(), "request body too large\n");
    assert!(closed, "connection left open with the body unread");
    assert_eq!(app.hits(), 0);

    // At the limit passes.
    let resp = proxy
        .client()
        .request("POST", "/upload", &[], &"x".repeat(1024))
        .unwrap();
    assert_eq!(resp.status, 200);

    // Chunked, over the limit while streaming: 413, and the backend never
    // receives a complete request.
    let chunk = format!("200\r\n{}\r\n", "y".repeat(0x200));
    let req = format!(
        "POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(3)
    );
    let (resp, closed) = exchange(proxy.listen, req.as_bytes());
    assert_eq!(
        resp.expect("413 response").status_line,
        "HTTP/1.1 413 Payload Too Large"
    );
    assert!(closed);
    // Chunked under the limit passes whole.
    let req = format!(
        "POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(2)
    );
    let (resp, _) = exchange(proxy.listen, req.as_bytes());
    assert_eq!(resp.expect("chunked under the limit").status, 200);
    wait_rejected(&proxy, "body_too_large", 2.0);
    assert_eq!(
        *app.seen.bodies.lock().unwrap(),
        [1024, 1024],
        "only the bodies within the limit arrived complete"
    );

    // A broken chunk is the client's fault: 400, counted.
    let (resp, _) = exchange(
        proxy.listen,
        b"POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(resp.expect("400 response").status, 400);
    wait_rejected(&proxy, "bad_body", 1.0);
    still_serves(&proxy);
}

#[test]
fn host_and_path_tricks_only_ever_pick_upstreams_from_the_route_table() {
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    // Reachable from the proxy, but in no route.
    let outsider = Backend::start("outsider");
    let proxy = Ringress::start(&routes(&app, &shop));
    let out = outsider.addr;
    let mut raw = Raw::connect(proxy.listen);
    let mut ask = |req: String| raw.send(req.as_bytes()).response().expect("response");

    // Host decides among routes; X-Forwarded-Host from the client is ignored and replaced.
    let r =
        ask("GET /x HTTP/1.1\r\nHost: other\r\nX-Forwarded-Host: shop.example.com\r\n\r\n".into());
    assert_eq!(r.body_text(), "app");
    assert_eq!(app.header("x-forwarded-host").as_deref(), Some("other"));
    let r = ask("GET /x HTTP/1.1\r\nHost: SHOP.Example.COM:8080\r\n\r\n".into());
    assert_eq!(
        r.body_text(),
        "shop",
        "host match is case-insensitive, port ignored"
    );
    let r = ask("GET http://shop.example.com/x HTTP/1.1\r\nHost: shop.example.com\r\n\r\n".into());
    assert_eq!(r.body_text(), "shop", "absolute form agreeing with Host");
    // Naming an address the proxy can reach picks nothing: it is not a route.
    let r = ask(format!("GET /secret HTTP/1.1\r\nHost: {out}\r\n\r\n"));
    assert_eq!(r.body_text(), "app");
    let r = ask(format!(
        "GET http://{out}/secret HTTP/1.1\r\nHost: {out}\r\n\r\n"
    ));
    assert_eq!(r.body_text(), "app");

    // HTTP/1.1 without Host (even in absolute form) is a 400.
    for req in [
        "GET /x HTTP/1.1\r\n\r\n".to_string(),
        format!("GET http://{out}/x HTTP/1.1\r\n\r\n"),
    ] {
        let (resp, _) = exchange(proxy.listen, req.as_bytes());
        let resp = resp.expect("400 response");
        assert_eq!(resp.status_line, "HTTP/1.1 400 Bad Request");
        assert_eq!(resp.body_text(), "missing host\n");
    }
    wait_rejected(&proxy, "missing_host", 2.0);

    // Paths are matched as the backend will read them: dot-segments and `//`
    // are resolved first, so none escapes the admin route (403).
    let mut client = proxy.client();
    for path in [
        "/admin",
        "/static/../admin",
        "/static/%2e%2e/admin",
        "/static/.%2E/admin/users",
        "//admin",
        "/./admin",
        "/static/..//admin/",
    ] {
        let resp = client.get(path).unwrap();
        assert_eq!(resp.status, 403, "{path}");
    }
    // Climbing above the root is refused.
    for path in ["/..", "/../etc/passwd", "/a/../../admin", "/%2e%2e/admin"] {
        let resp = client.get(path).unwrap();
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (400, "bad path\n"),
            "{path}"
        );
    }
    wait_rejected(&proxy, "bad_path", 4.0);
    // What is forwarded is what was matched.
    for (sent, received) in [
        ("/a/./b", "/a/b"),
        ("/a//b?q=/../x", "/a/b?q=/../x"),
        ("/a/b/../c", "/a/c"),
        ("/x/..%2fadmin", "/x/..%2fadmin"),
        ("/files/a..b", "/files/a..b"),
    ] {
        let resp = client.get(sent).unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (200, "app"), "{sent}");
        assert_eq!(
            app.seen.paths.lock().unwrap().last().map(String::as_str),
            Some(received),
            "{sent}"
        );
    }

    assert_eq!(
        outsider.hits(),
        0,
        "a client picked an upstream outside the table"
    );
    assert!(
        app.seen
            .paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| !p.contains("/admin") || p.contains("..%2f")),
        "an admin path reached the app backend: {:?}",
        app.seen.paths.lock().unwrap()
    );
    still_serves(&proxy);
}

/// A tiny deterministic generator: the same garbage on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn garbage_interleaved_with_valid_traffic_loses_no_valid_request() {
    const GARBAGE_PER_THREAD: usize = 1500;
    const THREADS: u64 = 2;
    let (app, shop) = (Backend::start("app"), Backend::start("shop"));
    let proxy = Ringress::start(&routes(&app, &shop));
    let addr = proxy.listen;
    let load = Load::start(addr, 4);
    let answered = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (answered, dropped) = (Arc::clone(&answered), Arc::clone(&dropped));
            thread::spawn(move || {
                let mut rng = SplitMix(0x5EED + t);
                for i in 0..GARBAGE_PER_THREAD {
                    let len = 1 + (rng.next() % 2048) as usize;
                    // Most are random bytes ending like a header, so the parser
                    // must decide; every tenth is a plausible header the client
                    // abandons half-way.
                    let cut = i % 10 == 0;
                    let bytes: Vec<u8> = if cut {
                        let mut b = b"GET /products/x HTTP/1.1\r\nHost: a\r\nX-Junk: ".to_vec();
                        b.extend((0..len).map(|_| b'a' + (rng.next() % 26) as u8));
                        b
                    } else {
                        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                        b.extend_from_slice(b"\r\n\r\n");
                        b
                    };
                    let mut raw = Raw::connect(addr);
                    raw.send(&bytes);
                    if cut {
                        drop(raw);
                        dropped.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let resp = raw.response().expect("an answer to garbage");
                    assert!(
                        resp.status == 400 || resp.status == 431,
                        "garbage got {}",
                        resp.status_line
                    );
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("garbage sender");
    }
    let garbage_time = started.elapsed();
    let outcome = load.stop();
    assert!(
        outcome.failures.is_empty(),
        "valid requests lost: {:?}",
        &outcome.failures[..outcome.failures.len().min(5)]
    );
    assert!(outcome.ok > 0);
    let total = (THREADS as usize * GARBAGE_PER_THREAD) as f64;
    let counted = eventually(WAIT, "every garbage connection counted", || {
        let n = proxy.metric_sum("ringress_rejected_requests_total", &[]);
        (n >= total).then_some(n)
    });
    assert_eq!(counted, total, "garbage counted more than once");
    assert_eq!(shop.hits(), 0);
    assert_eq!(
        app.hits(),
        outcome.ok,
        "only valid requests reached a backend"
    );
    still_serves(&proxy);
    eprintln!(
        "garbage: {} connections ({} answered 400/431, {} cut off) in {:.1}s alongside {} valid requests, {} lost; rejections: bad_request {}, header_too_large {}, incomplete {}",
        total,
        answered.load(Ordering::SeqCst),
        dropped.load(Ordering::SeqCst),
        garbage_time.as_secs_f64(),
        outcome.ok,
        outcome.failures.len(),
        rejected(&proxy, "bad_request"),
        rejected(&proxy, "header_too_large"),
        rejected(&proxy, "incomplete"),
    );
}
