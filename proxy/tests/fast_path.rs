//! The fast path (GET/HEAD without a body, served without pingora's proxy
//! pipeline) against scripted backends that answer with each kind of HTTP/1.1
//! framing: chunked with trailers, close-delimited, interim 1xx (forwarded), HEAD, an idle
//! connection closed by the backend, ambiguous framing. Real binary, real
//! sockets; the backend writes exactly the bytes each test scripts.
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::process::fast_path;
use support::{eventually, Raw, Ringress};

/// Whether the proxies under test run the fast transport (`RINGRESS_FAST_PATH`).
/// A few framing details are the transport's, not the policy's: where they
/// differ, each test says what pingora's pipeline does instead
/// (`differential.rs` lists the same differences).
fn fast() -> bool {
    fast_path() == "on"
}

/// What the backend writes for the n-th request on a connection (n from 0),
/// and whether it closes the connection afterwards.
type Script = dyn Fn(&str, usize) -> (Vec<u8>, bool) + Send + Sync;

/// A backend that answers each request with the bytes its script returns.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn start(script: impl Fn(&str, usize) -> (Vec<u8>, bool) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let (c, h) = (Arc::clone(&connections), Arc::clone(&heads));
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (script, heads) = (Arc::clone(&script), Arc::clone(&h));
                thread::spawn(move || serve(conn, &*script, &heads));
            }
        });
        Self {
            addr,
            connections,
            heads,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn last_head(&self) -> String {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn serve(mut conn: TcpStream, script: &Script, heads: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    for n in 0.. {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        // Bodies are read and dropped.
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        buf.drain(..length);
        heads.lock().unwrap().push(head.clone());
        let (bytes, close) = script(&head, n);
        if conn.write_all(&bytes).is_err() || close {
            return;
        }
    }
}

fn proxy_for(backend: &Scripted) -> Ringress {
    Ringress::start(&format!(
        "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    filters:\n      - consistentHashKey: \"${{id}}\"\n    backend:\n      endpoints: [{}]\n",
        backend.url()
    ))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n").into_bytes()
}

/// Reads from `raw`'s socket until `end` has been seen; returns everything read.
fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(end.len()).any(|w| w == end) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&chunk[..k]),
        }
    }
    got
}

#[test]
fn chunked_responses_pass_through_whole_on_a_kept_alive_connection() {
    let body = "5\r\nhello\r\n6;note=x\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n";
    let backend = Scripted::start(move |_, _| {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n";
        // Head and body in separate writes, the body split mid-chunk.
        ([head, &body[..9], &body[9..]].concat().into_bytes(), false)
    });
    let proxy = proxy_for(&backend);
    let mut client = TcpStream::connect(proxy.listen).unwrap();
    // pingora's pipeline re-chunks the body and drops the trailer fields.
    let (end, forwarded): (&[u8], &str) = match fast() {
        true => (b"X-Checksum: 42\r\n\r\n", body),
        false => (b"\r\n0\r\n\r\n", "hello world"),
    };
    for id in ["1", "2", "3"] {
        client.write_all(&get(&format!("/products/{id}"))).unwrap();
        let got = String::from_utf8(read_until(&mut client, end)).unwrap();
        let (head, rest) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        assert!(head.contains("Connection: keep-alive"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("keep-alive: timeout"),
            "hop-by-hop forwarded: {head}"
        );
        let rest = match fast() {
            true => rest.to_string(),
            false => dechunk(rest),
        };
        assert_eq!(
            rest, forwarded,
            "the chunked body byte for byte, trailers included (fast path)"
        );
    }
    // Three requests, one upstream connection: the idle connection was reused.
    assert_eq!(backend.connections(), 1);
    let seen = backend.last_head();
    assert!(seen.starts_with("GET /products/3 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-Proto: http\r\n"), "{seen}");
    assert!(
        seen.contains("X-Forwarded-Host: shop.example\r\n"),
        "{seen}"
    );
    // Counted once the response is out, so possibly just after the client has it.
    let labels = [
        r#"route="products""#,
        r#"method="GET""#,
        r#"status_class="2xx""#,
    ];
    eventually(Duration::from_secs(5), "3 requests counted", || {
        (proxy.metric_sum("ringress_requests_total", &labels) == 3.0).then_some(())
    });
}

/// The data of a chunked body without its framing.
fn dechunk(mut body: &str) -> String {
    let mut data = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.split(';').next().unwrap(), 16).unwrap();
        if size == 0 {
            return data;
        }
        data.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

#[test]
fn a_close_delimited_response_is_forwarded_and_the_client_connection_closes() {
    let backend = Scripted::start(|_, _| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec(),
            true,
        )
    });
    let proxy = proxy_for(&backend);
    let mut raw = Raw::connect(proxy.listen);
    raw.send(&get("/products/7"));
    let resp = raw.response().expect("a response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body_text(), "until the end");
}

#[test]
fn an_idle_connection_the_backend_closed_is_replaced_without_an_error() {
    // Says nothing about closing, then closes the connection after each response.
    let backend = Scripted::start(|_, _| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            true,
        )
    });
    let proxy = proxy_for(&backend);
    let mut raw = Raw::connect(proxy.listen);
    for id in 0..5 {
        raw.send(&get(&format!("/products/{id}")));
        let resp = raw.response().expect("a response");
        assert_eq!(resp.status, 200, "request {id}");
        assert_eq!(resp.body_text(), "ok");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(backend.connections(), 5);
    let labels = r#"route="products""#;
    assert_eq!(
        proxy.metric("ringress_upstream_connect_failures_total", labels),
        0.0
    );
    assert_eq!(proxy.metric("ringress_retries_total", labels), 0.0);
}

#[test]
fn interim_responses_are_forwarded_and_head_responses_have_no_body() {
    let backend = Scripted::start(|head, _| {
        let is_head = head.starts_with("HEAD ");
        let mut out = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n".to_vec();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        if !is_head {
            out.extend_from_slice(b"hello");
        }
        (out, false)
    });
    let proxy = proxy_for(&backend);
    let mut raw = Raw::connect(proxy.listen);
    raw.send(b"HEAD /products/1 HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut client = raw.stream_clone();
    // The 103 and the 200 heads, in one read or two.
    let mut heads = String::from_utf8(read_until(&mut client, b"\r\n\r\n")).unwrap();
    if heads.matches("\r\n\r\n").count() < 2 {
        heads += &String::from_utf8(read_until(&mut client, b"\r\n\r\n")).unwrap();
    }
    let (interim, head) = heads.split_once("\r\n\r\n").unwrap();
    assert!(
        interim.starts_with("HTTP/1.1 103 Early Hints\r\n"),
        "{interim}"
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 5"), "{head}");
    // Same connection: a GET right after the bodiless HEAD response.
    client.write_all(&get("/products/1")).unwrap();
    let got = String::from_utf8(read_until(&mut client, b"hello")).unwrap();
    assert!(got.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{got}");
    assert!(got.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello"), "{got}");
}

#[test]
fn ambiguous_response_framing_is_a_502() {
    let backend = Scripted::start(|_, _| {
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(), false)
    });
    if fast() {
        expect_502_upstream_error(&proxy_for(&backend));
        return;
    }
    // pingora's client drops Content-Length before any hook sees the head
    // and frames by Transfer-Encoding (RFC 9112 §6.3, forwarding intermediary).
    let (resp, _) = support::exchange(proxy_for(&backend).listen, &get("/products/1"));
    let resp = resp.expect("a response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(dechunk(&resp.body_text()), "abc");
}

/// One GET gets `502 upstream error`, the connection closes, the 502 is counted.
fn expect_502_upstream_error(proxy: &Ringress) {
    let (resp, closed) = support::exchange(proxy.listen, &get("/products/1"));
    let resp = resp.expect("a response");
    assert_eq!(resp.status, 502);
    assert_eq!(resp.body_text(), "upstream error\n");
    assert!(closed);
    let labels = [
        r#"route="products""#,
        r#"method="GET""#,
        r#"status_class="5xx""#,
    ];
    eventually(Duration::from_secs(5), "the 502 counted", || {
        (proxy.metric_sum("ringress_requests_total", &labels) == 1.0).then_some(())
    });
}

#[test]
fn requests_the_fast_path_leaves_alone_share_the_connection_with_it() {
    let backend = Scripted::start(|head, _| {
        let body = head.lines().next().unwrap_or("").to_string();
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            false,
        )
    });
    let proxy = proxy_for(&backend);
    let mut raw = Raw::connect(proxy.listen);
    // Fast path, then a body (pingora's pipeline), then a path to normalise,
    // then the fast path again, all on one client connection.
    raw.send(&get("/products/1"));
    assert_eq!(
        raw.response().unwrap().body_text(),
        "GET /products/1 HTTP/1.1"
    );
    raw.send(b"POST /products/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(
        raw.response().unwrap().body_text(),
        "POST /products/2 HTTP/1.1"
    );
    raw.send(b"GET /x/../products/3 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        raw.response().unwrap().body_text(),
        "GET /products/3 HTTP/1.1"
    );
    raw.send(&get("/products/4"));
    assert_eq!(
        raw.response().unwrap().body_text(),
        "GET /products/4 HTTP/1.1"
    );
    // Pipelined requests, one for each path, are answered in order on the
    // same connection (framing.rs has the rest).
    raw.send(
        &[
            get("/products/5"),
            b"POST /products/6 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            get("/products/7"),
        ]
        .concat(),
    );
    for want in ["GET /products/5", "POST /products/6", "GET /products/7"] {
        assert_eq!(
            raw.response().unwrap().body_text(),
            format!("{want} HTTP/1.1")
        );
    }
    assert!(!raw.closed_within(Duration::from_millis(200)));
}

/// A backend that reads one request head per connection and then runs
/// `respond` on the connection: for answers written in several steps.
fn stepwise(respond: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let respond = Arc::new(respond);
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let respond = Arc::clone(&respond);
            thread::spawn(move || {
                let head = read_until(&mut conn, b"\r\n\r\n");
                if !head.is_empty() {
                    respond(&mut conn);
                }
            });
        }
    });
    url
}

fn proxy_to(url: &str) -> Ringress {
    Ringress::start(&format!(
        "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    filters:\n      - consistentHashKey: \"${{id}}\"\n    backend:\n      endpoints: [{url}]\n"
    ))
}

#[test]
fn a_small_response_reaches_the_client_whole_when_its_endpoint_pauses_after_the_head() {
    let url = stepwise(|conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n");
        thread::sleep(Duration::from_millis(200));
        let _ = conn.write_all(b"hello world");
    });
    let proxy = proxy_to(&url);
    let mut client = TcpStream::connect(proxy.listen).unwrap();
    client.write_all(&get("/products/1")).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // One read: the proxy held the head until the body came, and wrote both at once.
    let mut chunk = [0u8; 4096];
    let k = client.read(&mut chunk).unwrap();
    let got = String::from_utf8_lossy(&chunk[..k]);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(
        got.ends_with("\r\n\r\nhello world"),
        "head and body in one read: {got}"
    );
}

#[test]
fn an_endpoint_closing_before_a_small_body_is_whole_gets_the_client_a_502_not_a_cut() {
    let url = stepwise(|conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    });
    if fast() {
        expect_502_upstream_error(&proxy_to(&url));
        return;
    }
    // pingora's pipeline has written the head by then: the client sees the
    // body cut short, never a whole 200.
    let (resp, _) = support::exchange(proxy_to(&url).listen, &get("/products/1"));
    assert!(resp.is_none_or(|r| r.body.len() < 10), "a whole response");
}

#[test]
fn a_large_response_streams_to_the_client_before_its_endpoint_finishes_it() {
    const HALF: usize = 24 * 1024;
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let url = stepwise(move |conn| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 2 * HALF);
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&[b'a'; HALF]);
        // The rest only once the client has the first half.
        let _ = wait.lock().unwrap().recv();
        let _ = conn.write_all(&[b'b'; HALF]);
    });
    let proxy = proxy_to(&url);
    let mut client = TcpStream::connect(proxy.listen).unwrap();
    client.write_all(&get("/products/1")).unwrap();
    let first = read_until(&mut client, &[b'a'; 64]);
    assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
    go.send(()).unwrap();
    let body_at = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut body = first[body_at..].to_vec();
    let mut chunk = [0u8; 16 * 1024];
    while body.len() < 2 * HALF {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(k) => body.extend_from_slice(&chunk[..k]),
        }
    }
    assert_eq!(body.len(), 2 * HALF);
    assert!(body[..HALF].iter().all(|&b| b == b'a') && body[HALF..].iter().all(|&b| b == b'b'));
}

#[test]
fn an_idle_upstream_connection_the_endpoint_closes_is_closed_without_further_traffic() {
    let proxy_closed = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&proxy_closed);
    let url = stepwise(move |conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        // Keep-alive, then the endpoint gives up on the idle connection (a
        // keep-alive timeout) with a half close, and waits for the proxy's FIN.
        thread::sleep(Duration::from_millis(100));
        let _ = conn.shutdown(std::net::Shutdown::Write);
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(conn.read(&mut byte), Ok(0)) {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let proxy = proxy_to(&url);
    let (resp, _) = support::exchange(proxy.listen, &get("/products/1"));
    assert_eq!(resp.expect("a response").status, 200);
    // No more requests: the pool's sweep, not a later take, closes the socket.
    eventually(Duration::from_secs(15), "the proxy closing its end", || {
        (proxy_closed.load(Ordering::SeqCst) == 1).then_some(())
    });
}

#[test]
fn a_routes_own_forwarded_header_replaces_the_proxys() {
    let backend = Scripted::start(|_, _| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            false,
        )
    });
    let proxy = Ringress::start(&format!(
        "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    filters:\n      - setRequestHeader: {{name: X-Forwarded-Proto, value: https}}\n    backend:\n      endpoints: [{}]\n",
        backend.url()
    ));
    let mut raw = Raw::connect(proxy.listen);
    raw.send(&get("/products/1"));
    assert_eq!(raw.response().expect("a response").status, 200);
    let seen = backend.last_head().to_ascii_lowercase();
    assert_eq!(
        seen.matches("x-forwarded-proto:").count(),
        1,
        "one X-Forwarded-Proto: {seen}"
    );
    assert!(seen.contains("x-forwarded-proto: https\r\n"), "{seen}");
}

#[test]
fn bytes_an_idle_upstream_connection_receives_are_never_read_as_a_response() {
    // Each connection answers its requests, but after the first it also sends
    // a stray response nobody asked for, while the connection sits idle.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for (c, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                for n in 0.. {
                    if read_until(&mut conn, b"\r\n\r\n").is_empty() {
                        return;
                    }
                    let body = format!("c{c}r{n}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                    if n == 0 {
                        thread::sleep(Duration::from_millis(100));
                        let _ =
                            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG");
                    }
                }
            });
        }
    });
    let proxy = proxy_to(&url);
    let mut raw = Raw::connect(proxy.listen);
    raw.send(&get("/products/1"));
    assert_eq!(raw.response().unwrap().body_text(), "c0r0");
    thread::sleep(Duration::from_millis(400));
    raw.send(&get("/products/1"));
    let resp = raw.response().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body_text(),
        "c1r0",
        "a new connection, not the stray bytes"
    );
}

#[test]
fn an_endpoint_answering_only_interim_responses_gets_a_502() {
    let backend = Scripted::start(|_, _| {
        let mut out = b"HTTP/1.1 102 Processing\r\n\r\n".repeat(40);
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        (out, false)
    });
    // The first 16 are forwarded as they come (RFC 9110 §15.2), then the
    // endpoint is cut off with a 502.
    let proxy = proxy_for(&backend);
    let mut conn = TcpStream::connect(proxy.listen).unwrap();
    conn.write_all(&get("/products/1")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = String::new();
    let _ = conn.read_to_string(&mut got);
    assert_eq!(
        got.matches("HTTP/1.1 102 Processing\r\n\r\n").count(),
        16,
        "{got}"
    );
    let last = got.rfind("HTTP/1.1 ").unwrap();
    assert!(
        got[last..].starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{got}"
    );
    assert!(
        got.ends_with("upstream error\n") && !got.contains("ok"),
        "{got}"
    );
}

#[test]
fn unusable_response_heads_count_against_the_endpoint_and_eject_it() {
    // pingora's client makes Content-Length with Transfer-Encoding usable
    // (see above); a status outside 100-599 is unusable on both transports.
    let unusable: &[u8] = match fast() {
        true => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        false => b"HTTP/1.1 600 Unknown\r\nContent-Length: 3\r\n\r\nabc",
    };
    let backend = Scripted::start(move |_, _| (unusable.to_vec(), false));
    let proxy = Ringress::start(&format!(
        "routes:\n  - name: products\n    match: {{path: \"/products/{{id}}\"}}\n    backend:\n      endpoints: [{}]\n      passiveHealthCheck: {{consecutiveFailures: 3, ejectFor: 30s}}\n",
        backend.url()
    ));
    for _ in 0..3 {
        let (resp, _) = support::exchange(proxy.listen, &get("/products/1"));
        assert_eq!(resp.expect("a response").status, 502);
    }
    let labels = format!(r#"endpoint="{}""#, backend.url());
    eventually(Duration::from_secs(5), "the endpoint ejected", || {
        (proxy.metric("ringress_endpoint_ejected", &labels) == 1.0).then_some(())
    });
}
