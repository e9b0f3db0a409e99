//! WebSocket through ringress with a real client library (tokio-tungstenite):
//! routing by the ring, tunnelling both ways, in-flight accounting and
//! bounded load, the tunnel idle timeout, and graceful shutdown.
//!
//! Each pod is an echo server that prefixes every reply with its name, and
//! answers a plain GET with its name, so a test knows who served what.
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use support::tls::Pki;
use support::{eventually, free_addr, Ringress};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous: the suite runs on a loaded 2-core machine.
const WITHIN: Duration = Duration::from_secs(10);

/// A WebSocket echo pod on its own thread and runtime.
struct Pod {
    name: String,
    addr: SocketAddr,
    /// WebSockets open on this pod now.
    open: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl Pod {
    fn start(name: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind pod");
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let (name2, open2) = (name.to_string(), Arc::clone(&open));
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_pod(stream, name2.clone(), Arc::clone(&open2)));
            }
        });
        Self {
            name: name.to_string(),
            addr,
            open,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// One connection to a pod: a plain GET gets the pod's name; an upgrade
/// becomes an echo WebSocket whose replies start with `name:`. Commands (text
/// messages): `mute` stops replying, `ticks` sends 20 messages 100 ms apart,
/// `close` closes the WebSocket, `drop` drops the TCP connection.
async fn serve_pod(mut stream: TcpStream, name: String, open: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be consumed here.
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    // Field names in any case; the key's value as sent (base64 is case-sensitive).
    let field = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let upgrade = field("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = field("sec-websocket-key").filter(|_| upgrade) else {
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
            name.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        return;
    };
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if stream.write_all(reply.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    open.fetch_add(1, SeqCst);
    let mut muted = false;
    while let Some(Ok(msg)) = ws.next().await {
        let reply = match msg {
            Message::Text(t) if t.as_str() == "mute" => {
                muted = true;
                continue;
            }
            Message::Text(t) if t.as_str() == "ticks" => {
                for i in 0..20 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if ws
                        .send(Message::text(format!("{name}:tick {i}")))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                continue;
            }
            Message::Text(t) if t.as_str() == "close" => {
                let _ = ws.close(None).await;
                continue;
            }
            Message::Text(t) if t.as_str() == "drop" => break,
            Message::Text(t) => Message::text(format!("{name}:{t}")),
            Message::Binary(b) => {
                let mut out = format!("{name}:").into_bytes();
                out.extend_from_slice(&b);
                Message::binary(out)
            }
            _ => continue,
        };
        if !muted && ws.send(reply).await.is_err() {
            break;
        }
    }
    open.fetch_sub(1, SeqCst);
}

/// One `ws` route, `/ws/{key}`, keyed by the segment, over `pods`.
fn routes(pods: &[Pod], timeouts: &str) -> String {
    let endpoints: Vec<String> = pods
        .iter()
        .map(|p| format!("        - {}", p.url()))
        .collect();
    format!(
        r#"routes:
  - name: ws
    match:
      path: /ws/{{key}}
    filters:
      - consistentHashKey: "${{key}}"
    backend:
      algorithm: consistentHash
      timeouts: {timeouts}
      endpoints:
{}
"#,
        endpoints.join("\n")
    )
}

fn pods(n: usize) -> Vec<Pod> {
    (0..n).map(|i| Pod::start(&format!("pod{i}"))).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(proxy: &Ringress, key: &str) -> Client {
    let url = format!("ws://{}/ws/{key}", proxy.listen);
    let (ws, resp) = tokio::time::timeout(WITHIN, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake in time")
        .expect("handshake through ringress");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next data message, within `WITHIN`.
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    loop {
        let msg = tokio::time::timeout(WITHIN, ws.next())
            .await
            .expect("a message in time")
            .expect("the tunnel open")
            .expect("a message");
        if msg.is_text() || msg.is_binary() {
            return msg;
        }
    }
}

/// Sends `text` and returns the name of the pod that echoed it.
async fn who<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("send");
    let reply = next(ws).await.into_text().expect("text").to_string();
    let (pod, echoed) = reply.split_once(':').expect("pod:text");
    assert_eq!(echoed, text);
    pod.to_string()
}

/// 1 MiB each way, intact; then several messages in flight at once come back
/// in order (`pod` echoed them); then a clean close.
async fn large_and_burst_then_close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    pod: &str,
) {
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 253) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    let reply = next(ws).await.into_data();
    assert_eq!(reply.len(), pod.len() + 1 + big.len());
    assert!(reply[pod.len() + 1..] == big[..], "1 MiB echoed intact");
    for i in 0..50 {
        ws.feed(Message::text(format!("burst {i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..50 {
        let reply = next(ws).await.into_text().unwrap();
        assert_eq!(reply.as_str(), format!("{pod}:burst {i}"));
    }
    ws.close(None).await.unwrap();
    assert!(ends_within(ws, WITHIN).await);
}

/// Whether the tunnel ended (close, EOF or error) within `within`.
async fn ends_within<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn in_flight(proxy: &Ringress, pod: &Pod) -> f64 {
    proxy.metric(
        "ringress_endpoint_in_flight",
        &format!(r#"endpoint="{}""#, pod.url()),
    )
}

fn all_idle(proxy: &Ringress, pods: &[Pod]) {
    for pod in pods {
        eventually(WITHIN, "in-flight back to 0", || {
            (in_flight(proxy, pod) == 0.0).then_some(())
        });
    }
    eventually(WITHIN, "no active request", || {
        (proxy.metric("ringress_active_requests", r#"listener="proxy""#) == 0.0).then_some(())
    });
}

/// `"field":"value"` of a flat JSON object.
fn json_str(body: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    v[field].as_str().unwrap_or_default().to_string()
}

fn pod_at<'a>(pods: &'a [Pod], url: &str) -> &'a Pod {
    pods.iter().find(|p| p.url() == url).expect("a pod")
}

#[test]
fn echoes_both_ways_text_binary_and_a_large_message() {
    let pods = pods(3);
    let proxy = Ringress::start(&routes(&pods, "{connect: 1s, response: 5s}"));
    runtime().block_on(async {
        let mut ws = connect(&proxy, "alpha").await;
        let pod = who(&mut ws, "hello").await;
        for i in 0..20 {
            assert_eq!(who(&mut ws, &format!("text {i}")).await, pod);
            let data: Vec<u8> = (0..=255u8).cycle().skip(i).take(1000 + i).collect();
            ws.send(Message::binary(data.clone())).await.unwrap();
            let reply = next(&mut ws).await.into_data();
            let mut want = format!("{pod}:").into_bytes();
            want.extend_from_slice(&data);
            assert_eq!(reply, want);
        }
        large_and_burst_then_close(&mut ws, &pod).await;
    });
    // The tunnel is one request, answered 101; recorded once it is torn
    // down, a moment after the client saw the close: poll.
    eventually(Duration::from_secs(5), "the tunnel recorded as 1xx", || {
        let n = proxy.metric_sum(
            "ringress_requests_total",
            &[r#"route="ws""#, r#"status_class="1xx""#],
        );
        (n == 1.0).then_some(())
    });
    // Its lifetime goes to the tunnel histogram, not the request latencies.
    eventually(
        Duration::from_secs(5),
        "the tunnel's lifetime observed",
        || {
            let tunnels = proxy.metric("ringress_tunnel_duration_seconds_count", r#"route="ws""#);
            (tunnels == 1.0).then_some(())
        },
    );
    assert_eq!(
        proxy.metric("ringress_request_duration_seconds_count", r#"route="ws""#),
        0.0
    );
    all_idle(&proxy, &pods);
}

#[test]
fn a_key_s_websocket_reaches_the_pod_its_plain_requests_reach() {
    let pods = pods(4);
    let proxy = Ringress::start(&routes(&pods, "{connect: 1s, response: 5s}"));
    let mut seen = std::collections::HashSet::new();
    runtime().block_on(async {
        for k in 0..24 {
            let key = format!("user-{k}");
            let plain = proxy.get(&format!("/ws/{key}"));
            assert_eq!(plain.status, 200);
            let owner = json_str(
                &proxy.admin_get(&format!("/ring?route=ws&key={key}")).body,
                "owner",
            );
            let mut ws = connect(&proxy, &key).await;
            let tunnelled = who(&mut ws, "where").await;
            assert_eq!(tunnelled, plain.body, "key {key}");
            assert_eq!(tunnelled, pod_at(&pods, &owner).name, "key {key}");
            seen.insert(tunnelled);
            ws.close(None).await.unwrap();
            assert!(ends_within(&mut ws, WITHIN).await);
        }
    });
    assert!(seen.len() >= 3, "24 keys over 4 pods: {seen:?}");
    all_idle(&proxy, &pods);
}

#[test]
fn open_tunnels_count_in_flight_and_bounded_load_spills_them_clockwise() {
    let pods = pods(4);
    let proxy = Ringress::start(&routes(&pods, "{connect: 1s, response: 5s}"));
    let key = "hot";
    let ring = |proxy: &Ringress| proxy.admin_get(&format!("/ring?route=ws&key={key}")).body;
    let owner_url = json_str(&ring(&proxy), "owner");
    let owner = pod_at(&pods, &owner_url);
    runtime().block_on(async {
        // Two tunnels stay on the idle owner: 2 ≤ (1 + 1) / 4 × 2 after the first.
        let mut home = Vec::new();
        for i in 0..2 {
            let mut ws = connect(&proxy, key).await;
            assert_eq!(who(&mut ws, "hi").await, owner.name);
            home.push(ws);
            assert_eq!(in_flight(&proxy, owner), (i + 1) as f64);
        }
        let view = proxy.admin_get("/routes").body;
        assert!(view.contains("\"in_flight\":2"), "{view}");
        // With 2 in flight on the owner (bound (2 + 1) / 4 × 2 = 1.5), the
        // key spills to the next pod clockwise, as `/ring` says.
        let now = ring(&proxy);
        assert!(now.contains("\"spilled\":true"), "{now}");
        let next_url = json_str(&now, "endpoint");
        assert_ne!(next_url, owner_url);
        let next_pod = pod_at(&pods, &next_url);
        let spills = |p: &Ringress| p.metric("ringress_bounded_load_spills_total", r#"route="ws""#);
        let before = spills(&proxy);
        let mut spilled = connect(&proxy, key).await;
        assert_eq!(who(&mut spilled, "hi").await, next_pod.name);
        assert_eq!(spills(&proxy), before + 1.0);
        assert_eq!(in_flight(&proxy, next_pod), 1.0);
        assert_eq!(in_flight(&proxy, owner), 2.0);
        // A plain request for the key is placed under the same load: with 3
        // open (bound (3 + 1) / 4 × 2 = 2) the owner takes it again.
        let now = ring(&proxy);
        assert!(now.contains("\"spilled\":false"), "{now}");
        assert_eq!(proxy.get(&format!("/ws/{key}")).body, owner.name);
        assert_eq!(
            proxy.metric("ringress_tunnels_open", ""),
            3.0,
            "the plain request came and went; the tunnels stay"
        );

        // Every way a tunnel ends releases its count: a clean close by the
        // client, the client vanishing without a close, the pod dropping it.
        let mut clean = home.pop().unwrap();
        clean.close(None).await.unwrap();
        assert!(ends_within(&mut clean, WITHIN).await);
        eventually(WITHIN, "clean close released", || {
            (in_flight(&proxy, owner) == 1.0).then_some(())
        });
        drop(home.pop()); // TCP closed, no close frame
        eventually(WITHIN, "abrupt client close released", || {
            (in_flight(&proxy, owner) == 0.0).then_some(())
        });
        spilled.send(Message::text("drop")).await.unwrap();
        assert!(
            ends_within(&mut spilled, WITHIN).await,
            "the pod's drop reaches the client"
        );
        eventually(WITHIN, "backend drop released", || {
            (in_flight(&proxy, next_pod) == 0.0).then_some(())
        });
        // And a close the pod starts.
        let mut ws = connect(&proxy, key).await;
        assert_eq!(who(&mut ws, "hi").await, owner.name);
        ws.send(Message::text("close")).await.unwrap();
        assert!(ends_within(&mut ws, WITHIN).await);
    });
    all_idle(&proxy, &pods);
    for pod in &pods {
        eventually(WITHIN, "pods closed their side", || {
            (pod.open.load(SeqCst) == 0).then_some(())
        });
    }
    let view = proxy.admin_get("/routes").body;
    assert_eq!(view.matches("\"in_flight\":0").count(), 4, "{view}");
    assert_eq!(proxy.metric("ringress_tunnels_open", ""), 0.0);
}

#[test]
fn a_quiet_tunnel_outlives_the_response_timeout() {
    let pods = pods(2);
    // A read of the endpoint may take 500 ms; a tunnel may idle for 1 h.
    let proxy = Ringress::start(&routes(&pods, "{connect: 1s, response: 500ms}"));
    runtime().block_on(async {
        let mut ws = connect(&proxy, "quiet").await;
        let pod = who(&mut ws, "a").await;
        // Nothing either way for 4 × the response timeout.
        assert!(!ends_within(&mut ws, Duration::from_secs(2)).await);
        assert_eq!(who(&mut ws, "b").await, pod);
        // The pod silent while the client talks (the endpoint's reads idle).
        ws.send(Message::text("mute")).await.unwrap();
        for i in 0..20 {
            ws.send(Message::text(format!("{i}"))).await.unwrap();
            assert!(!ends_within(&mut ws, Duration::from_millis(100)).await);
        }
        // The client silent while the pod talks.
        let mut ws = connect(&proxy, "quiet").await;
        ws.send(Message::text("ticks")).await.unwrap();
        for i in 0..20 {
            let tick = next(&mut ws).await.into_text().unwrap();
            assert_eq!(tick.as_str(), format!("{pod}:tick {i}"));
        }
        assert_eq!(who(&mut ws, "c").await, pod);
    });
}

#[test]
fn an_idle_tunnel_closes_after_tunnel_idle_and_an_active_one_stays() {
    let pods = pods(2);
    let idle = Duration::from_millis(1500);
    let proxy = Ringress::start(&routes(
        &pods,
        "{connect: 1s, response: 500ms, tunnelIdle: 1500ms}",
    ));
    runtime().block_on(async {
        let mut quiet = connect(&proxy, "a").await;
        who(&mut quiet, "x").await;
        let quiet_since = Instant::now();
        let mut busy = connect(&proxy, "b").await;
        who(&mut busy, "x").await;
        // Messages every 100 ms for 3 × the idle timeout, one way then both.
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < idle * 3 {
            if i == 10 {
                busy.send(Message::text("mute")).await.unwrap();
            }
            busy.send(Message::text(format!("m{i}"))).await.unwrap();
            i += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        busy.send(Message::text("ticks")).await.unwrap();
        assert!(
            !ends_within(&mut busy, Duration::from_millis(1900)).await,
            "a tunnel with traffic one way only stays open"
        );
        assert!(ends_within(&mut quiet, WITHIN).await);
        let lived = quiet_since.elapsed();
        assert!(lived >= idle, "closed after {lived:?}, before tunnelIdle");
    });
    eventually(WITHIN, "the idle tunnel recorded", || {
        (proxy.metric_sum("ringress_requests_total", &[r#"status_class="1xx""#]) >= 1.0)
            .then_some(())
    });
}

#[test]
fn shutdown_keeps_a_tunnel_for_the_grace_period_then_closes_it() {
    let pods = pods(2);
    let mut proxy = Ringress::start_with(
        &routes(&pods, "{connect: 1s, response: 5s}"),
        &["--grace-period", "2s"],
    );
    let grace = Duration::from_secs(2);
    let rt = runtime();
    let mut ws = rt.block_on(connect(&proxy, "long"));
    let pod = rt.block_on(who(&mut ws, "before"));
    let term = Instant::now();
    proxy.signal("TERM");
    eventually(WITHIN, "new connections refused", || {
        std::net::TcpStream::connect(proxy.listen)
            .is_err()
            .then_some(())
    });
    // The tunnel works until it is closed; it must work through the grace period.
    let worked = rt.block_on(async {
        let mut last_ok = Instant::now();
        let deadline = Instant::now() + grace + WITHIN;
        while Instant::now() < deadline {
            if ws.send(Message::text("tick")).await.is_err() {
                break;
            }
            match tokio::time::timeout(WITHIN, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    assert_eq!(t.as_str(), format!("{pod}:tick"));
                    last_ok = Instant::now();
                }
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last_ok - term
    });
    assert!(
        worked >= grace - Duration::from_millis(500),
        "the tunnel stopped working {worked:?} after SIGTERM"
    );
    assert!(worked < grace + WITHIN, "the tunnel was never closed");
    assert_eq!(proxy.wait_exit(WITHIN), Some(0));
}

#[test]
fn an_upgrade_the_endpoint_never_answers_gets_504_after_the_response_timeout() {
    // Accepts, reads, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        use std::io::Read;
        // Reads until ringress lets go of the connection.
        let (mut conn, _) = silent.accept().unwrap();
        let mut sink = [0u8; 1024];
        while conn.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    let yaml = format!(
        "routes:\n  - name: ws\n    match: {{path: \"/ws/{{key}}\"}}\n    backend:\n      \
         timeouts: {{connect: 1s, response: 500ms}}\n      retries: 0\n      \
         endpoints: [http://{addr}]\n"
    );
    let proxy = Ringress::start(&yaml);
    let started = Instant::now();
    let err = runtime().block_on(async {
        let url = format!("ws://{}/ws/k", proxy.listen);
        tokio::time::timeout(WITHIN, tokio_tungstenite::connect_async(url))
            .await
            .expect("an answer in time")
            .expect_err("no upgrade")
    });
    let took = started.elapsed();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 504),
        other => panic!("expected a 504, got {other:?}"),
    }
    // connect + response, with slack for a loaded machine.
    assert!(took >= Duration::from_millis(500), "{took:?}");
    eventually(WITHIN, "the 504 recorded", || {
        (proxy.metric_sum("ringress_requests_total", &[r#"status_class="5xx""#]) == 1.0)
            .then_some(())
    });
    assert_eq!(proxy.metric("ringress_tunnels_open", ""), 0.0);
    drop(proxy);
    held.join().unwrap();
}

/// Over the TLS listener (wss): the upgrade, messages both ways, a large one
/// and a burst, through the same tunnel as on the plain listener.
#[test]
fn echoes_over_tls() {
    let pods = pods(2);
    let pki = Pki::new("ws-tls");
    let cert = pki.issue("ws", &["ws.test"], false);
    let tls = free_addr().to_string();
    let (crt, key) = (
        cert.cert_pem.display().to_string(),
        cert.key_pem.display().to_string(),
    );
    let proxy = Ringress::start_with(
        &routes(&pods, "{connect: 1s, response: 5s}"),
        &["--tls-listen", &tls, "--tls-cert", &crt, "--tls-key", &key],
    );
    eventually(WITHIN, "the TLS listener", || {
        std::net::TcpStream::connect(&tls).ok()
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    runtime().block_on(async {
        let tcp = TcpStream::connect(&tls).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("ws.test").unwrap();
        let stream = connector.connect(name, tcp).await.expect("TLS handshake");
        let (mut ws, resp) = tokio::time::timeout(
            WITHIN,
            tokio_tungstenite::client_async("wss://ws.test/ws/alpha", stream),
        )
        .await
        .expect("handshake in time")
        .expect("handshake through ringress");
        assert_eq!(resp.status(), 101);
        let pod = who(&mut ws, "hello").await;
        assert!(pods.iter().any(|p| p.name == pod));
        for i in 0..10 {
            assert_eq!(who(&mut ws, &format!("text {i}")).await, pod);
        }
        large_and_burst_then_close(&mut ws, &pod).await;
    });
    all_idle(&proxy, &pods);
}
