//! ringress in one command:
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```
//!
//! Starts three demo "product pods" in this process, writes a route file
//! pointing at them, runs the real `ringress` binary in front, sends a skewed
//! (Zipf) load through it and shows what consistent hashing with bounded load
//! did: which pod served which products, each pod's cache hit ratio against
//! random spreading, what bounded load spilled, and the latency the client saw.
//! Then the proxy keeps serving for you to try with curl; Ctrl-C stops it all.
//! Needs no cluster and nothing beyond cargo.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::error::Error;
use std::fs::File;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ringress_ring::{hash_key, HashRing, Registry, SplitMix64};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const PODS: [&str; 3] = ["pod-a", "pod-b", "pod-c"];
/// The catalogue: product IDs 1..=PRODUCTS, product 1 the most popular.
const PRODUCTS: u32 = 10_000;
/// Zipf exponent of product popularity: product k is asked for ∝ 1/k^s.
const ZIPF_S: f64 = 1.0;
/// Products each pod keeps in memory (LRU): 5% of the catalogue, so no pod
/// can hold the hot set alone.
const CACHE_CAPACITY: usize = 500;
/// A pod's service time: a cached product is fast, a miss goes to "the database".
const HIT_TIME: Duration = Duration::from_millis(2);
const MISS_TIME: Duration = Duration::from_millis(5);
const REQUESTS: usize = 20_000;
const CONNECTIONS: usize = 16;
/// ringress's default bound, written out in the route file below.
const BALANCE_FACTOR: f64 = ringress_ring::DEFAULT_BALANCE_FACTOR;

#[tokio::main]
async fn main() -> ExitCode {
    // Dropping `run` on a signal drops the proxy guard, which kills the child.
    tokio::select! {
        result = run() => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("quickstart: {e}");
                ExitCode::FAILURE
            }
        },
        () = stop_signal() => {
            eprintln!("\nstopping the proxy and the pods");
            ExitCode::SUCCESS
        }
    }
}

async fn run() -> Result<()> {
    let binary = proxy_binary()?;
    let mut pods = Vec::new();
    for name in PODS {
        pods.push(Pod::start(name).await?);
    }
    let workdir = Workdir::create()?;
    let routes = workdir.path().join("routes.yaml");
    let urls: Vec<&str> = pods.iter().map(|p| p.url.as_str()).collect();
    std::fs::write(&routes, route_file(&urls))?;
    let mut proxy = ProxyProcess::spawn(&binary, &routes, &workdir.path().join("ringress.log"))?;
    proxy.wait_ready().await?;

    println!("ringress is up ({}):", binary.display());
    println!(
        "  proxy  http://{}    admin  http://{}",
        proxy.listen, proxy.admin
    );
    for pod in &pods {
        println!("  {}  {}", pod.name, pod.url);
    }
    println!("  routes {}", routes.display());
    println!();

    let products = zipf_products(REQUESTS, 42);
    println!(
        "Sending {REQUESTS} GET /products/{{id}} over {CONNECTIONS} keep-alive connections \
         ({PRODUCTS} products, Zipf s={ZIPF_S}: product 1 alone is {:.1}% of requests)...",
        share(products.iter().filter(|&&p| p == 1).count(), products.len())
    );
    let load = send_load(proxy.listen, &products).await?;
    let metrics = Conn::open(proxy.admin).await?.get("/metrics").await?.body;

    report(&pods, &products, &load, &metrics);
    try_next(&binary, &proxy, &routes, &urls);
    proxy.watch().await
}

// ---------------------------------------------------------------------------
// The demo product pods.

/// A small LRU cache of product IDs: what a pod keeps in memory.
struct Cache {
    capacity: usize,
    tick: u64,
    last_use: HashMap<u32, u64>,
    by_age: BTreeMap<u64, u32>,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Cache {
            capacity,
            tick: 0,
            last_use: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    /// True on a hit; a miss caches the product, evicting the least recently used.
    fn get_or_insert(&mut self, product: u32) -> bool {
        self.tick += 1;
        let hit = match self.last_use.insert(product, self.tick) {
            Some(previous) => self.by_age.remove(&previous).is_some(),
            None => false,
        };
        self.by_age.insert(self.tick, product);
        if self.last_use.len() > self.capacity {
            if let Some((_, oldest)) = self.by_age.pop_first() {
                self.last_use.remove(&oldest);
            }
        }
        hit
    }
}

/// One demo pod: an HTTP server on a free loopback port with its own cache.
struct Pod {
    name: &'static str,
    /// `http://127.0.0.1:PORT`, as the route file and the ring name it.
    url: String,
    cache: Mutex<Cache>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Pod {
    async fn start(name: &'static str) -> Result<Arc<Pod>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let pod = Arc::new(Pod {
            name,
            url: format!("http://{}", listener.local_addr()?),
            cache: Mutex::new(Cache::new(CACHE_CAPACITY)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        });
        tokio::spawn(Arc::clone(&pod).serve(listener));
        Ok(pod)
    }

    async fn serve(self: Arc<Self>, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            let pod = Arc::clone(&self);
            let service = service_fn(move |req| Arc::clone(&pod).handle(req));
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    }

    /// `GET /products/{id}` answers a product; any other request says who answered.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let product = req
            .uri()
            .path()
            .strip_prefix("/products/")
            .map(str::parse::<u32>);
        let (status, body) = match product {
            Some(Ok(id)) => (StatusCode::OK, self.product(id).await),
            Some(Err(_)) => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such product", "pod": self.name}),
            ),
            None => (
                StatusCode::OK,
                serde_json::json!({"pod": self.name, "method": req.method().as_str(), "path": req.uri().path()}),
            ),
        };
        let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert("x-pod", http::HeaderValue::from_static(self.name));
        Ok(resp)
    }

    async fn product(&self, id: u32) -> serde_json::Value {
        let hit = self.cache.lock().unwrap().get_or_insert(id);
        let (counter, service_time) = if hit {
            (&self.hits, HIT_TIME)
        } else {
            (&self.misses, MISS_TIME)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(service_time).await;
        serde_json::json!({
            "id": id,
            "name": format!("Product {id}"),
            "price_cents": 199 + id % 9_800,
            "pod": self.name,
            "cache": if hit { "hit" } else { "miss" },
        })
    }

    fn hit_ratio(&self) -> f64 {
        let hits = self.hits.load(Ordering::Relaxed);
        ratio(hits, hits + self.misses.load(Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------
// The route file and the proxy process.

/// The route file, shaped like examples/routes.yaml, pointing at the pods.
fn route_file(urls: &[&str]) -> String {
    let endpoints = format!("[{}]", urls.join(", "));
    format!(
        r#"# Written by the quickstart example. Edit it while ringress runs: a good
# version is in force within 500 ms, a bad one is logged and the old one stays.
routes:
  # One product per request: hash the product ID so each pod's cache holds its
  # slice of the catalogue; bounded load spills a hot product past {BALANCE_FACTOR}x average.
  - name: products
    match:
      path: /products/{{id}}
      method: [GET, HEAD]
    filters:
      - consistentHashKey: "${{id}}"
      - consistentHashBalanceFactor: {BALANCE_FACTOR:.1}
      - setResponseHeader: {{name: X-Served-By, value: ringress}}
    backend:
      algorithm: consistentHash
      endpoints: {endpoints}
      timeouts: {{connect: 1s, response: 10s}}
      retries: 1

  # Batch lookups touch many products: affinity buys nothing, load does.
  - name: batch
    match:
      pathPrefix: /batch
      method: POST
    backend:
      algorithm: powerOfRandomNChoices
      endpoints: {endpoints}

  # Search is expensive: at most 50 run at once, newest waiters first.
  - name: search
    match:
      path: /search
    filters:
      - lifo: {{maxConcurrency: 50, maxQueueSize: 100, timeout: 2s}}
    backend:
      algorithm: roundRobin
      endpoints: {endpoints}

  # Answered by the proxy itself.
  - name: health
    match:
      path: /health
    backend:
      status: 200
"#
    )
}

/// The `ringress` binary next to this example (`target/<profile>/ringress`),
/// or `$RINGRESS_BIN`. `cargo run --example` builds the library but not the
/// package's binaries, so when run by cargo this builds the binary first (a
/// no-op when it is up to date), and the proxy always matches the source.
///
/// That build must resolve features exactly as the `cargo run` that started
/// us did, or cargo compiles the dependencies a second time: run from the
/// repository root, `cargo run` resolves for the whole workspace including
/// dev-dependencies (an example needs them), and the benches' criterion turns
/// on features (bitflags/std, either/use_std, zerocopy/derive, ...) that a
/// plain `cargo build -p ringress --bin ringress` leaves off, which changes
/// pingora's, kube's and ringress's fingerprints. So the build runs in the
/// same directory, selects packages the same way (no `-p`) and names this
/// example too, which brings the dev-dependencies into the resolution.
///
/// It must also see the environment that `cargo run` saw, not ours: cargo
/// runs us with the package's `CARGO_PKG_*`, `CARGO_MANIFEST_*` (and for
/// some packages `OUT_DIR`) set, and ring's build script reruns when any of
/// those changes, which rebuilds ring, rustls, kube and ringress.
fn proxy_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("RINGRESS_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?;
    let binary = profile_dir.join(format!("ringress{}", std::env::consts::EXE_SUFFIX));
    let profile = profile_dir.file_name().and_then(|p| p.to_str());
    if let (Some(cargo), Some(target_dir), Some(profile)) =
        (std::env::var_os("CARGO"), profile_dir.parent(), profile)
    {
        // Cargo names the `dev` profile's directory `debug`.
        let profile = if profile == "debug" { "dev" } else { profile };
        // `cargo run` leaves us in the directory it was run from; outside the
        // workspace (`--manifest-path`), build from its root.
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace root")?;
        let cwd = std::env::current_dir()?;
        let dir = if cwd.starts_with(workspace) {
            cwd
        } else {
            workspace.to_path_buf()
        };
        eprintln!(
            "Building the proxy: cargo build --bin ringress --example quickstart --profile {profile}"
        );
        let mut build = Command::new(cargo);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "OUT_DIR",
                ]
                .contains(&key.as_ref())
            {
                build.env_remove(key.as_ref());
            }
        }
        let status = build
            .args([
                "build",
                "--bin",
                "ringress",
                "--example",
                "quickstart",
                "--profile",
                profile,
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .status()?;
        if !status.success() {
            return Err("building the ringress binary failed (see above)".into());
        }
    }
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p ringress`",
            binary.display()
        )
        .into())
    }
}

/// The running `ringress`; killed when dropped, so it never outlives the example.
struct ProxyProcess {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl ProxyProcess {
    fn spawn(binary: &Path, routes: &Path, log: &Path) -> Result<Self> {
        let (listen, admin) = (free_port()?, free_port()?);
        let log_file = File::create(log)?;
        let child = Command::new(binary)
            .arg("--routes")
            .arg(routes)
            .args([
                "--listen",
                &listen.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()?;
        Ok(ProxyProcess {
            child,
            listen,
            admin,
            log: log.to_owned(),
        })
    }

    /// Polls the admin `/readyz` until it answers 200.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            self.check_alive()?;
            if let Ok(mut conn) = Conn::open(self.admin).await {
                if conn.get("/readyz").await.is_ok_and(|r| r.status == 200) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "ringress was not ready within 15 s; see {}",
            self.log.display()
        )
        .into())
    }

    /// Returns only if the proxy exits by itself.
    async fn watch(&mut self) -> Result<()> {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.check_alive()?;
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                Err(format!("ringress exited ({status}):\n{log}").into())
            }
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh temporary directory for the route file and the proxy log,
/// removed on exit.
struct Workdir(PathBuf);

impl Workdir {
    fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("ringress-quickstart-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Workdir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback address nobody listens on right now.
fn free_port() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one keep-alive connection, GET only,
// Content-Length bodies (what the proxy and the pods send).

struct Conn {
    stream: BufReader<TcpStream>,
}

struct Reply {
    status: u16,
    pod: Option<String>,
    body: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    async fn get(&mut self, path: &str) -> Result<Reply> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: quickstart\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let (mut length, mut pod) = (None, None);
        loop {
            let line = self.line().await?;
            let Some((name, value)) = line.split_once(':') else {
                break; // the blank line ending the headers
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "x-pod" => pod = Some(value.to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length.ok_or("response without Content-Length")?];
        self.stream.read_exact(&mut body).await?;
        Ok(Reply {
            status,
            pod,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err("connection closed".into());
        }
        Ok(line.trim_end().to_owned())
    }
}

// ---------------------------------------------------------------------------
// The load.

/// `count` product IDs drawn from a Zipf law over the catalogue, reproducibly.
fn zipf_products(count: usize, seed: u64) -> Vec<u32> {
    let cdf: Vec<f64> = (1..=PRODUCTS)
        .scan(0.0, |sum, k| {
            *sum += 1.0 / f64::from(k).powf(ZIPF_S);
            Some(*sum)
        })
        .collect();
    let total = cdf[cdf.len() - 1];
    let mut rng = SplitMix64(seed);
    (0..count)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c < u) as u32 + 1
        })
        .collect()
}

/// What the client saw for one request.
struct Sample {
    product: u32,
    /// Index into `PODS`; `None` when the proxy answered an error.
    pod: Option<usize>,
    latency: Duration,
}

struct Load {
    samples: Vec<Sample>,
    elapsed: Duration,
}

/// Sends `products` as GETs over `CONNECTIONS` keep-alive connections, with a
/// progress bar on stderr.
async fn send_load(proxy: SocketAddr, products: &[u32]) -> Result<Load> {
    let products: Arc<[u32]> = products.into();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let progress = tokio::spawn(show_progress(Arc::clone(&next), products.len(), started));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (products, next) = (Arc::clone(&products), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::open(proxy).await?;
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&product) = products.get(i) else {
                    return Ok::<_, Box<dyn Error + Send + Sync>>(samples);
                };
                let sent = Instant::now();
                let reply = conn.get(&format!("/products/{product}")).await?;
                let pod = reply
                    .pod
                    .as_deref()
                    .and_then(|p| PODS.iter().position(|&n| n == p));
                samples.push(Sample {
                    product,
                    pod: pod.filter(|_| reply.status == 200),
                    latency: sent.elapsed(),
                });
            }
        }));
    }
    let mut samples = Vec::with_capacity(products.len());
    for worker in workers {
        samples.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    progress.abort();
    draw_progress(products.len(), products.len(), elapsed);
    eprintln!();
    Ok(Load { samples, elapsed })
}

async fn show_progress(next: Arc<AtomicUsize>, total: usize, started: Instant) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    loop {
        draw_progress(
            next.load(Ordering::Relaxed).min(total),
            total,
            started.elapsed(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn draw_progress(done: usize, total: usize, elapsed: Duration) {
    const WIDTH: usize = 40;
    let filled = done * WIDTH / total;
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    eprint!(
        "\r  [{}{}] {done:>6}/{total}  {rate:>6.0} req/s",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    );
}

// ---------------------------------------------------------------------------
// The report.

fn report(pods: &[Arc<Pod>], products: &[u32], load: &Load, metrics: &str) {
    // The ring exactly as the proxy builds it: same addresses, same key.
    let registry = Registry::new();
    let ring = HashRing::new(pods.iter().map(|p| registry.endpoint(&p.url)).collect());
    let owner = |product: u32| {
        ring.owner(hash_key(product.to_string().as_bytes()))
            .unwrap_or(0)
    };

    let served: Vec<&Sample> = load.samples.iter().filter(|s| s.pod.is_some()).collect();
    let errors = load.samples.len() - served.len();
    let distinct: HashSet<u32> = products.iter().copied().collect();
    println!(
        "\n{} requests in {:.1} s ({:.0} req/s){}; {} distinct products asked for.\n",
        load.samples.len(),
        load.elapsed.as_secs_f64(),
        load.samples.len() as f64 / load.elapsed.as_secs_f64(),
        if errors > 0 {
            format!(", {errors} errors")
        } else {
            String::new()
        },
        distinct.len()
    );

    println!(
        "pod    owns (ring)  requests        products seen  cache hits  took spills  spilled away"
    );
    let mut seen_total = 0;
    for (i, pod) in pods.iter().enumerate() {
        let owned = (1..=PRODUCTS).filter(|&p| owner(p) == i).count();
        let mine: Vec<&&Sample> = served.iter().filter(|s| s.pod == Some(i)).collect();
        let seen: HashSet<u32> = mine.iter().map(|s| s.product).collect();
        let took = mine.iter().filter(|s| owner(s.product) != i).count();
        let gave = served
            .iter()
            .filter(|s| owner(s.product) == i && s.pod != Some(i))
            .count();
        seen_total += seen.len();
        println!(
            "{:<6} {:>10.1}%  {:>6} ({:>4.1}%)  {:>6} ({:>4.1}%)  {:>9.1}%  {:>11}  {:>12}",
            pod.name,
            share(owned, PRODUCTS as usize),
            mine.len(),
            share(mine.len(), served.len()),
            seen.len(),
            share(seen.len(), distinct.len()),
            100.0 * pod.hit_ratio(),
            took,
            gave
        );
    }
    println!("  owns: share of the {PRODUCTS} product IDs whose ring position belongs to the pod");
    println!("  took spills / spilled away: requests served for another pod's key / its keys served elsewhere");

    let hits: u64 = pods.iter().map(|p| p.hits.load(Ordering::Relaxed)).sum();
    let lookups = hits
        + pods
            .iter()
            .map(|p| p.misses.load(Ordering::Relaxed))
            .sum::<u64>();
    let (random_hits, random_seen) = random_spreading(products);
    println!(
        "\nCache hit ratio: {:.1}% through ringress; {:.1}% if the same requests were spread at \
         random\nover the same caches (simulated), where each pod would see ~{} products instead of ~{}.",
        100.0 * ratio(hits, lookups),
        100.0 * random_hits,
        random_seen,
        seen_total / pods.len()
    );

    let spills = metric(
        metrics,
        "ringress_bounded_load_spills_total{route=\"products\"}",
    );
    let moved = served
        .iter()
        .filter(|s| s.pod != Some(owner(s.product)))
        .count();
    println!(
        "\nBounded load (factor {BALANCE_FACTOR}): ringress_bounded_load_spills_total{{route=\"products\"}} = {}\n\
         ({:.2}% of requests; {moved} requests counted above were served off their owner). A spill happens\n\
         when the owner holds more than {BALANCE_FACTOR}x the average in-flight; the request goes clockwise to the next pod.",
        spills.map_or("?".into(), |v| v.to_string()),
        share(spills.unwrap_or(0.0) as usize, load.samples.len())
    );
    hottest(&served, &owner);

    let mut latencies: Vec<Duration> = load.samples.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "\nLatency seen by the client (pods take {} ms on a cache hit, {} ms on a miss):\n  \
         p50 {}  p90 {}  p99 {}  max {}",
        HIT_TIME.as_millis(),
        MISS_TIME.as_millis(),
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(latencies[latencies.len() - 1])
    );
}

/// Where the most popular product went.
fn hottest(served: &[&Sample], owner: &impl Fn(u32) -> usize) {
    let hot: Vec<&&Sample> = served.iter().filter(|s| s.product == 1).collect();
    let home = owner(1);
    let at_home = hot.iter().filter(|s| s.pod == Some(home)).count();
    let mut elsewhere: BTreeMap<&str, usize> = BTreeMap::new();
    for s in hot.iter().filter(|s| s.pod != Some(home)) {
        *elsewhere.entry(PODS[s.pod.unwrap_or(0)]).or_default() += 1;
    }
    let spilled: Vec<String> = elsewhere
        .iter()
        .map(|(p, n)| format!("{n} to {p}"))
        .collect();
    println!(
        "The hottest product, 1 ({} requests), belongs to {}: it served {at_home}, spilled {}.",
        hot.len(),
        PODS[home],
        if spilled.is_empty() {
            "none".to_owned()
        } else {
            spilled.join(", ")
        }
    );
}

/// The cache hit ratio, and products seen per pod, had the same requests gone
/// to uniformly random pods with the same caches.
fn random_spreading(products: &[u32]) -> (f64, usize) {
    let mut caches: Vec<Cache> = PODS.iter().map(|_| Cache::new(CACHE_CAPACITY)).collect();
    let mut seen: Vec<HashSet<u32>> = PODS.iter().map(|_| HashSet::new()).collect();
    let mut rng = SplitMix64(7);
    let mut hits = 0;
    for &product in products {
        let pod = rng.below(PODS.len());
        seen[pod].insert(product);
        hits += usize::from(caches[pod].get_or_insert(product));
    }
    let avg_seen = seen.iter().map(HashSet::len).sum::<usize>() / PODS.len();
    (ratio(hits as u64, products.len() as u64), avg_seen)
}

fn try_next(binary: &Path, proxy: &ProxyProcess, routes: &Path, urls: &[&str]) {
    let (p, a) = (proxy.listen, proxy.admin);
    println!("\nringress keeps serving. Try (Ctrl-C stops everything):");
    for (command, what) in [
        (
            format!("curl -i http://{p}/products/123"),
            "a product; X-Pod names the pod",
        ),
        (
            format!("curl 'http://{a}/ring?route=products&key=123'"),
            "which pod owns key 123",
        ),
        (
            format!("curl -s http://{a}/metrics | grep ^ringress_"),
            "Prometheus metrics",
        ),
        (
            format!("curl http://{a}/routes"),
            "routes in force, endpoints, in-flight",
        ),
        (
            format!("curl -X POST http://{p}/batch"),
            "power of two random choices",
        ),
        (
            format!("curl -i http://{p}/health"),
            "answered by ringress itself",
        ),
        (format!("curl -i http://{p}/nowhere"), "404 no route"),
        (
            format!(
                "{} ring --endpoints {} 123 456",
                binary.display(),
                urls.join(",")
            ),
            "owners offline",
        ),
        (
            format!("{} check {}", binary.display(), routes.display()),
            "validate a route file",
        ),
    ] {
        println!("  {command}\n      # {what}");
    }
    println!(
        "  Edit {} (e.g. drop a pod from products): in force within 500 ms;\n  \
         a broken file is rejected and the previous routes stay. Proxy log: {}",
        routes.display(),
        proxy.log.display()
    );
}

/// The value of one series in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn share(part: usize, whole: usize) -> f64 {
    100.0 * ratio(part as u64, whole as u64)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
