//! Assembles the pingora server: proxy listener, admin listener, route-file
//! watcher and signal handling.
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use ringress_routes::RouteTable;

pub use crate::data::policy::screen::Rules;

use crate::control::certificates::{self, CertMetrics, CertPair, Certificates};
use crate::control::discovery::DiscoveryMetrics;
use crate::control::ingress::Ingress;
use crate::control::kubernetes::KubeBridge;
use crate::control::shutdown::DrainOnSignal;
use crate::data::lifo::LifoConfig;
use crate::data::transport::front::{Front, HeaderLimits};
use crate::data::transport::listener::{self, Listeners};
use crate::data::transport::pingora::Proxy;

pub struct Settings {
    pub routes: PathBuf,
    pub listen: String,
    pub admin: String,
    pub threads: usize,
    pub grace_period: Duration,
    /// How often the route file is polled for changes.
    pub reload_interval: Duration,
    pub access_log: bool,
    /// Overrides kube's inference (in-cluster service account, `KUBECONFIG`, `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// `--max-concurrency` with its queue: LIFO admission for the whole listener.
    pub listener_limit: Option<LifoConfig>,
    /// Idle, header-timeout and header-size limits of the proxy listener.
    pub header_limits: HeaderLimits,
    /// `--max-request-body` and `--strict-paths`.
    pub screen: Rules,
    /// `--fast-path`: plain GET/HEAD on ringress's own HTTP/1 loop.
    pub fast_path: bool,
    /// `--tls-listen` with its certificate/key pairs.
    pub tls: Option<TlsListener>,
}

/// The TLS listener: its address and certificate/key pairs (the first is the default).
pub struct TlsListener {
    pub listen: String,
    pub pairs: Vec<CertPair>,
}

/// TLS 1.2 and 1.3 with the certificate SNI picks, offering HTTP/2 and
/// HTTP/1.1 by ALPN.
fn tls_acceptor(
    certificates: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| StartError(format!("--tls-listen: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A start-up failure, reported to the operator before anything serves.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Loads and validates everything, then serves until a signal ends the process.
pub fn run(settings: Settings) -> Result<std::convert::Infallible, StartError> {
    let origin = settings.routes.display().to_string();
    let text = std::fs::read_to_string(&settings.routes)
        .map_err(|e| StartError(format!("{origin}: {e}")))?;
    let table = RouteTable::parse(&origin, &text).map_err(|e| StartError(e.to_string()))?;
    let ingress = Ingress::new(&origin, table, settings.access_log, settings.listener_limit)
        .map_err(|e| StartError(e.to_string()))?;

    // The listeners are bound here, so a busy port is a clear start-up error.
    let plain = listener::bind(&settings.listen)
        .map_err(|e| StartError(format!("--listen {}: {e}", settings.listen)))?;
    let tls_socket = match &settings.tls {
        Some(tls) => Some(
            listener::bind(&tls.listen)
                .map_err(|e| StartError(format!("--tls-listen {}: {e}", tls.listen)))?,
        ),
        None => None,
    };
    let certificates = match &settings.tls {
        Some(tls) => {
            let metrics = CertMetrics::new(ingress.metrics().registry())
                .map_err(|e| StartError(format!("TLS metrics: {e}")))?;
            Some(Certificates::load(tls.pairs.clone(), metrics).map_err(StartError)?)
        }
        None => None,
    };
    let admin = TcpListener::bind(&settings.admin)
        .map_err(|e| StartError(format!("--admin {}: {e}", settings.admin)))?;
    admin
        .set_nonblocking(true)
        .map_err(|e| StartError(format!("--admin {}: {e}", settings.admin)))?;

    let grace = settings.grace_period.as_secs().max(1);
    let work_stealing = std::env::var_os("RINGRESS_WORK_STEALING").is_some();
    let conf = ServerConf {
        threads: settings.threads.max(1),
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(1),
        // A current-thread runtime per worker: no cross-thread wake-ups per
        // request (measured: see BENCHMARKS.md).
        work_stealing,
        // pingora's pipeline keeps idle upstream connections in one LRU of
        // this size (default 128): below the concurrency of a busy proxy it
        // closes and reopens connections under steady load, as the fast
        // path's per-endpoint cap of 64 did (BENCHMARKS.md, issue 24).
        upstream_keepalive_pool_size: 1024,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy(
        &server.configuration,
        Proxy::new(Arc::clone(&ingress.data), settings.screen),
    );
    // HTTP/2 (ALPN h2, or h2c with prior knowledge on the plain listener; the
    // front door tells which): idle connections close after --idle-timeout,
    // and a header block is held to the HTTP/1 limit.
    let mut h2_server = HttpServerOptions::default();
    h2_server.h2_idle_timeout = Some(settings.header_limits.idle);
    proxy.server_options = Some(h2_server);
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_header_list_size(settings.header_limits.max_header as u32);
    proxy.h2_options = Some(h2);
    // pingora's HTTP/1 loop, plus header timeouts and limits (see `front`).
    let front = Arc::new(Front::new(
        proxy,
        Arc::clone(&ingress.data),
        settings.header_limits,
        settings.fast_path,
        settings.screen,
    ));
    let tls_listener = match (tls_socket, &certificates) {
        (Some(socket), Some(certificates)) => {
            Some((socket, tls_acceptor(Arc::clone(&certificates.store) as _)?))
        }
        _ => None,
    };
    server.add_service(Listeners::new(
        front,
        plain,
        tls_listener,
        settings.threads.max(1),
    ));
    if let Some(certificates) = certificates {
        server.add_service(background_service(
            "TLS certificates",
            CertWatcher {
                certificates: Mutex::new(Some(certificates)),
                interval: settings.reload_interval.max(Duration::from_secs(1)),
            },
        ));
    }
    server.add_service(background_service(
        "admin",
        AdminService {
            listener: Mutex::new(Some(admin)),
            ingress: Arc::clone(&ingress),
        },
    ));
    server.add_service(background_service(
        "route file",
        RouteWatcher {
            path: settings.routes.clone(),
            initial: text,
            interval: settings.reload_interval,
            ingress: Arc::clone(&ingress),
        },
    ));
    let bridge = KubeBridge::new(&ingress);
    ingress
        .set_service_watch(Arc::clone(&bridge) as Arc<dyn crate::control::ingress::ServiceWatch>);
    let discovery_metrics = DiscoveryMetrics::new(ingress.metrics().registry())
        .map_err(|e| StartError(format!("discovery metrics: {e}")))?;
    server.add_service(background_service(
        "kubernetes discovery",
        DiscoveryService {
            bridge,
            kubeconfig: settings.kubeconfig.clone(),
            metrics: Mutex::new(Some(discovery_metrics)),
        },
    ));
    log::info!(
        "ringress {} serving {} routes on {}, admin on {}",
        env!("CARGO_PKG_VERSION"),
        ingress.runtime().routes.len(),
        settings.listen,
        settings.admin
    );
    if let Some(tls) = &settings.tls {
        log::info!(
            "TLS (HTTP/1.1, h2) on {} with {} certificate(s)",
            tls.listen,
            tls.pairs.len()
        );
    }
    if let Some(tls) = &settings.tls {
        exit_if_the_listener_cannot_bind(&tls.listen);
    }
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnSignal { ingress }),
    });
    std::process::exit(0)
}

/// pingora binds the TLS listener in a service thread, and a failure
/// there (the port taken between the check above and that bind) panics
/// that thread only: the process would live on, ready by `/readyz`, with
/// nothing listening. A listener that cannot bind ends the process instead.
fn exit_if_the_listener_cannot_bind(listen: &str) {
    let listen = listen.to_string();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("Failed to build listeners") {
            eprintln!("ringress: --tls-listen {listen}: could not bind; exiting");
            std::process::exit(1);
        }
    }));
}

/// What a background service was built with, taken once when it starts.
fn take_once<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

struct AdminService {
    listener: Mutex<Option<TcpListener>>,
    ingress: Arc<Ingress>,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let listener = take_once(&self.listener);
        if let Some(listener) = listener {
            crate::admin::serve(listener, Arc::clone(&self.ingress)).await;
        }
    }
}

struct RouteWatcher {
    path: PathBuf,
    initial: String,
    interval: Duration,
    ingress: Arc<Ingress>,
}

#[async_trait]
impl BackgroundService for RouteWatcher {
    async fn start(&self, _shutdown: ShutdownWatch) {
        crate::control::route_file::watch_routes(
            self.path.clone(),
            self.initial.clone(),
            self.interval,
            Arc::clone(&self.ingress),
        )
        .await;
    }
}

struct CertWatcher {
    certificates: Mutex<Option<Certificates>>,
    interval: Duration,
}

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let certificates = take_once(&self.certificates);
        if let Some(certificates) = certificates {
            certificates::watch(certificates, self.interval).await;
        }
    }
}

struct DiscoveryService {
    bridge: Arc<KubeBridge>,
    kubeconfig: Option<PathBuf>,
    metrics: Mutex<Option<DiscoveryMetrics>>,
}

#[async_trait]
impl BackgroundService for DiscoveryService {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let metrics = take_once(&self.metrics);
        if let Some(metrics) = metrics {
            Arc::clone(&self.bridge)
                .run(self.kubeconfig.clone(), metrics)
                .await;
        }
    }
}
