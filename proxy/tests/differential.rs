//! Differential test of the two request paths: the same route file is served
//! by two real `ringress` binaries, one with `--fast-path on` and one with
//! `--fast-path off`, in front of the same scripted raw-socket endpoints. Each
//! case sends the same raw request bytes through both and compares what the
//! endpoint received (request heads and bodies) and what the client got
//! (response heads without `Date`, bodies byte for byte, and whether the
//! connection was kept alive). Whatever the policy, both paths must apply the
//! same one; every case that differs is listed, with both sides, before the
//! test fails once.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::{free_port, Ringress};

/// One thing a scripted endpoint does after reading a request.
enum Step {
    Write(&'static [u8]),
    Sleep(u64),
    /// Closes the connection (FIN).
    Close,
    /// Closes the connection with SO_LINGER 0 (RST).
    Reset,
}
use Step::*;

/// What the endpoint does for a request, given its head.
type Script = fn(&str) -> Vec<Step>;

enum Route {
    /// `pathPrefix: /{case}` over a scripted endpoint, with these `timeouts`
    /// (YAML flow map, empty for the defaults).
    Scripted(Script, &'static str),
    /// `backend: {status: N}`.
    Status(u16),
    /// One endpoint on a loopback port nobody listens on (`retries: 0`).
    Refused,
    /// One endpoint whose host never resolves: no endpoints to pick.
    Unresolvable,
    /// No route for the case: the request goes to `/nowhere`.
    Missing,
}

struct Case {
    name: &'static str,
    route: Route,
    /// Raw request bytes; `{p}` stands for the case's path prefix (`/name`).
    request: &'static str,
}

/// The table of cases: one loop below runs each through both proxies.
fn cases() -> Vec<Case> {
    const GET: &str =
        "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: diff\r\nAccept: */*\r\n\r\n";
    let scripted = |name, request, script: Script| Case {
        name,
        route: Route::Scripted(script, ""),
        request,
    };
    vec![
        // Requests.
        scripted("get_plain", GET, ok_hello),
        scripted(
            "head",
            "HEAD {p}/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "get_hop_by_hop_headers",
            "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nX-End: 1\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "get_connection_close",
            "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "get_connection_names_custom_header",
            "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s3cret\r\nKeep-Alive: timeout=5\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "get_upgrade_without_connection_upgrade",
            "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "get_http10",
            "GET {p}/1 HTTP/1.0\r\nHost: shop.example\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "websocket_upgrade_accepted",
            "GET {p}/ws HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            |_| vec![
                Write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello"),
                Close,
            ],
        ),
        scripted(
            "websocket_upgrade_refused",
            "GET {p}/ws HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            |_| vec![Write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno")],
        ),
        scripted(
            "post_content_length",
            "POST {p}/1 HTTP/1.1\r\nHost: shop.example\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
            ok_hello,
        ),
        scripted(
            "post_chunked",
            "POST {p}/1 HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            ok_hello,
        ),
        scripted(
            "pipelined_gets",
            "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\n\r\nGET {p}/2 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            ok_hello,
        ),
        // Answers of the proxy's own.
        Case {
            name: "no_route",
            route: Route::Missing,
            request: "GET /nowhere/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        },
        Case {
            name: "status_route_503",
            route: Route::Status(503),
            request: "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        },
        Case {
            name: "endpoint_refuses_connections",
            route: Route::Refused,
            request: "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        },
        Case {
            name: "no_endpoints",
            route: Route::Unresolvable,
            request: "GET {p}/1 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        },
        scripted("missing_host", "GET {p}/1 HTTP/1.1\r\n\r\n", ok_hello),
        scripted(
            "path_above_root",
            "GET {p}/../../x HTTP/1.1\r\nHost: shop.example\r\n\r\n",
            ok_hello,
        ),
        // Endpoint responses.
        scripted("early_hints_103_then_200", GET, |_| {
            vec![Write(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("unsolicited_100_then_200", GET, |_| {
            vec![Write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("status_000", GET, |_| {
            vec![Write(b"HTTP/1.1 000 Zero\r\nContent-Length: 5\r\n\r\nhello")]
        }),
        scripted("status_600", GET, |_| {
            vec![Write(b"HTTP/1.1 600 Beyond\r\nContent-Length: 5\r\n\r\nhello")]
        }),
        scripted("obs_folded_header", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("content_length_and_chunked", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )]
        }),
        scripted("content_length_list", GET, |_| {
            vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello")]
        }),
        scripted("content_length_twice", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("chunked_trailing_comma", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            )]
        }),
        scripted("chunked_with_trailers", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n6;note=x\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n",
            )]
        }),
        scripted("close_delimited", GET, |_| {
            vec![
                Write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"),
                Close,
            ]
        }),
        scripted("cut_short", GET, |_| {
            vec![
                Write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
                Close,
            ]
        }),
        scripted("cut_short_large", GET, |_| {
            static HALF: [u8; 20_000] = [b'x'; 20_000];
            vec![
                Write(b"HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n"),
                Write(&HALF),
                Close,
            ]
        }),
        scripted("response_connection_names_header", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("response_hop_by_hop_headers", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("response_connection_close", GET, |_| {
            vec![Write(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
            )]
        }),
        scripted("response_http10", GET, |_| {
            vec![
                Write(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
                Close,
            ]
        }),
        scripted("unsolicited_101_to_get", GET, |_| {
            vec![
                Write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\nraw bytes"),
                Close,
            ]
        }),
        Case {
            name: "slow_endpoint_within_timeout",
            route: Route::Scripted(
                |h| {
                    let mut s = vec![Sleep(300)];
                    s.extend(ok_hello(h));
                    s
                },
                "{response: 1s}",
            ),
            request: GET,
        },
        Case {
            name: "endpoint_past_response_timeout",
            route: Route::Scripted(
                |h| {
                    let mut s = vec![Sleep(2000)];
                    s.extend(ok_hello(h));
                    s
                },
                "{response: 500ms}",
            ),
            request: GET,
        },
        scripted("reset_before_answer", GET, |_| vec![Reset]),
    ]
}

/// `200 OK`, five bytes of body (none to a HEAD), kept alive.
fn ok_hello(head: &str) -> Vec<Step> {
    if head.starts_with("HEAD ") {
        vec![Write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: scripted\r\nContent-Length: 5\r\n\r\n",
        )]
    } else {
        vec![Write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: scripted\r\nContent-Length: 5\r\n\r\nhello",
        )]
    }
}

// ---------------------------------------------------------------- endpoint

/// A request as the endpoint received it: its head's lines, and its body
/// (de-chunked, so how a proxy splits chunks does not count).
struct Received {
    head: Vec<String>,
    body: Vec<u8>,
}

/// A raw-socket endpoint that records every request and answers with its script.
struct Recording {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Recording {
    fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = Arc::clone(&log2);
                thread::spawn(move || serve(conn, script, &log));
            }
        });
        Self { addr, log }
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn serve(mut conn: TcpStream, script: Script, log: &Mutex<Vec<Received>>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = fill_until(&mut conn, &mut buf, |b| find(b, b"\r\n\r\n").map(|i| i + 4))
        else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let lines: Vec<String> = head
            .trim_end_matches("\r\n")
            .split("\r\n")
            .map(str::to_string)
            .collect();
        let field = |name: &str| {
            lines[1..].iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let body = if field("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
            match read_chunked(&mut conn, &mut buf) {
                Some((data, _raw)) => data,
                None => return,
            }
        } else {
            let length = field("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if fill_until(&mut conn, &mut buf, |b| {
                (b.len() >= length).then_some(length)
            })
            .is_none()
            {
                return;
            }
            buf.drain(..length).collect()
        };
        log.lock().unwrap().push(Received { head: lines, body });
        for step in script(&head) {
            match step {
                Write(bytes) => {
                    if conn.write_all(bytes).is_err() {
                        return;
                    }
                }
                Sleep(ms) => thread::sleep(Duration::from_millis(ms)),
                Close => return,
                Reset => return reset(conn),
            }
        }
    }
}

/// Drops the connection with SO_LINGER 0, so the peer gets an RST.
fn reset(conn: TcpStream) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let _entered = rt.enter();
    conn.set_nonblocking(true).unwrap();
    let conn = tokio::net::TcpStream::from_std(conn).unwrap();
    conn.set_zero_linger().unwrap();
    drop(conn);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads into `buf` until `done` finds what it needs; `None` at EOF, error or timeout.
fn fill_until<T>(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut done: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(n) = done(buf) {
            return Some(n);
        }
        let mut chunk = [0u8; 16 * 1024];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// A chunked body at the start of `buf` (read more as needed): its data, and
/// its raw bytes through the trailers' blank line. `None` if it ends early.
fn read_chunked(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let line_end = fill_until(conn, buf, |b| find(&b[at..], b"\r\n").map(|i| at + i))?;
        let line = String::from_utf8_lossy(&buf[at..line_end]).into_owned();
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, up to and including the blank line.
            loop {
                let end = fill_until(conn, buf, |b| find(&b[at..], b"\r\n").map(|i| at + i))?;
                let blank = end == at;
                at = end + 2;
                if blank {
                    let raw = buf.drain(..at).collect();
                    return Some((data, raw));
                }
            }
        }
        fill_until(conn, buf, |b| (b.len() >= at + size + 2).then_some(()))?;
        data.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

// ------------------------------------------------------------------ client

/// How reading a response ended.
#[derive(PartialEq, Debug)]
enum Ending {
    Complete,
    /// The connection ended (EOF or reset) before the framing said it would.
    Cut,
    /// Nothing more arrived within the read timeout.
    Stalled,
}

/// What the client got for its request(s) and the connection's fate, as text
/// both proxies' answers are compared by.
fn client_side(proxy: SocketAddr, request: &[u8], requests: usize, head: bool) -> String {
    let mut conn = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).expect("connect");
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    conn.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut out = String::new();
    let mut ended = false;
    for n in 0..requests {
        loop {
            let Some(end) =
                fill_until(&mut conn, &mut buf, |b| find(b, b"\r\n\r\n").map(|i| i + 4))
            else {
                if buf.is_empty() {
                    out += &format!("response {n}: none (connection ended or stalled)\n");
                } else {
                    out += &format!("response {n}: partial head {}\n", shown(&buf));
                }
                ended = true;
                break;
            };
            let head_text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let mut lines = head_text.trim_end_matches("\r\n").split("\r\n");
            let status_line = lines.next().unwrap_or_default().to_string();
            let status: u16 = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            // Sorted multiset of (lowercase name, value), without Date.
            let mut fields: Vec<(String, String)> = lines
                .map(|l| match l.split_once(':') {
                    Some((n, v)) => (n.trim().to_ascii_lowercase(), v.trim().to_string()),
                    None => ("<no colon>".into(), l.to_string()),
                })
                .filter(|(n, _)| n != "date")
                .collect();
            fields.sort();
            out += &format!("response {n}: {status_line}\n");
            for (name, value) in &fields {
                out += &format!("  {name}: {value}\n");
            }
            let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            let (body, ending) = if (100..200).contains(&status) && status != 101 {
                continue; // interim: the final response follows
            } else if status == 101 {
                // A tunnel: whatever comes until the end.
                read_to_end(&mut conn, &mut buf)
            } else if head || status == 204 || status == 304 {
                (Vec::new(), Ending::Complete)
            } else if field("transfer-encoding").is_some_and(|te| {
                te.trim_end_matches([',', ' '])
                    .rsplit(',')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
            }) {
                // Compared de-chunked, with the trailer section: where a proxy
                // cuts chunks depends on its reads, and chunk extensions
                // belong to the framing.
                match read_chunked(&mut conn, &mut buf) {
                    Some((data, raw)) => {
                        let trailers = trailer_section(&raw);
                        out += &format!("  chunked, trailers: {}\n", shown(trailers));
                        (data, Ending::Complete)
                    }
                    None => (std::mem::take(&mut buf), Ending::Cut),
                }
            } else if let Some(length) = field("content-length").and_then(|v| {
                // `5, 5` counts as 5 if every element agrees.
                let mut parts = v.split(',').map(|p| p.trim().parse::<usize>().ok());
                let first = parts.next()??;
                parts.all(|p| p == Some(first)).then_some(first)
            }) {
                match fill_until(&mut conn, &mut buf, |b| (b.len() >= length).then_some(())) {
                    Some(()) => (buf.drain(..length).collect(), Ending::Complete),
                    None => (std::mem::take(&mut buf), Ending::Cut),
                }
            } else {
                read_to_end(&mut conn, &mut buf)
            };
            out += &format!(
                "  body ({} bytes, {ending:?}): {}\n",
                body.len(),
                shown(&body)
            );
            if ending != Ending::Complete {
                ended = true;
            }
            break;
        }
        if ended {
            break;
        }
    }
    if !buf.is_empty() {
        out += &format!("extra bytes: {}\n", shown(&buf));
    }
    out += &format!("connection: {}\n", fate(&mut conn, ended));
    out
}

/// The trailer fields of a raw chunked body (everything after its last-chunk line).
fn trailer_section(raw: &[u8]) -> &[u8] {
    let mut at = 0;
    while let Some(i) = find(&raw[at..], b"\r\n") {
        let line = &raw[at..at + i];
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        if size.trim_ascii().iter().all(|&b| b == b'0') {
            return &raw[at + i + 2..];
        }
        let size = usize::from_str_radix(&String::from_utf8_lossy(size.trim_ascii()), 16)
            .unwrap_or_default();
        at += i + 2 + size + 2;
    }
    &[]
}

/// Reads until EOF, reset or a read timeout.
fn read_to_end(conn: &mut TcpStream, buf: &mut Vec<u8>) -> (Vec<u8>, Ending) {
    let mut chunk = [0u8; 16 * 1024];
    let ending = loop {
        match conn.read(&mut chunk) {
            Ok(0) => break Ending::Complete,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Ending::Stalled
            }
            Err(_) => break Ending::Cut,
        }
    };
    (std::mem::take(buf), ending)
}

/// Whether the proxy keeps the connection: a second request (to a status
/// route, answered by the proxy itself) gets an answer, or the connection
/// ends. Sending is deterministic where waiting for an EOF is a race.
fn fate(conn: &mut TcpStream, ended: bool) -> &'static str {
    if ended {
        return "ended while reading the response";
    }
    let _ = conn.write_all(b"GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => return "closed",
            Ok(k) => {
                got.extend_from_slice(&chunk[..k]);
                if find(&got, b"\r\n\r\n").is_some() {
                    return if got.starts_with(b"HTTP/1.1 200") {
                        "kept alive (a second request is answered)"
                    } else {
                        "kept alive, but the second request got something else"
                    };
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return "open but a second request is not answered";
            }
            // A reset is a close too: the probe written to a socket the
            // proxy has closed may draw an RST before its FIN is read.
            Err(_) => return "closed",
        }
    }
}

/// Bytes as text with control characters escaped, shortened when long.
fn shown(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 200 {
        format!("{}... ({} bytes)", &text[..200], bytes.len())
    } else {
        format!("\"{text}\"")
    }
}

/// How `backend_side` lists header lines.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    AsReceived,
    Sorted,
    /// As received, without `X-Forwarded-*`.
    WithoutForwarded,
}

/// What the endpoint received, as text: request lines and header lines with
/// lowercase names and exact values, then each body.
fn backend_side(received: &[Received], order: Order) -> String {
    let mut out = format!("{} request(s)\n", received.len());
    for (i, r) in received.iter().enumerate() {
        out += &format!(
            "request {i}: {}\n",
            r.head.first().cloned().unwrap_or_default()
        );
        let mut fields: Vec<String> = r.head[1..]
            .iter()
            .map(|l| match l.split_once(':') {
                Some((n, v)) => format!("{}: {}", n.to_ascii_lowercase(), v.trim()),
                None => format!("<no colon> {l}"),
            })
            .filter(|f| order != Order::WithoutForwarded || !f.starts_with("x-forwarded-"))
            .collect();
        if order == Order::Sorted {
            fields.sort();
        }
        for f in fields {
            out += &format!("  {f}\n");
        }
        out += &format!("  body: {}\n", shown(&r.body));
    }
    out
}

// -------------------------------------------------------------------- test

fn route_file(cases: &[Case], endpoints: &[Option<Recording>]) -> String {
    let mut yaml = String::from(
        "routes:\n  - name: probe\n    match: {path: /probe}\n    backend: {status: 200}\n",
    );
    for (case, endpoint) in cases.iter().zip(endpoints) {
        let backend = match (&case.route, endpoint) {
            (Route::Scripted(_, ""), Some(e)) => {
                format!("{{endpoints: [\"http://{}\"]}}", e.addr)
            }
            (Route::Scripted(_, timeouts), Some(e)) => {
                format!(
                    "{{endpoints: [\"http://{}\"], timeouts: {timeouts}}}",
                    e.addr
                )
            }
            (Route::Status(status), _) => format!("{{status: {status}}}"),
            (Route::Refused, _) => format!(
                "{{endpoints: [\"http://127.0.0.1:{}\"], retries: 0}}",
                free_port()
            ),
            (Route::Unresolvable, _) => "{endpoints: [\"http://no-such-host.invalid:80\"]}".into(),
            _ => continue,
        };
        yaml += &format!(
            "  - name: {0}\n    match: {{pathPrefix: /{0}}}\n    backend: {backend}\n",
            case.name
        );
    }
    yaml
}

/// Where the two transports cannot agree byte for byte, the policy being the
/// same: the case, why, and what the client must see with the fast path on
/// and off (every line must appear; `a || b` is either, where the outcome
/// depends on how the endpoint's bytes are split across reads). Asserted, so
/// a change on either side shows.
const TRANSPORT_DIFFERENCES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "content_length_and_chunked",
        "pingora's HTTP/1 client removes Content-Length when Transfer-Encoding is present \
         before any hook sees the head (forwarding so is what RFC 9112 §6.3 asks of an \
         intermediary that forwards); the fast path sees both and refuses the ambiguity",
        &["HTTP/1.1 502 Bad Gateway", "connection: closed"],
        &["HTTP/1.1 200 OK", "transfer-encoding: chunked", "\"abc\""],
    ),
    (
        "cut_short",
        "pingora writes a response head before its body arrives; the fast path holds a \
         response of up to 16 KiB until it is whole, so a cut before that is a 502. When \
         the endpoint's close arrives with its head, pingora fails before it flushes the \
         head and the client sees the connection end with no response: neither claims a \
         whole one",
        &["HTTP/1.1 502 Bad Gateway", "connection: closed"],
        &[
            "HTTP/1.1 200 OK || response 0: none",
            "Cut || connection: ended",
        ],
    ),
    (
        "chunked_with_trailers",
        "pingora's HTTP/1 writer re-chunks bodies and drops trailer fields (pingora 0.9 \
         does not write HTTP/1 trailers); the fast path passes chunks through byte for byte",
        &[
            "trailers: \"X-Checksum: 42\\r\\n\\r\\n\"",
            "\"hello world\"",
        ],
        &["trailers: \"\\r\\n\"", "\"hello world\""],
    ),
    (
        "chunked_trailing_comma",
        "`Transfer-Encoding: chunked,` is chunked (RFC 9110 §5.6.1: empty list elements \
         are ignored); pingora's HTTP/1 client reads it as not chunked, so its transport \
         refuses the response rather than tell the client a framing it did not use",
        &["HTTP/1.1 200 OK", "\"hello\""],
        &["HTTP/1.1 502 Bad Gateway", "upstream error"],
    ),
];

#[test]
fn both_request_paths_treat_every_case_alike() {
    let cases = cases();
    let endpoints: Vec<Option<Recording>> = cases
        .iter()
        .map(|c| match c.route {
            Route::Scripted(script, _) => Some(Recording::start(script)),
            _ => None,
        })
        .collect();
    let routes = route_file(&cases, &endpoints);
    let on = Ringress::start_with_fast_path(&routes, &[], true);
    let off = Ringress::start_with_fast_path(&routes, &[], false);

    let mut differing = Vec::new();
    let mut order_only = Vec::new();
    for (case, endpoint) in cases.iter().zip(&endpoints) {
        let request = case.request.replace("{p}", &format!("/{}", case.name));
        let requests = request.matches(" HTTP/1.").count();
        let head = request.starts_with("HEAD ");
        let mut sides = Vec::new();
        for proxy in [&on, &off] {
            let client = client_side(proxy.listen, request.as_bytes(), requests, head);
            // The endpoint recorded each request before answering it, and the
            // client has had its answer: the log is complete.
            let received = endpoint.as_ref().map(Recording::take).unwrap_or_default();
            sides.push((client, received));
        }
        let [(client_on, recv_on), (client_off, recv_off)] = &sides[..] else {
            unreachable!()
        };
        let side = |recv, order| backend_side(recv, order);
        let (backend_on, backend_off) = (
            side(recv_on, Order::AsReceived),
            side(recv_off, Order::AsReceived),
        );
        let backend_same = backend_on == backend_off || {
            // Header order is compared as received first. Where it differs
            // only in where X-Forwarded-* lines sit (the two paths add them
            // at different places), the heads are compared as sorted
            // multisets instead, and the case is named in the output.
            let forwarded_only = side(recv_on, Order::WithoutForwarded)
                == side(recv_off, Order::WithoutForwarded)
                && side(recv_on, Order::Sorted) == side(recv_off, Order::Sorted);
            if forwarded_only {
                order_only.push(case.name);
            }
            forwarded_only
        };
        let client_same = client_on == client_off;
        if let Some((_, why, on_shows, off_shows)) =
            TRANSPORT_DIFFERENCES.iter().find(|k| k.0 == case.name)
        {
            let missing: Vec<String> = (on_shows.iter().map(|l| ("on", &client_on, l)))
                .chain(off_shows.iter().map(|l| ("off", &client_off, l)))
                .filter(|(_, side, line)| !line.split(" || ").any(|l| side.contains(l)))
                .map(|(flag, _, line)| format!("--fast-path {flag} lacks {line}"))
                .collect();
            if backend_same && missing.is_empty() {
                println!("known transport difference: {} ({why})", case.name);
                continue;
            }
            let report = format!(
                "=== {} (known difference: {why}): {missing:?}\n--- on:\n{client_on}--- off:\n{client_off}",
                case.name
            );
            differing.push((case.name, report));
            continue;
        }
        if client_same && backend_same {
            let first = client_on.lines().next().unwrap_or_default();
            let last = client_on.lines().last().unwrap_or_default();
            println!("same: {} ({first}; {last})", case.name);
            if std::env::var_os("DIFFERENTIAL_VERBOSE").is_some() {
                println!("{client_on}--- endpoint:\n{backend_on}");
            }
            continue;
        }
        let mut report = format!(
            "=== {} — request {}\n",
            case.name,
            shown(request.as_bytes())
        );
        if !client_same {
            report += &format!(
                "--- client, --fast-path on:\n{client_on}--- client, --fast-path off:\n{client_off}"
            );
        } else {
            report += &format!("--- client (same on both):\n{client_on}");
        }
        if !backend_same {
            report += &format!(
                "--- endpoint, --fast-path on:\n{backend_on}--- endpoint, --fast-path off:\n{backend_off}"
            );
        } else {
            report += &format!("--- endpoint (same on both):\n{backend_on}");
        }
        println!("DIFFERS: {}\n{report}", case.name);
        differing.push((case.name, report));
    }
    if !order_only.is_empty() {
        println!("endpoint header order differs (compared sorted) in: {order_only:?}");
    }
    assert!(
        differing.is_empty(),
        "{} of {} cases differ between --fast-path on and off: {:?}\n\n{}",
        differing.len(),
        cases.len(),
        differing.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        differing
            .iter()
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
