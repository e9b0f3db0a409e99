//! RFC 9112 / RFC 9110 framing rules an ingress must keep, one test per
//! class of issue 20, each on both transports (`--fast-path on` and `off`):
//! raw bytes over a socket to the real binary, asserting what the client got
//! and what the backend received. RELIABILITY.md's conformance table points
//! here.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::process::{binary, temp_dir};
use support::{eventually, Backend, Raw, Ringress};

const WAIT: Duration = Duration::from_secs(20);

/// Both transports, each with the same routes.
fn both(routes: &str, extra: &[&str]) -> [(&'static str, Ringress); 2] {
    [
        ("on", Ringress::start_with_fast_path(routes, extra, true)),
        ("off", Ringress::start_with_fast_path(routes, extra, false)),
    ]
}

fn one_route(url: &str) -> String {
    format!(
        "routes:\n  - name: all\n    match: {{pathPrefix: /}}\n    backend: {{endpoints: [\"{url}\"]}}\n"
    )
}

/// An endpoint that answers every request with the same raw bytes and keeps
/// the raw request heads it read.
struct Scripted {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    /// `close`: close the connection after answering.
    fn start(response: &'static [u8], close: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&heads);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = read_head(&mut conn, &mut buf) else {
                            return;
                        };
                        let head: Vec<u8> = buf.drain(..end).collect();
                        log.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).into());
                        if conn.write_all(response).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `request` on a new connection and returns every byte the proxy
/// wrote until it closed the connection or went quiet for `quiet`.
fn raw_exchange(proxy: SocketAddr, request: &[u8], quiet: Duration) -> (String, bool) {
    let mut conn = TcpStream::connect(proxy).unwrap();
    conn.write_all(request).unwrap();
    conn.set_read_timeout(Some(quiet)).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    let closed = loop {
        match conn.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: shop.example\r\n\r\n";

/// Class 1: an obs-folded response header is forwarded with the fold
/// replaced by one space (RFC 9112 §5.2), never verbatim.
#[test]
fn obs_folded_response_headers_are_unfolded() {
    let endpoint = Scripted::start(
        b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n \t second\r\nContent-Length: 5\r\n\r\nhello",
        false,
    );
    for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
        let (out, _) = raw_exchange(proxy.listen, GET, Duration::from_millis(500));
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n"),
            "--fast-path {flag}: {out}"
        );
        let folded = out
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("x-folded:"))
            .unwrap_or_else(|| panic!("--fast-path {flag}: no X-Folded in {out}"));
        assert_eq!(
            folded.split_once(':').unwrap().1.trim(),
            "first second",
            "--fast-path {flag}"
        );
        assert!(
            !out.contains("\r\n "),
            "--fast-path {flag}: a fold went through: {out:?}"
        );
        assert!(
            out.ends_with("\r\n\r\nhello"),
            "--fast-path {flag}: {out:?}"
        );
    }
}

/// Class 2: a request line that is not `method SP target SP version`, or a
/// target in neither origin nor absolute form, is a 400 and reaches no
/// backend. Before the fix `GET  /admin/x` reached the backend as
/// `%20/admin/x`, past a route refusing `/admin`.
#[test]
fn malformed_request_lines_are_refused_before_routing() {
    let app = Backend::start("app");
    let routes = format!(
        "routes:
  - name: admin
    match: {{pathPrefix: /admin}}
    backend: {{status: 403}}
  - name: app
    match: {{pathPrefix: /}}
    backend: {{endpoints: [\"{}\"]}}
",
        app.url()
    );
    for (flag, proxy) in both(&routes, &[]) {
        let before = app.hits();
        for line in [
            "GET  /admin/x HTTP/1.1",
            "GET\t/admin/x HTTP/1.1",
            "GET /admin/x  HTTP/1.1",
            "GET /x#frag HTTP/1.1",
            "GET admin/x HTTP/1.1",
            "GET * HTTP/1.1",
            "GET ftp://shop.example/x HTTP/1.1",
        ] {
            let request = format!("{line}\r\nHost: shop.example\r\n\r\n");
            let mut raw = Raw::connect(proxy.listen);
            let resp = raw.send(request.as_bytes()).response();
            let status = resp.as_ref().map(|r| r.status_line.clone());
            assert_eq!(
                status.as_deref(),
                Some("HTTP/1.1 400 Bad Request"),
                "--fast-path {flag}: {line:?}"
            );
            assert!(
                raw.closed_within(Duration::from_secs(5)),
                "--fast-path {flag}: {line:?}"
            );
        }
        assert_eq!(
            app.hits(),
            before,
            "--fast-path {flag}: a malformed request reached the backend"
        );
        let bad_target = proxy.metric("ringress_rejected_requests_total", "reason=\"bad_target\"");
        assert!(
            bad_target >= 6.0,
            "--fast-path {flag}: bad_target counted {bad_target}"
        );
        // The well-formed forms still work.
        for request in [
            &b"GET /x HTTP/1.1\r\nHost: shop.example\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            b"GET http://shop.example/x HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            b"\r\n\r\nGET /x HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        ] {
            let resp = Raw::connect(proxy.listen).send(request).response();
            assert_eq!(resp.map(|r| r.status), Some(200), "--fast-path {flag}");
        }
    }
}

/// Class 3: a response's Transfer-Encoding is read as a list (empty elements
/// ignored); the framing the proxy uses is the framing the client is told,
/// or the response is a 502. Either way the connection stays in step.
#[test]
fn response_transfer_encoding_lists_frame_what_the_client_is_told() {
    for response in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let endpoint = Scripted::start(response, false);
        for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
            let request = b"GET /x HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /y HTTP/1.1\r\nHost: shop.example\r\n\r\n";
            let (out, _) = raw_exchange(proxy.listen, request, Duration::from_millis(800));
            let shown = String::from_utf8_lossy(response);
            if out.starts_with("HTTP/1.1 502") {
                assert!(out.contains("upstream error"), "--fast-path {flag} {shown:?}: {out:?}");
                continue;
            }
            // Told chunked, framed chunked: both responses arrive whole, in step.
            let lower = out.to_ascii_lowercase();
            assert_eq!(lower.matches("http/1.1 200 ok\r\n").count(), 2, "--fast-path {flag} {shown:?}: {out:?}");
            assert_eq!(lower.matches("transfer-encoding: chunked").count(), 2, "--fast-path {flag}: {out:?}");
            assert_eq!(out.matches("5\r\nhello\r\n0\r\n\r\n").count(), 2, "--fast-path {flag}: {out:?}");
        }
    }
}

/// Class 4: a status outside 100–599, or not three digits, is a 502.
#[test]
fn invalid_response_statuses_are_502() {
    for response in [
        &b"HTTP/1.1 000 Zero\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"HTTP/1.1 600 Beyond\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 099 Low\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 2x0 Letters\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 20 Short\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let endpoint = Scripted::start(response, false);
        for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
            let (out, _) = raw_exchange(proxy.listen, GET, Duration::from_millis(500));
            assert!(
                out.starts_with("HTTP/1.1 502 Bad Gateway\r\n") && !out.contains("hello"),
                "--fast-path {flag} {:?}: {out:?}",
                String::from_utf8_lossy(response)
            );
        }
    }
}

/// Class 5: fields named in `Connection`, and the hop-by-hop set, are removed
/// in both directions (RFC 9110 §7.6.1).
#[test]
fn connection_named_and_hop_by_hop_fields_are_removed_both_ways() {
    let endpoint = Scripted::start(
        b"HTTP/1.1 200 OK\r\nConnection: X-Internal, keep-alive\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\nContent-Length: 5\r\n\r\nhello",
        false,
    );
    for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
        let request = b"GET /x HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s3cret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-End: 1\r\n\r\n";
        let (out, _) = raw_exchange(proxy.listen, request, Duration::from_millis(500));
        let lower = out.to_ascii_lowercase();
        assert!(
            lower.starts_with("http/1.1 200 ok\r\n"),
            "--fast-path {flag}: {out}"
        );
        for gone in ["x-internal", "keep-alive:", "proxy-connection", "upgrade"] {
            assert!(
                !lower.contains(gone),
                "--fast-path {flag}: {gone} reached the client: {out}"
            );
        }
        assert!(lower.contains("x-kept: yes"), "--fast-path {flag}: {out}");
        let head = endpoint
            .heads()
            .pop()
            .expect("the endpoint got the request")
            .to_ascii_lowercase();
        for gone in ["x-secret", "keep-alive", "\r\nte:", "proxy-connection"] {
            assert!(
                !head.contains(gone),
                "--fast-path {flag}: {gone} reached the backend: {head}"
            );
        }
        assert!(head.contains("x-end: 1"), "--fast-path {flag}: {head}");
    }
}

/// Class 6: pipelined requests (several in one write, a body among them)
/// are all answered, in order; a client that half-closes after sending them
/// still gets every answer; nothing after `Connection: close` is served.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let app = Backend::start("app");
    for (flag, proxy) in both(&one_route(&app.url()), &[]) {
        let before = app.hits();
        let request = b"GET /p/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n\
POST /p/2 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n\r\nhello\
GET /p/3 HTTP/1.1\r\nHost: shop.example\r\n\r\n\
POST /p/4 HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HEAD /p/5 HTTP/1.1\r\nHost: shop.example\r\n\r\n\
GET /p/6 HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        let mut raw = Raw::connect(proxy.listen);
        raw.send(request);
        for n in 1..=6 {
            if n == 5 {
                // A HEAD response has no body: read its head only.
                let resp = raw.response_to_head().expect("the HEAD answered");
                assert_eq!(resp.header("x-path"), Some("/p/5"), "--fast-path {flag}");
                continue;
            }
            let resp = raw
                .response()
                .unwrap_or_else(|| panic!("--fast-path {flag}: no answer {n}"));
            assert_eq!(resp.status, 200, "--fast-path {flag}: request {n}");
            assert_eq!(
                resp.header("x-path"),
                Some(format!("/p/{n}").as_str()),
                "--fast-path {flag}"
            );
        }
        assert_eq!(app.hits() - before, 6, "--fast-path {flag}");
        let bodies = app.seen.bodies.lock().unwrap().clone();
        assert_eq!(
            bodies[bodies.len() - 6..],
            [0, 5, 0, 3, 0, 0],
            "--fast-path {flag}"
        );

        // Half-closed after pipelining: every answer still comes.
        let mut conn = TcpStream::connect(proxy.listen).unwrap();
        conn.write_all(b"GET /h/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /h/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /h/3 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut half = String::new();
        let _ = conn.read_to_string(&mut half);
        let order: Vec<&str> = half.lines().filter(|l| l.starts_with("x-path:")).collect();
        assert_eq!(
            order,
            ["x-path: /h/1", "x-path: /h/2", "x-path: /h/3"],
            "--fast-path {flag}: {half}"
        );

        // Nothing after `Connection: close` is served.
        let before = app.hits();
        let (out, closed) = raw_exchange(
            proxy.listen,
            b"GET /c/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /c/2 HTTP/1.1\r\nHost: a\r\n\r\n",
            Duration::from_secs(5),
        );
        assert!(closed, "--fast-path {flag}");
        assert_eq!(
            out.matches("HTTP/1.1 200 OK").count(),
            1,
            "--fast-path {flag}: {out}"
        );
        assert_eq!(app.hits() - before, 1, "--fast-path {flag}");
    }
}

/// Class 7: a `101 Switching Protocols` to a request that asked for no
/// upgrade is a 502, and no byte after it reaches the client.
#[test]
fn unsolicited_101_is_a_502_and_no_tunnel() {
    let endpoint = Scripted::start(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\nraw tunnel bytes",
        true,
    );
    for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
        let (out, _) = raw_exchange(proxy.listen, GET, Duration::from_millis(800));
        assert!(
            out.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
            "--fast-path {flag}: {out:?}"
        );
        assert!(
            !out.contains("raw tunnel bytes") && !out.contains("101"),
            "--fast-path {flag}: {out:?}"
        );
    }
}

/// Class 8: an HTTP/1.0 request without Host goes upstream as HTTP/1.1 with
/// the endpoint's authority; a route file whose header filters set framing
/// or hop-by-hop fields is refused by `ringress check` with file:line:column.
#[test]
fn http10_without_host_gets_the_endpoints_authority() {
    let endpoint = Scripted::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
    for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
        let (out, _) = raw_exchange(
            proxy.listen,
            b"GET /old HTTP/1.0\r\n\r\n",
            Duration::from_secs(2),
        );
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n"),
            "--fast-path {flag}: {out}"
        );
        let head = endpoint.heads().pop().expect("forwarded");
        assert!(
            head.starts_with("GET /old HTTP/1.1\r\n"),
            "--fast-path {flag}: {head}"
        );
        let hosts: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
            .collect();
        assert_eq!(hosts.len(), 1, "--fast-path {flag}: {head}");
        assert_eq!(
            hosts[0].split_once(':').unwrap().1.trim(),
            endpoint.addr.to_string(),
            "--fast-path {flag}: {head}"
        );
    }

    let dir = temp_dir("framing-check");
    let file = dir.join("routes.yaml");
    std::fs::write(
        &file,
        "routes:\n  - name: r\n    filters:\n      - setRequestHeader: {name: Transfer-Encoding, value: chunked}\n    backend: {endpoints: [\"http://127.0.0.1:1\"]}\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains(&format!(
            "{}:4:34: route \"r\": filter setRequestHeader: \"Transfer-Encoding\" frames the message",
            file.display()
        )),
        "{stderr}"
    );
}

/// Class 9: how `;` parameters, `%2F` and case are matched (README, Paths),
/// and `--strict-paths`, which refuses paths backends read in more than one
/// way before any route is matched.
#[test]
fn strict_paths_refuse_what_backends_read_two_ways() {
    let app = Backend::start("app");
    let routes = format!(
        "routes:
  - name: admin
    match: {{pathPrefix: /admin}}
    backend: {{status: 403}}
  - name: app
    match: {{pathPrefix: /}}
    backend: {{endpoints: [\"{}\"]}}
",
        app.url()
    );
    let ambiguous = [
        "/admin;x",
        "/admin;jsessionid=1/users",
        "/a%2Fb",
        "/a%2fb",
        "/admin%5Cx",
        "/a%00",
    ];
    // By default the path is matched as received: `;` and `%2F` are
    // ordinary characters, case matters.
    for (flag, proxy) in both(&routes, &[]) {
        let get = |path: &str| {
            let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
            Raw::connect(proxy.listen)
                .send(request.as_bytes())
                .response()
                .map(|r| r.status)
        };
        assert_eq!(get("/admin/x"), Some(403), "--fast-path {flag}");
        assert_eq!(
            get("/admin;x"),
            Some(200),
            "--fast-path {flag}: not the /admin prefix by default"
        );
        assert_eq!(get("/ADMIN"), Some(200), "--fast-path {flag}: case matters");
    }
    for (flag, proxy) in both(&routes, &["--strict-paths"]) {
        let before = app.hits();
        for path in ambiguous {
            let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
            let resp = Raw::connect(proxy.listen)
                .send(request.as_bytes())
                .response();
            assert_eq!(
                resp.map(|r| r.status_line),
                Some("HTTP/1.1 400 Bad Request".into()),
                "--fast-path {flag}: {path}"
            );
        }
        assert_eq!(
            app.hits(),
            before,
            "--fast-path {flag}: an ambiguous path reached the backend"
        );
        eventually(WAIT, "ambiguous_path counted", || {
            let n = proxy.metric(
                "ringress_rejected_requests_total",
                "reason=\"ambiguous_path\"",
            );
            (n == ambiguous.len() as f64).then_some(())
        });
        let ok = Raw::connect(proxy.listen)
            .send(b"GET /a/b?x=%2F;y HTTP/1.1\r\nHost: a\r\n\r\n")
            .response();
        assert_eq!(
            ok.map(|r| r.status),
            Some(200),
            "--fast-path {flag}: the query is not the path"
        );
    }
}

/// Class 5, continued: a `Connection` header listing a field that
/// addresses or frames the message for every hop (Host, Content-Length,
/// Transfer-Encoding) or one the proxy vouches for (X-Forwarded-*) is a 400:
/// honouring it would send a request without Host or reframe its body
/// (RFC 9110 §7.6.1 forbids a sender to list them).
#[test]
fn connection_may_not_list_end_to_end_fields() {
    let app = Backend::start("app");
    for (flag, proxy) in both(&one_route(&app.url()), &[]) {
        let before = app.hits();
        for request in [
            &b"GET /h HTTP/1.1\r\nHost: shop.example\r\nConnection: Host\r\n\r\n"[..],
            b"GET /h HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Forwarded-For\r\n\r\n",
            b"POST /b HTTP/1.1\r\nHost: shop.example\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /h HTTP/1.1\r\nHost: shop.example\r\nConnection: a, b, c, d, e\r\nConnection: f, g, h, i, j\r\n\r\n",
        ] {
            let resp = Raw::connect(proxy.listen).send(request).response();
            assert_eq!(
                resp.map(|r| r.status),
                Some(400),
                "--fast-path {flag}: {:?}",
                String::from_utf8_lossy(request)
            );
        }
        assert_eq!(
            app.hits(),
            before,
            "--fast-path {flag}: a refused request reached the backend"
        );
        let ok = Raw::connect(proxy.listen)
            .send(b"GET /h HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Custom\r\nX-Custom: 1\r\n\r\n")
            .response();
        assert_eq!(ok.map(|r| r.status), Some(200), "--fast-path {flag}");
        assert_eq!(app.header("x-custom"), None, "--fast-path {flag}");
    }
}

/// Framing stated twice (chunked applied twice, `Content-Length` repeated
/// or as a list, even with equal values) and Host values that are not
/// `host[:port]` are 400s that reach no backend (RFC 9112 §6.1, §6.3, §3.2).
#[test]
fn framing_stated_twice_and_bad_hosts_are_refused() {
    let app = Backend::start("app");
    for (flag, proxy) in both(&one_route(&app.url()), &[]) {
        let before = app.hits();
        for (request, reason) in [
            (&b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..], "smuggling"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "smuggling"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", "smuggling"),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "bad_host"),
            (b"GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", "bad_host"),
            (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", "bad_host"),
            (b"GET / HTTP/1.1\r\nHost: [zz]:80\r\n\r\n", "bad_host"),
        ] {
            let shown = String::from_utf8_lossy(request);
            let counted = |p: &Ringress| {
                p.metric("ringress_rejected_requests_total", &format!("reason=\"{reason}\""))
            };
            let was = counted(&proxy);
            let resp = Raw::connect(proxy.listen).send(request).response();
            assert_eq!(resp.map(|r| r.status), Some(400), "--fast-path {flag}: {shown:?}");
            eventually(WAIT, "the rejection counted", || (counted(&proxy) == was + 1.0).then_some(()));
        }
        assert_eq!(
            app.hits(),
            before,
            "--fast-path {flag}: a refused request reached the backend"
        );
        let ok = Raw::connect(proxy.listen)
            .send(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
            .response();
        assert_eq!(ok.map(|r| r.status), Some(200), "--fast-path {flag}");
    }
}

/// Interim responses are forwarded to HTTP/1.1 clients, without hop-by-hop
/// fields, before the final one (RFC 9110 §15.2); never to an HTTP/1.0
/// client.
#[test]
fn interim_responses_reach_http11_clients_only() {
    let endpoint = Scripted::start(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nKeep-Alive: timeout=5\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        false,
    );
    for (flag, proxy) in both(&one_route(&endpoint.url()), &[]) {
        let (out, _) = raw_exchange(proxy.listen, GET, Duration::from_millis(500));
        let statuses: Vec<&str> = out.lines().filter(|l| l.starts_with("HTTP/")).collect();
        assert_eq!(
            statuses,
            [
                "HTTP/1.1 103 Early Hints",
                "HTTP/1.1 100 Continue",
                "HTTP/1.1 200 OK"
            ],
            "--fast-path {flag}: {out:?}"
        );
        let lower = out.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nlink: </a.css>; rel=preload\r\n"),
            "--fast-path {flag}: {out:?}"
        );
        assert!(
            !lower.contains("keep-alive: timeout"),
            "--fast-path {flag}: {out:?}"
        );
        assert!(
            out.ends_with("\r\n\r\nhello"),
            "--fast-path {flag}: {out:?}"
        );

        let (out, _) = raw_exchange(
            proxy.listen,
            b"GET /old HTTP/1.0\r\nHost: shop.example\r\n\r\n",
            Duration::from_secs(2),
        );
        let statuses: Vec<&str> = out.lines().filter(|l| l.starts_with("HTTP/")).collect();
        assert_eq!(statuses, ["HTTP/1.1 200 OK"], "--fast-path {flag}: {out:?}");
    }
}
