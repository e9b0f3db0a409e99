//! TLS termination and HTTP/2 downstream, end to end: the real binary with a
//! TLS listener, certificates from a test CA (rcgen), real TLS clients
//! (rustls), an HTTP/2 client library (`h2`) over TLS (ALPN h2) and over plain
//! TCP with prior knowledge (h2c), and curl where the machine has it.
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use support::tls::Pki;
use support::{consistent_routes, eventually, free_addr, Backend, Ringress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A leaf certificate of the test CA: its PEM texts (for Secret updates) and
/// its DER (to recognise it in a handshake).
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn leaf(pki: &Pki, file: &str, names: &[&str]) -> Leaf {
    let issued = pki.issue(file, names, false);
    Leaf {
        cert_pem: std::fs::read_to_string(&issued.cert_pem).unwrap(),
        key_pem: std::fs::read_to_string(&issued.key_pem).unwrap(),
        der: issued.chain[0].clone(),
    }
}

fn roots(pki: &Pki) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    roots
}

/// A CA, an `a.test` certificate and the Secret directory holding it.
fn a_test_secret(tag: &str) -> (Pki, Leaf, SecretDir) {
    let pki = Pki::new(tag);
    let a = leaf(&pki, "a", &["a.test"]);
    let secret = SecretDir::new(&pki.dir, "a-secret", &a);
    (pki, a, secret)
}

/// A certificate/key pair laid out as a Kubernetes Secret volume does it:
/// `tls.crt` → `..data/tls.crt` → `..<version>/tls.crt`, updated by swapping
/// the `..data` symlink.
struct SecretDir {
    dir: PathBuf,
    version: AtomicUsize,
}

impl SecretDir {
    fn new(parent: &Path, name: &str, leaf: &Leaf) -> Self {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let me = Self {
            dir,
            version: AtomicUsize::new(0),
        };
        me.update(&leaf.cert_pem, &leaf.key_pem);
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), me.dir.join(file)).unwrap();
        }
        me
    }

    /// Writes a new version and swaps `..data` to it in one rename.
    fn update(&self, cert_pem: &str, key_pem: &str) {
        let v = self.version.fetch_add(1, Ordering::SeqCst);
        let version = format!("..v{v}");
        let vdir = self.dir.join(&version);
        std::fs::create_dir_all(&vdir).unwrap();
        std::fs::write(vdir.join("tls.crt"), cert_pem).unwrap();
        std::fs::write(vdir.join("tls.key"), key_pem).unwrap();
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }

    fn cert(&self) -> String {
        self.dir.join("tls.crt").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("tls.key").display().to_string()
    }
}

/// ringress with a TLS listener over `backends`' products route.
struct TlsProxy {
    proxy: Ringress,
    tls: SocketAddr,
}

fn start_tls(backends: &[&Backend], pairs: &[&SecretDir], extra: &[&str]) -> TlsProxy {
    let tls = free_addr();
    let tls_text = tls.to_string();
    let mut args = vec![
        "--tls-listen",
        tls_text.as_str(),
        "--reload-interval",
        "200ms",
    ];
    let files: Vec<(String, String)> = pairs.iter().map(|p| (p.cert(), p.key())).collect();
    for (cert, key) in &files {
        args.extend(["--tls-cert", cert, "--tls-key", key]);
    }
    args.extend(extra);
    let proxy = Ringress::start_with(&consistent_routes(backends, ""), &args);
    eventually(Duration::from_secs(10), "the TLS listener", || {
        std::net::TcpStream::connect(tls).ok()
    });
    TlsProxy { proxy, tls }
}

/// `ringress_tls_certificate_reloads_total{result}`.
fn reloads(p: &TlsProxy, result: &str) -> f64 {
    p.proxy.metric(
        "ringress_tls_certificate_reloads_total",
        &format!(r#"result="{result}""#),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Accepts any server certificate and records it: to see which one a
/// handshake got for a name the certificates do not cover.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that verifies against the test CA, with these ALPN protocols
/// and TLS versions.
fn verifying_client(
    pki: &Pki,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(pki))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// The certificate ringress presents for `sni`, whatever it is.
async fn presented(tls: SocketAddr, sni: &str) -> CertificateDer<'static> {
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        provider: provider(),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&recorder) as _)
        .with_no_client_auth();
    let tcp = TcpStream::connect(tls).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let _stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let seen = recorder.seen.lock().unwrap().take();
    seen.expect("a certificate")
}

/// One HTTP/1.1 GET over an open stream; returns (status, body).
async fn h1_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("content-length");
            if body.len() >= length {
                let status = head[9..12].parse().unwrap();
                return (status, body[..length].to_string());
            }
        }
    }
}

/// An HTTP/2 client connection over any stream.
async fn h2_client<S>(io: S) -> h2::client::SendRequest<Bytes>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::handshake(io).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// One HTTP/2 GET; returns (status, body, headers).
async fn h2_get(
    send: &mut h2::client::SendRequest<Bytes>,
    uri: &str,
) -> (u16, String, http::HeaderMap) {
    let request = http::Request::get(uri).body(()).unwrap();
    let mut ready = send.clone().ready().await.expect("h2 ready");
    let (response, _) = ready.send_request(request, true).expect("h2 request");
    let response = response.await.expect("h2 response");
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    (
        parts.status.as_u16(),
        String::from_utf8(bytes).unwrap(),
        parts.headers,
    )
}

async fn tls_stream(
    connector: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

fn three_pods() -> [Backend; 3] {
    [
        Backend::start("pod-a"),
        Backend::start("pod-b"),
        Backend::start("pod-c"),
    ]
}

#[test]
fn sni_picks_the_certificate_that_names_the_host_and_the_first_pair_is_the_default() {
    let pki = Pki::new("tls-sni");
    let a = leaf(&pki, "a", &["a.test", "*.a.test"]);
    let b = leaf(&pki, "b", &["b.test"]);
    let (a_dir, b_dir) = (
        SecretDir::new(&pki.dir, "a-secret", &a),
        SecretDir::new(&pki.dir, "b-secret", &b),
    );
    let pods = three_pods();
    let p = start_tls(&pods.iter().collect::<Vec<_>>(), &[&a_dir, &b_dir], &[]);
    runtime().block_on(async {
        assert_eq!(presented(p.tls, "a.test").await, a.der);
        assert_eq!(presented(p.tls, "b.test").await, b.der);
        assert_eq!(presented(p.tls, "shop.a.test").await, a.der, "wildcard");
        assert_eq!(presented(p.tls, "unknown.test").await, a.der, "default");
        // A verifying client, on TLS 1.2 and 1.3, for each name it covers.
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let connector = verifying_client(&pki, &[b"http/1.1"], &[version]);
            for host in ["a.test", "b.test", "x.a.test"] {
                let mut s = tls_stream(&connector, p.tls, host).await;
                let (_, conn) = s.get_ref();
                assert_eq!(conn.protocol_version(), Some(version.version));
                let (status, body) = h1_get(&mut s, host, "/products/7").await;
                assert_eq!(status, 200, "{host}");
                assert!(body.starts_with("pod-"), "{body}");
            }
        }
    });
}

#[test]
fn the_same_key_reaches_the_same_pod_over_http1_h2_and_h2c() {
    let (pki, _a, a_dir) = a_test_secret("tls-same-pod");
    let pods = three_pods();
    let p = start_tls(&pods.iter().collect::<Vec<_>>(), &[&a_dir], &[]);
    let port = p.tls.port();
    let mut owners = std::collections::HashSet::new();
    runtime().block_on(async {
        let h1_tls = verifying_client(&pki, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let h2_tls = verifying_client(&pki, &[b"h2", b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let mut tls1 = tls_stream(&h1_tls, p.tls, "a.test").await;
        assert_eq!(tls1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let tls2 = tls_stream(&h2_tls, p.tls, "a.test").await;
        assert_eq!(tls2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut h2 = h2_client(tls2).await;
        let mut h2c = h2_client(TcpStream::connect(p.proxy.listen).await.unwrap()).await;
        let mut plain = TcpStream::connect(p.proxy.listen).await.unwrap();
        for id in 0..24 {
            let path = format!("/products/{id}");
            let (status, over_h1) = h1_get(&mut plain, "shop.test", &path).await;
            assert_eq!(status, 200);
            let (status, over_tls) = h1_get(&mut tls1, "a.test", &path).await;
            assert_eq!(
                (status, &over_tls),
                (200, &over_h1),
                "HTTP/1.1 over TLS, {path}"
            );
            let uri = format!("https://a.test:{port}{path}");
            let (status, over_h2, _) = h2_get(&mut h2, &uri).await;
            assert_eq!((status, &over_h2), (200, &over_h1), "h2, {path}");
            let uri = format!("http://shop.test{path}");
            let (status, over_h2c, _) = h2_get(&mut h2c, &uri).await;
            assert_eq!((status, &over_h2c), (200, &over_h1), "h2c, {path}");
            owners.insert(over_h1);
        }
    });
    assert_eq!(owners.len(), 3, "keys spread over every pod: {owners:?}");
}

/// The issue's acceptance command, with the machine's curl (HTTP/2 by ALPN).
#[test]
fn curl_over_h2_reaches_the_same_pod_as_http1() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is needed for this test (.ci/run installs it)");
    }
    let (_pki, _a, a_dir) = a_test_secret("tls-curl");
    let pods = three_pods();
    let p = start_tls(&pods.iter().collect::<Vec<_>>(), &[&a_dir], &[]);
    let port = p.tls.port();
    for id in 1..=6 {
        let over_h1 = p.proxy.get(&format!("/products/{id}")).body;
        let out = std::process::Command::new("curl")
            .args(["-s", "--http2", "-k", "--resolve"])
            .arg(format!("a.test:{port}:127.0.0.1"))
            .arg(format!("https://a.test:{port}/products/{id}"))
            .args(["-w", "\n%{http_version} %{http_code}"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("{over_h1}\n2 200"), "key {id}");
        let out = std::process::Command::new("curl")
            .args(["-s", "--http2-prior-knowledge"])
            .arg(format!("http://{}/products/{id}", p.proxy.listen))
            .args(["-w", "\n%{http_version} %{http_code}"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("{over_h1}\n2 200"), "h2c, key {id}");
    }
}

#[test]
fn requests_over_tls_are_forwarded_as_https() {
    let (pki, _a, a_dir) = a_test_secret("tls-proto");
    let pod = Backend::start("pod-a");
    let p = start_tls(&[&pod], &[&a_dir], &[]);
    let port = p.tls.port();
    runtime().block_on(async {
        let h1_tls = verifying_client(&pki, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let mut s = tls_stream(&h1_tls, p.tls, "a.test").await;
        assert_eq!(h1_get(&mut s, "a.test", "/products/1").await.0, 200);
        assert_eq!(pod.header("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(pod.header("x-forwarded-host").as_deref(), Some("a.test"));
        let h2_tls = verifying_client(&pki, &[b"h2"], rustls::DEFAULT_VERSIONS);
        let mut h2 = h2_client(tls_stream(&h2_tls, p.tls, "a.test").await).await;
        let uri = format!("https://a.test:{port}/products/2");
        assert_eq!(h2_get(&mut h2, &uri).await.0, 200);
        assert_eq!(pod.header("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(
            pod.header("host"),
            Some(format!("a.test:{port}")),
            "Host from :authority"
        );
        let mut plain = TcpStream::connect(p.proxy.listen).await.unwrap();
        assert_eq!(h1_get(&mut plain, "shop.test", "/products/3").await.0, 200);
        assert_eq!(pod.header("x-forwarded-proto").as_deref(), Some("http"));
    });
}

/// A Secret update (the `..data` symlink swapped) reaches the next handshake;
/// connections open across it keep working, and no request fails.
#[test]
fn a_replaced_certificate_serves_the_next_handshake_and_drops_nothing() {
    let (pki, old, secret) = a_test_secret("tls-reload");
    let new = leaf(&pki, "new", &["a.test"]);
    let pods = three_pods();
    let p = start_tls(&pods.iter().collect::<Vec<_>>(), &[&secret], &[]);
    let port = p.tls.port();
    runtime().block_on(async {
        let h1_tls = verifying_client(&pki, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let h2_tls = verifying_client(&pki, &[b"h2"], rustls::DEFAULT_VERSIONS);
        let mut open_h1 = tls_stream(&h1_tls, p.tls, "a.test").await;
        let mut open_h2 = h2_client(tls_stream(&h2_tls, p.tls, "a.test").await).await;
        assert_eq!(presented(p.tls, "a.test").await, old.der);
        // New connections, one request each, all through the swap.
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let load = {
            let (stop, served, tls) = (Arc::clone(&stop), Arc::clone(&served), p.tls);
            let connector = h1_tls.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let mut s = tls_stream(&connector, tls, "a.test").await;
                    match h1_get(&mut s, "a.test", "/products/5").await {
                        (200, _) => served.fetch_add(1, Ordering::SeqCst),
                        other => {
                            failures.push(other);
                            0
                        }
                    };
                }
                failures
            })
        };
        secret.update(&new.cert_pem, &new.key_pem);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while presented(p.tls, "a.test").await != new.der {
            assert!(
                tokio::time::Instant::now() < deadline,
                "new certificate not served"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The connections opened before the swap still serve.
        assert_eq!(h1_get(&mut open_h1, "a.test", "/products/1").await.0, 200);
        let uri = format!("https://a.test:{port}/products/1");
        assert_eq!(h2_get(&mut open_h2, &uri).await.0, 200);
        let before = served.load(Ordering::SeqCst);
        while served.load(Ordering::SeqCst) < before + 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        let failures = load.await.unwrap();
        assert!(failures.is_empty(), "requests failed: {failures:?}");
    });
    assert_eq!(reloads(&p, "applied"), 1.0);
}

/// A changed pair that does not load keeps the one in force, counted and
/// logged; once fixed, it is applied.
#[test]
fn a_bad_new_pair_keeps_the_certificate_in_force() {
    let (pki, good, secret) = a_test_secret("tls-bad");
    let other = leaf(&pki, "other", &["a.test"]);
    let next = leaf(&pki, "next", &["a.test"]);
    let pod = Backend::start("pod-a");
    let p = start_tls(&[&pod], &[&secret], &[]);
    let rt = runtime();
    // A certificate with another certificate's key.
    secret.update(&next.cert_pem, &other.key_pem);
    eventually(Duration::from_secs(10), "the failure counted", || {
        (reloads(&p, "failed") == 1.0).then_some(())
    });
    assert_eq!(rt.block_on(presented(p.tls, "a.test")), good.der);
    // Not PEM at all.
    secret.update("garbage", "garbage");
    eventually(
        Duration::from_secs(10),
        "the second failure counted",
        || (reloads(&p, "failed") == 2.0).then_some(()),
    );
    assert_eq!(rt.block_on(presented(p.tls, "a.test")), good.der);
    secret.update(&next.cert_pem, &next.key_pem);
    eventually(Duration::from_secs(10), "the fixed pair applied", || {
        (rt.block_on(presented(p.tls, "a.test")) == next.der).then_some(())
    });
    assert_eq!(reloads(&p, "applied"), 1.0);
}

#[test]
fn a_pair_that_does_not_load_is_a_start_up_error_naming_the_file() {
    let pki = Pki::new("tls-start");
    let dir = pki.dir.clone();
    let a = leaf(&pki, "a", &["a.test"]);
    let b = leaf(&pki, "b", &["b.test"]);
    std::fs::write(dir.join("a.crt"), &a.cert_pem).unwrap();
    std::fs::write(dir.join("b.key"), &b.key_pem).unwrap();
    std::fs::write(dir.join("routes.yaml"), "routes: []\n").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::process::binary())
            .arg("--routes")
            .arg(dir.join("routes.yaml"))
            .args(["--listen", &free_addr().to_string()])
            .args(["--admin", &free_addr().to_string()])
            .args(["--tls-listen", &free_addr().to_string()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let a_crt = dir.join("a.crt").display().to_string();
    let b_key = dir.join("b.key").display().to_string();
    let missing = dir.join("missing.key").display().to_string();
    let (code, err) = run(&["--tls-cert", &a_crt, "--tls-key", &missing]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&missing), "{err}");
    let (code, err) = run(&["--tls-cert", &a_crt, "--tls-key", &b_key]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("is not the key of") && err.contains(&a_crt),
        "{err}"
    );
    let (code, err) = run(&["--tls-cert", &a_crt]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pairs"), "{err}");
}

/// Each HTTP/2 stream is a request in flight: streams of one connection for
/// one key fill its owner up to the load bound, then spill clockwise.
#[test]
fn each_h2_stream_counts_in_flight_for_bounded_load() {
    let pods = three_pods();
    let routes = consistent_routes(&pods.iter().collect::<Vec<_>>(), "");
    let proxy = Ringress::start(&routes);
    for pod in &pods {
        pod.hold();
    }
    let streams = 9;
    runtime().block_on(async {
        let h2c = h2_client(TcpStream::connect(proxy.listen).await.unwrap()).await;
        let mut waiting = Vec::new();
        for _ in 0..streams {
            let mut send = h2c.clone();
            waiting.push(tokio::spawn(async move {
                h2_get(&mut send, "http://shop.test/products/42?hold").await
            }));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pods.iter().map(Backend::held).sum::<usize>() < streams {
            assert!(
                tokio::time::Instant::now() < deadline,
                "streams not all held"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let held: Vec<usize> = pods.iter().map(Backend::held).collect();
        // The owner takes a stream while its in-flight count is within
        // (Σ in flight + 1) / 3 pods × 2: 6 when 8 are open, so at most 7 of 9.
        assert!(held.iter().all(|&n| n <= 7), "{held:?}");
        assert!(
            held.iter().filter(|&&n| n > 0).count() >= 2,
            "spilled: {held:?}"
        );
        for pod in &pods {
            pod.release();
        }
        for w in waiting {
            let (status, body, _) = w.await.unwrap();
            assert_eq!(status, 200);
            assert!(body.starts_with("pod-"));
        }
    });
}

/// Requests over every protocol are counted and logged alike, each line
/// saying how the client spoke.
#[test]
fn metrics_and_the_access_log_count_every_protocol() {
    let (pki, _a, a_dir) = a_test_secret("tls-log");
    let pod = Backend::start("pod-a");
    let p = start_tls(&[&pod], &[&a_dir], &["--access-log"]);
    let port = p.tls.port();
    runtime().block_on(async {
        let mut plain = TcpStream::connect(p.proxy.listen).await.unwrap();
        assert_eq!(h1_get(&mut plain, "shop.test", "/products/1").await.0, 200);
        let h1_tls = verifying_client(&pki, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let mut s = tls_stream(&h1_tls, p.tls, "a.test").await;
        assert_eq!(h1_get(&mut s, "a.test", "/products/2").await.0, 200);
        let h2_tls = verifying_client(&pki, &[b"h2"], rustls::DEFAULT_VERSIONS);
        let mut h2 = h2_client(tls_stream(&h2_tls, p.tls, "a.test").await).await;
        let uri = format!("https://a.test:{port}/products/3");
        assert_eq!(h2_get(&mut h2, &uri).await.0, 200);
        let mut h2c = h2_client(TcpStream::connect(p.proxy.listen).await.unwrap()).await;
        assert_eq!(h2_get(&mut h2c, "http://shop.test/products/4").await.0, 200);
        assert_eq!(h2_get(&mut h2c, "http://shop.test/nowhere").await.0, 404);
    });
    // Counted once the response is out: poll.
    eventually(Duration::from_secs(5), "four requests counted", || {
        let n = p
            .proxy
            .metric_sum("ringress_requests_total", &[r#"route="products""#]);
        (n == 4.0).then_some(())
    });
    let lines = eventually(Duration::from_secs(5), "five access-log lines", || {
        let out = p.proxy.stdout();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        (lines.len() == 5).then_some(lines)
    });
    let seen: Vec<(String, String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["protocol"].as_str().unwrap().to_string(),
                l["scheme"].as_str().unwrap().to_string(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = |path: &str, protocol: &str, scheme: &str, status| {
        (
            path.to_string(),
            protocol.to_string(),
            scheme.to_string(),
            status,
        )
    };
    for line in [
        want("/products/1", "HTTP/1.1", "http", 200),
        want("/products/2", "HTTP/1.1", "https", 200),
        want("/products/3", "HTTP/2", "https", 200),
        want("/products/4", "HTTP/2", "http", 200),
        want("/nowhere", "HTTP/2", "http", 404),
    ] {
        assert!(seen.contains(&line), "{line:?} not in {seen:?}");
    }
}

/// LIFO admission sees HTTP/2 streams as HTTP/1.1 requests: twenty streams
/// on one connection against five slots and seven waiters give the same
/// counts as twenty HTTP/1.1 clients (`lifo_e2e.rs`).
#[test]
fn lifo_admission_takes_h2_streams_like_requests() {
    let backend = Backend::start("slow");
    backend.set_delay(Duration::from_millis(1000));
    let routes = format!(
        "routes:\n  - name: slow\n    match: {{pathPrefix: /}}\n    filters:\n      - lifo: {{maxConcurrency: 5, maxQueueSize: 7, timeout: 100ms}}\n    backend:\n      algorithm: roundRobin\n      endpoints: [\"{}\"]\n      retries: 0\n",
        backend.url()
    );
    let proxy = Ringress::start(&routes);
    let answers = runtime().block_on(async {
        let h2c = h2_client(TcpStream::connect(proxy.listen).await.unwrap()).await;
        let streams: Vec<_> = (0..20)
            .map(|i| {
                let mut send = h2c.clone();
                tokio::spawn(async move {
                    let (status, body, _) =
                        h2_get(&mut send, &format!("http://shop.test/item?i={i}")).await;
                    (status, body)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for s in streams {
            answers.push(s.await.unwrap());
        }
        answers
    });
    let count = |status: u16, body: &str| {
        answers
            .iter()
            .filter(|(s, b)| *s == status && b == body)
            .count()
    };
    assert_eq!(
        (
            count(200, "slow"),
            count(503, "queue full\n"),
            count(503, "queue timeout\n")
        ),
        (5, 8, 7),
        "{answers:?}"
    );
    assert_eq!(backend.hits(), 5);
}

/// SIGTERM with HTTP/2 clients: a stream in flight finishes, the connection
/// is told to go away (no new streams), and the process exits 0.
#[test]
fn sigterm_lets_h2_streams_in_flight_finish_then_exits() {
    let (pki, _a, a_dir) = a_test_secret("tls-term");
    let pod = Backend::start("pod-a");
    let mut p = start_tls(&[&pod], &[&a_dir], &["--grace-period", "10s"]);
    let port = p.tls.port();
    pod.hold();
    let rt = runtime();
    let (mut h2c, mut h2) = rt.block_on(async {
        let h2c = h2_client(TcpStream::connect(p.proxy.listen).await.unwrap()).await;
        let h2_tls = verifying_client(&pki, &[b"h2"], rustls::DEFAULT_VERSIONS);
        let h2 = h2_client(tls_stream(&h2_tls, p.tls, "a.test").await).await;
        (h2c, h2)
    });
    let held = rt.block_on(async {
        let mut a = h2c.clone();
        let mut b = h2.clone();
        let uri = format!("https://a.test:{port}/products/2?hold");
        let first =
            tokio::spawn(async move { h2_get(&mut a, "http://shop.test/products/1?hold").await });
        let second = tokio::spawn(async move { h2_get(&mut b, &uri).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pod.held() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "streams not held");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (first, second)
    });
    p.proxy.signal("TERM");
    eventually(Duration::from_secs(5), "/readyz to turn 503", || {
        (p.proxy.admin_get("/readyz").status == 503).then_some(())
    });
    pod.release();
    rt.block_on(async {
        for stream in [held.0, held.1] {
            let (status, body, _) = stream.await.unwrap();
            assert_eq!((status, body.as_str()), (200, "pod-a"));
        }
        // Draining: a new stream is refused (GOAWAY) or the connection is gone.
        for send in [&mut h2c, &mut h2] {
            let refused = match send.clone().ready().await {
                Err(_) => true,
                Ok(mut ready) => {
                    let request = http::Request::get("http://shop.test/products/3")
                        .body(())
                        .unwrap();
                    match ready.send_request(request, true) {
                        Err(_) => true,
                        Ok((response, _)) => response.await.is_err(),
                    }
                }
            };
            assert!(refused, "a new stream after SIGTERM was served");
        }
    });
    assert_eq!(p.proxy.wait_exit(Duration::from_secs(15)), Some(0));
}

/// A request body over HTTP/2 (DATA frames, no Content-Length needed)
/// reaches the endpoint whole, as HTTP/1.1.
#[test]
fn h2_request_bodies_reach_the_endpoint_whole() {
    let pod = Backend::start("pod-a");
    let proxy = Ringress::start(&consistent_routes(&[&pod], ""));
    runtime().block_on(async {
        let h2c = h2_client(TcpStream::connect(proxy.listen).await.unwrap()).await;
        for (length, declared) in [(0usize, true), (100_000, false), (300_000, true)] {
            let mut request = http::Request::post("http://shop.test/products/9");
            if declared {
                request = request.header("content-length", length);
            }
            let mut ready = h2c.clone().ready().await.unwrap();
            let (response, mut body) = ready
                .send_request(request.body(()).unwrap(), false)
                .unwrap();
            let data = Bytes::from(vec![b'x'; length]);
            body.reserve_capacity(length);
            body.send_data(data, true).unwrap();
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200, "{length} bytes");
            let mut got = response.into_body();
            while let Some(chunk) = got.data().await {
                let chunk = chunk.unwrap();
                got.flow_control().release_capacity(chunk.len()).unwrap();
            }
        }
    });
    assert_eq!(*pod.seen.bodies.lock().unwrap(), vec![0, 100_000, 300_000]);
}

/// Reads HTTP/1.1 responses (Content-Length framed) from `stream` until `n`
/// arrived; returns each one's `x-path` header and body.
async fn read_responses<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    n: usize,
) -> Vec<(String, String)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let mut chunk = [0u8; 4096];
        let got = stream.read(&mut chunk).await.unwrap();
        assert!(got > 0, "closed after {} responses: {buf:?}", out.len());
        buf.extend_from_slice(&chunk[..got]);
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            let Some((head, rest)) = text.split_once("\r\n\r\n") else {
                break;
            };
            let field = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let length: usize = field("content-length").unwrap().parse().unwrap();
            if rest.len() < length {
                break;
            }
            out.push((
                field("x-path").unwrap_or_default(),
                rest[..length].to_string(),
            ));
            buf.drain(..head.len() + 4 + length);
        }
    }
    out
}

/// An idle TLS keep-alive connection holds no buffers of its own between
/// requests (the wait for the next one reads its first bytes and keeps them):
/// requests after idling, split across records, pipelined in one record, and
/// with a body (pingora's pipeline, its head and body written as one) are all
/// answered whole and in order; a client that closes while idle is closed.
#[test]
fn tls_keep_alive_connections_serve_after_idling_split_pipelined_and_with_bodies() {
    let (pki, _a, a_dir) = a_test_secret("tls-idle");
    let pod = Backend::start("pod-a");
    let p = start_tls(&[&pod], &[&a_dir], &[]);
    runtime().block_on(async {
        let h1_tls = verifying_client(&pki, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let mut s = tls_stream(&h1_tls, p.tls, "a.test").await;
        assert_eq!(h1_get(&mut s, "a.test", "/products/1").await.0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h1_get(&mut s, "a.test", "/products/2").await.0, 200);

        // The first bytes alone (fewer than the wait reads), then the rest.
        s.write_all(b"GE").await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(b"T /products/3 HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let got = read_responses(&mut s, 1).await;
        assert_eq!(got[0], ("/products/3".to_string(), "pod-a".to_string()));

        // Two requests in one record, then a POST with a body.
        s.write_all(
            b"GET /products/4 HTTP/1.1\r\nHost: a.test\r\n\r\n\
              GET /products/5 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        )
        .await
        .unwrap();
        let got = read_responses(&mut s, 2).await;
        assert_eq!(got[0].0, "/products/4");
        assert_eq!(got[1].0, "/products/5");
        s.write_all(b"POST /products/6 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let got = read_responses(&mut s, 1).await;
        assert_eq!(got[0], ("/products/6".to_string(), "pod-a".to_string()));
        assert_eq!(pod.seen.bodies.lock().unwrap().last(), Some(&5));
        assert_eq!(h1_get(&mut s, "a.test", "/products/7").await.0, 200);

        // Closed by the client while idle: the proxy closes its side.
        let (mut rd, mut wr) = tokio::io::split(s);
        wr.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut rest)).await;
        assert!(matches!(end, Ok(Ok(0)) | Ok(Err(_))), "{end:?} {rest:?}");
    });
    assert_eq!(pod.hits(), 7);
}

/// A client that opens a TLS connection and never finishes its handshake is
/// closed once the request header timeout passes, and does not hold up the
/// handshakes of others; failed handshakes are counted by reason; an address
/// already taken is a start-up error.
#[test]
fn a_stalled_handshake_is_closed_after_the_header_timeout() {
    let (pki, _a, a_dir) = a_test_secret("tls-stall");
    let pod = Backend::start("pod-a");
    let p = start_tls(&[&pod], &[&a_dir], &["--request-header-timeout", "1s"]);
    runtime().block_on(async {
        // Half a ClientHello record header, then nothing.
        let mut stalled = TcpStream::connect(p.tls).await.unwrap();
        stalled.write_all(&[0x16, 0x03]).await.unwrap();
        let h1_tls = verifying_client(&pki, &[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let mut s = tls_stream(&h1_tls, p.tls, "a.test").await;
        assert_eq!(h1_get(&mut s, "a.test", "/products/1").await.0, 200);
        let mut rest = Vec::new();
        let started = std::time::Instant::now();
        let end =
            tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest)).await;
        assert!(matches!(end, Ok(Ok(_)) | Ok(Err(_))), "closed: {end:?}");
        assert!(rest.is_empty(), "no answer to half a record: {rest:?}");
        assert!(started.elapsed() >= Duration::from_millis(500));
    });
    let failures = |reason: &str| {
        p.proxy.metric(
            "ringress_tls_handshake_failures_total",
            &format!(r#"reason="{reason}""#),
        )
    };
    // Counted as the socket closes: poll.
    eventually(
        Duration::from_secs(5),
        "the stalled handshake counted",
        || (failures("timeout") == 1.0).then_some(()),
    );
    // The readiness probe's connection closed without a handshake: an error.
    let before = eventually(Duration::from_secs(5), "the probe counted", || {
        let n = failures("error");
        (n >= 1.0).then_some(n)
    });
    runtime().block_on(async {
        // Not TLS at all.
        let mut plain = TcpStream::connect(p.tls).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut rest)).await;
    });
    eventually(Duration::from_secs(5), "a failed handshake counted", || {
        (failures("error") == before + 1.0).then_some(())
    });
    let routes = pki.dir.join("routes-none.yaml");
    std::fs::write(&routes, "routes: []\n").unwrap();
    let out = std::process::Command::new(support::process::binary())
        .arg("--routes")
        .arg(&routes)
        .args(["--listen", &free_addr().to_string()])
        .args(["--admin", &free_addr().to_string()])
        .args(["--tls-listen", &p.tls.to_string()])
        .args(["--tls-cert", &a_dir.cert(), "--tls-key", &a_dir.key()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--tls-listen") && err.contains(&p.tls.to_string()),
        "{err}"
    );
}
