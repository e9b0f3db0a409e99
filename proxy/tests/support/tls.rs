//! TLS for tests: a throwaway PKI (rcgen) written as PEM files, and an
//! HTTPS/1.1 backend on tokio-rustls that answers every request with its name.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::temp_dir;

/// A CA and the directory its files go to.
pub struct Pki {
    pub dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate the CA issued, with its key, in memory and on disk.
pub struct Issued {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            dir: temp_dir(&format!("pki-{name}")),
            ca,
        };
        std::fs::write(pki.ca_pem(), pki.ca.pem()).unwrap();
        pki
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// A server (or, with `client`, a client) certificate for `names`
    /// (DNS names or IP addresses), written as `<file>.pem` and `<file>-key.pem`.
    pub fn issue(&self, file: &str, names: &[&str], client: bool) -> Issued {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![match client {
            true => ExtendedKeyUsagePurpose::ClientAuth,
            false => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let issued = Issued {
            cert_pem: self.dir.join(format!("{file}.pem")),
            key_pem: self.dir.join(format!("{file}-key.pem")),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        };
        std::fs::write(&issued.cert_pem, cert.pem()).unwrap();
        std::fs::write(&issued.key_pem, key.serialize_pem()).unwrap();
        issued
    }

    /// Writes `text` to a file in the PKI's directory (for broken files).
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server config for `cert`, asking for a client certificate the CA of
/// `client_ca` issued when given, offering `alpn`.
pub fn server_config(
    cert: &Issued,
    client_ca: Option<&Pki>,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.ca_der()).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// An HTTPS/1.1 backend on 127.0.0.1 answering `200` with its name to every
/// request (requests without bodies). Runs until the test process ends.
pub struct HttpsBackend {
    pub addr: SocketAddr,
    pub name: String,
    hits: Arc<AtomicUsize>,
}

impl HttpsBackend {
    pub fn start(name: &str, config: Arc<rustls::ServerConfig>) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let (body, counter) = (name.to_string(), Arc::clone(&hits));
        let addr = serve_tls(config, move |mut tls| {
            let (body, counter) = (body.clone(), Arc::clone(&counter));
            async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tls.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        HttpsBackend {
            addr,
            name: name.to_string(),
            hits,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Accepts TLS connections on a loopback port, on a thread of its own, for as
/// long as the test process runs; each handshake done goes to `on_conn` on a
/// task of its own. Returns the port's address.
fn serve_tls<F, Fut>(config: Arc<rustls::ServerConfig>, on_conn: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let on_conn = Arc::new(on_conn);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, on_conn) = (acceptor.clone(), Arc::clone(&on_conn));
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        on_conn(tls).await;
                    }
                });
            }
        });
    });
    addr
}

/// A path as YAML text (quoted: temp paths may hold characters YAML reads).
pub fn yaml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// What an [`H2sBackend`] saw of one request.
#[derive(Debug, Clone, Default)]
pub struct H2Seen {
    pub body: Vec<u8>,
    /// The request's trailers, when it had some.
    pub trailers: Option<http::HeaderMap>,
}

/// An HTTP/2-only backend over TLS (ALPN `h2`, on the `h2` crate): answers
/// every request `200` with its name as the body and a trailer
/// `x-served-by: NAME`, and keeps what it saw of each request.
pub struct H2sBackend {
    pub addr: SocketAddr,
    pub seen: Arc<std::sync::Mutex<Vec<H2Seen>>>,
}

impl H2sBackend {
    pub fn start(name: &str, cert: &Issued) -> Self {
        let config = server_config(cert, None, &[b"h2"]);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (name, log) = (name.to_string(), Arc::clone(&seen));
        let addr = serve_tls(config, move |tls| {
            let (name, log) = (name.clone(), Arc::clone(&log));
            async move {
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let (name, log) = (name.clone(), Arc::clone(&log));
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let mut seen = H2Seen::default();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            seen.body.extend_from_slice(&chunk);
                        }
                        seen.trailers = body.trailers().await.ok().flatten();
                        log.lock().unwrap().push(seen);
                        let head = http::Response::builder().status(200).body(()).unwrap();
                        let Ok(mut send) = respond.send_response(head, false) else {
                            return;
                        };
                        let _ = send.send_data(bytes::Bytes::from(name.clone()), false);
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("x-served-by", name.parse().unwrap());
                        let _ = send.send_trailers(trailers);
                    });
                }
            }
        });
        H2sBackend { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}
