//! An in-test Kubernetes API server for EndpointSlices.
//!
//! No cluster can run where these tests run, so this speaks the real API server's HTTP/1.1
//! protocol, unencrypted, on 127.0.0.1, for the one resource ringress reads:
//! - `GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=k=v,...`
//!   answers an `EndpointSliceList` carrying `metadata.resourceVersion`;
//! - the same with `watch=true&resourceVersion=N` streams chunked JSON lines
//!   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":...}` of every change after `N`,
//!   bookmarks included when `allowWatchBookmarks=true`, until `timeoutSeconds`;
//! - a watch from a version older than the history kept (see [`FakeApiServer::compact`]) gets
//!   an `ERROR` event with a `Status` of code 410 (Expired), as a real server does, forcing the
//!   client to list again.
//!
//! Tests change slices while it runs, break every open watch with a 410 or by dropping the
//! connection, and stop and restart it on the same port; its store (the "etcd") survives a
//! restart. Each connection serves one request (`Connection: close`).
//!
//! ```ignore
//! let server = FakeApiServer::start_blocking(); // or `start().await` inside a tokio test
//! server.write_kubeconfig(&dir.join("kubeconfig")); // for `ringress --kubeconfig ...`
//! server.apply("shop", slice("web-a", "web", &[("http", 8080)], &[ready("10.0.0.1")]));
//! server.delete("shop", "web-a");
//! server.inject_gone(); // or drop_watches(), stop(), restart_blocking()
//! ```
#![allow(dead_code)] // Shared by several test crates; each uses a part.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};

const SLICES_PATH_PREFIX: &str = "/apis/discovery.k8s.io/v1/namespaces/";
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

/// The fake API server. Stops when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    handle: Handle,
    /// Set when the server brought its own runtime ([`FakeApiServer::start_blocking`]).
    runtime: Option<Runtime>,
}

struct Shared {
    store: Mutex<Store>,
    signals: broadcast::Sender<Signal>,
    stats: Mutex<HashMap<(String, String), Stats>>,
}

/// Requests seen per (namespace, labelSelector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub lists: usize,
    pub watches: usize,
    pub open_watches: usize,
}

#[derive(Default)]
struct Store {
    resource_version: u64,
    slices: BTreeMap<(String, String), EndpointSlice>,
    history: Vec<Arc<Change>>,
    /// Watches from before this version get 410 Gone.
    oldest_watchable: u64,
}

struct Change {
    resource_version: u64,
    kind: &'static str,
    namespace: String,
    object: EndpointSlice,
}

#[derive(Clone)]
enum Signal {
    Change(Arc<Change>),
    Gone,
    Disconnect,
}

impl FakeApiServer {
    /// Starts on a free port of 127.0.0.1, on the calling test's tokio runtime.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (port 0 picks a free one), e.g. one a client was pointed at earlier.
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::new(addr, Handle::current(), None)
    }

    /// For synchronous tests (e.g. ones driving the ringress binary): starts on a free port,
    /// served by a runtime of its own. Use [`Self::restart_blocking`] to restart it.
    pub fn start_blocking() -> Self {
        Self::start_on_blocking(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// [`Self::start_blocking`] on a chosen address.
    pub fn start_on_blocking(addr: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("fake API server runtime");
        let handle = runtime.handle().clone();
        Self::new(addr, handle, Some(runtime))
    }

    fn new(addr: SocketAddr, handle: Handle, runtime: Option<Runtime>) -> Self {
        let (signals, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                resource_version: 1000,
                oldest_watchable: 1000,
                ..Store::default()
            }),
            signals,
            stats: Mutex::default(),
        });
        let mut server = Self {
            addr,
            shared,
            accept_task: Mutex::new(None),
            handle,
            runtime,
        };
        server.addr = server.listen().expect("bind fake API server");
        server
    }

    /// `http://127.0.0.1:PORT`, for `kube::Config::new`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("server url"));
        kube::Client::try_from(config).expect("kube client")
    }

    /// Writes a kubeconfig whose current context points at this server.
    pub fn write_kubeconfig(&self, path: &Path) {
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n",
            self.url()
        );
        std::fs::write(path, kubeconfig).expect("write kubeconfig");
    }

    /// Creates or replaces a slice (by `metadata.name`) in `namespace`; open watches see it.
    pub fn apply(&self, namespace: &str, mut slice: EndpointSlice) {
        let name = slice
            .metadata
            .name
            .clone()
            .expect("slice needs metadata.name");
        let mut store = self.shared.store.lock().unwrap();
        let key = (namespace.to_string(), name);
        // As the API server does: creationTimestamp is set on create and kept on replace.
        // A test may give one on create, for a slice that has existed a while.
        let (kind, created) = match store.slices.get(&key) {
            Some(old) => ("MODIFIED", old.metadata.creation_timestamp.clone()),
            None => {
                let given = slice.metadata.creation_timestamp.take();
                ("ADDED", given.or_else(|| Some(now_time())))
            }
        };
        slice.metadata.creation_timestamp = created;
        store.resource_version += 1;
        slice.metadata.namespace = Some(namespace.to_string());
        slice.metadata.resource_version = Some(store.resource_version.to_string());
        store.slices.insert(key, slice.clone());
        self.record(&mut store, kind, namespace, slice);
    }

    /// Deletes a slice; open watches see a DELETED event. Returns whether it existed.
    pub fn delete(&self, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store.lock().unwrap();
        let Some(mut slice) = store
            .slices
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            return false;
        };
        store.resource_version += 1;
        slice.metadata.resource_version = Some(store.resource_version.to_string());
        self.record(&mut store, "DELETED", namespace, slice);
        true
    }

    /// Forgets history: a watch resuming from any version older than the current one gets
    /// 410 Gone (from the current version, as a fresh list returns, it may still start).
    pub fn compact(&self) {
        let mut store = self.shared.store.lock().unwrap();
        store.history.clear();
        store.oldest_watchable = store.resource_version;
    }

    /// Sends every open watch an ERROR 410 Gone and ends it; history is compacted too, so the
    /// client cannot resume and must list again.
    pub fn inject_gone(&self) {
        self.compact();
        let _ = self.shared.signals.send(Signal::Gone);
    }

    /// Drops every open watch connection mid-stream (no terminating chunk); history is kept,
    /// so the client can resume from its last version.
    pub fn drop_watches(&self) {
        let _ = self.shared.signals.send(Signal::Disconnect);
    }

    /// Stops listening and drops every connection. The store is kept for [`Self::restart`].
    ///
    /// Called outside a runtime (synchronous tests) it returns once the port is closed; inside
    /// one, the port closes a moment later, when the runtime drops the aborted tasks.
    pub fn stop(&self) {
        let Some(task) = self.accept_task.lock().unwrap().take() else {
            return;
        };
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        task.abort();
        if Handle::try_current().is_err() {
            let _ = self.handle.block_on(task);
        }
    }

    /// Listens again on the same port, with the same store.
    pub async fn restart(&self) {
        self.stop();
        // The aborted accept task closes the old listener on its runtime, soon but not at once.
        for _ in 0..200 {
            if self.listen().is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("could not listen on {} again", self.addr);
    }

    /// [`Self::restart`] for a server from [`Self::start_blocking`].
    pub fn restart_blocking(&self) {
        assert!(
            self.runtime.is_some(),
            "use restart().await on a test's runtime"
        );
        self.handle.block_on(self.restart());
    }

    /// Requests seen for `service`'s slices (by its `kubernetes.io/service-name` selector).
    pub fn stats(&self, namespace: &str, service: &str) -> Stats {
        let selector = format!("kubernetes.io/service-name={service}");
        let stats = self.shared.stats.lock().unwrap();
        stats
            .get(&(namespace.to_string(), selector))
            .copied()
            .unwrap_or_default()
    }

    fn record(
        &self,
        store: &mut Store,
        kind: &'static str,
        namespace: &str,
        object: EndpointSlice,
    ) {
        let change = Arc::new(Change {
            resource_version: store.resource_version,
            kind,
            namespace: namespace.to_string(),
            object,
        });
        store.history.push(change.clone());
        let _ = self.shared.signals.send(Signal::Change(change));
    }

    fn listen(&self) -> std::io::Result<SocketAddr> {
        let _runtime = self.handle.enter();
        // SO_REUSEADDR: a restart must get the same port while old sockets sit in TIME_WAIT.
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        let listener = socket.listen(128)?;
        let bound = listener.local_addr()?;
        let shared = self.shared.clone();
        let task = self.handle.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        connections.spawn(serve(shared.clone(), stream));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.accept_task.lock().unwrap() = Some(task);
        Ok(bound)
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

struct Request {
    path: String,
    query: HashMap<String, String>,
}

async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let Some(namespace) = request
        .path
        .strip_prefix(SLICES_PATH_PREFIX)
        .and_then(|rest| rest.strip_suffix("/endpointslices"))
        .filter(|ns| !ns.is_empty() && !ns.contains('/'))
        .map(str::to_string)
    else {
        let status = status_json(404, "NotFound", &format!("{} not found", request.path));
        let _ = write_response(&mut stream, "404 Not Found", &status).await;
        return;
    };
    let selector = request
        .query
        .get("labelSelector")
        .cloned()
        .unwrap_or_default();
    if request
        .query
        .get("watch")
        .is_some_and(|v| v == "true" || v == "1")
    {
        watch(shared, stream, namespace, selector, &request.query).await;
    } else {
        list(&shared, &mut stream, namespace, selector).await;
    }
}

async fn list(shared: &Shared, stream: &mut TcpStream, namespace: String, selector: String) {
    let body = {
        let store = shared.store.lock().unwrap();
        let items: Vec<&EndpointSlice> = store
            .slices
            .iter()
            .filter(|((ns, _), slice)| *ns == namespace && selects(&selector, slice))
            .map(|(_, slice)| slice)
            .collect();
        json!({
            "kind": "EndpointSliceList",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": { "resourceVersion": store.resource_version.to_string() },
            "items": items,
        })
    };
    shared.count(&namespace, &selector, |stats| stats.lists += 1);
    let _ = write_response(stream, "200 OK", &body).await;
}

async fn watch(
    shared: Arc<Shared>,
    stream: TcpStream,
    namespace: String,
    selector: String,
    query: &HashMap<String, String>,
) {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(3600), Duration::from_secs);

    // Subscribe under the store lock so no change falls between the backlog and the live feed.
    let (backlog, mut signals, expired, mut last_version) = {
        let store = shared.store.lock().unwrap();
        let expired = from < store.oldest_watchable;
        let backlog: Vec<Arc<Change>> = store
            .history
            .iter()
            .filter(|change| change.resource_version > from)
            .cloned()
            .collect();
        (
            backlog,
            shared.signals.subscribe(),
            expired,
            store.resource_version,
        )
    };
    shared.count(&namespace, &selector, |stats| {
        stats.watches += 1;
        stats.open_watches += 1;
    });
    let _open = OpenWatch {
        shared: shared.clone(),
        key: (namespace.clone(), selector.clone()),
    };

    // Reading too, so a client that goes away ends the watch at once, as on a real server.
    let (mut reader, mut stream) = stream.into_split();
    let mut scratch = [0u8; 512];
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if expired {
        let _ = send_gone(&mut stream, from).await;
        let _ = stream.write_all(b"0\r\n\r\n").await;
        return;
    }
    let wanted =
        |change: &Change| change.namespace == namespace && selects(&selector, &change.object);
    for change in backlog.iter().filter(|change| wanted(change)) {
        if send_change(&mut stream, change).await.is_err() {
            return;
        }
    }

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut bookmark_tick = tokio::time::interval(BOOKMARK_EVERY);
    bookmark_tick.tick().await;
    loop {
        let sent = tokio::select! {
            () = &mut deadline => break,
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => Ok(()),
            },
            _ = bookmark_tick.tick(), if bookmarks => send_bookmark(&mut stream, last_version).await,
            signal = signals.recv() => match signal {
                Ok(Signal::Change(change)) => {
                    last_version = change.resource_version;
                    if wanted(&change) { send_change(&mut stream, &change).await } else { Ok(()) }
                }
                // A watcher that fell behind the broadcast has lost events: like the real
                // server, tell it to start over.
                Ok(Signal::Gone) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = send_gone(&mut stream, from).await;
                    break;
                }
                Ok(Signal::Disconnect) | Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if sent.is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
}

/// Counts a watch as open until its connection ends, however it ends.
struct OpenWatch {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        if let Some(stats) = self.shared.stats.lock().unwrap().get_mut(&self.key) {
            stats.open_watches -= 1;
        }
    }
}

impl Shared {
    fn count(&self, namespace: &str, selector: &str, update: impl FnOnce(&mut Stats)) {
        let mut stats = self.stats.lock().unwrap();
        update(
            stats
                .entry((namespace.to_string(), selector.to_string()))
                .or_default(),
        );
    }
}

async fn send_change(
    stream: &mut (impl AsyncWrite + Unpin),
    change: &Change,
) -> std::io::Result<()> {
    send_event(
        stream,
        &json!({ "type": change.kind, "object": change.object }),
    )
    .await
}

async fn send_bookmark(
    stream: &mut (impl AsyncWrite + Unpin),
    resource_version: u64,
) -> std::io::Result<()> {
    let object = json!({
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": { "resourceVersion": resource_version.to_string() },
    });
    send_event(stream, &json!({ "type": "BOOKMARK", "object": object })).await
}

async fn send_gone(stream: &mut (impl AsyncWrite + Unpin), from: u64) -> std::io::Result<()> {
    let message = format!("too old resource version: {from}");
    let status = status_json(410, "Expired", &message);
    send_event(stream, &json!({ "type": "ERROR", "object": status })).await
}

/// One watch event is one JSON line in one HTTP chunk.
async fn send_event(stream: &mut (impl AsyncWrite + Unpin), event: &Value) -> std::io::Result<()> {
    let line = format!("{event}\n");
    let chunk = format!("{:x}\r\n{line}\r\n", line.len());
    stream.write_all(chunk.as_bytes()).await
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

async fn write_response(stream: &mut TcpStream, status: &str, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads a bodyless request's head: the client only ever GETs.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.lines().next()?.split(' ').nth(1)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect();
    Some(Request {
        path: path.to_string(),
        query,
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equality-based label selectors (`a=b,c=d`, `a==b`, `a!=b`), all ringress sends.
fn selects(selector: &str, slice: &EndpointSlice) -> bool {
    let labels = slice.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key.trim())).map(String::as_str);
    selector
        .split(',')
        .filter(|r| !r.is_empty())
        .all(|requirement| {
            if let Some((key, value)) = requirement.split_once("!=") {
                label(key) != Some(value.trim())
            } else if let Some((key, value)) = requirement
                .split_once("==")
                .or_else(|| requirement.split_once('='))
            {
                label(key) == Some(value.trim())
            } else {
                label(requirement).is_some()
            }
        })
}

// ---- Building slices for tests ----

/// An endpoint of a slice: its address and conditions.
#[derive(Clone, Debug)]
pub struct Ep {
    pub address: String,
    pub ready: Option<bool>,
    pub terminating: Option<bool>,
}

/// Ready (the usual state of a serving pod).
pub fn ready(address: &str) -> Ep {
    Ep {
        address: address.to_string(),
        ready: Some(true),
        terminating: None,
    }
}

/// Not ready (starting, or failing its readiness probe).
pub fn not_ready(address: &str) -> Ep {
    Ep {
        ready: Some(false),
        ..ready(address)
    }
}

/// Terminating: being deleted; Kubernetes also marks it not ready.
pub fn terminating(address: &str) -> Ep {
    Ep {
        ready: Some(false),
        terminating: Some(true),
        ..ready(address)
    }
}

/// No conditions at all, which consumers must treat as ready.
pub fn unknown(address: &str) -> Ep {
    Ep {
        ready: None,
        terminating: None,
        ..ready(address)
    }
}

fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    // The API server's resolution is one second.
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

/// A slice of `service` as the EndpointSlice controller writes it. `ports` are (name, number)
/// pairs, TCP; the address type follows the first endpoint.
pub fn slice(name: &str, service: &str, ports: &[(&str, i32)], endpoints: &[Ep]) -> EndpointSlice {
    let ipv6 = endpoints.first().is_some_and(|ep| ep.address.contains(':'));
    let mut slice = EndpointSlice {
        address_type: if ipv6 { "IPv6" } else { "IPv4" }.to_string(),
        ports: Some(
            ports
                .iter()
                .map(|(port_name, number)| EndpointPort {
                    name: Some(port_name.to_string()),
                    port: Some(*number),
                    protocol: Some("TCP".to_string()),
                    app_protocol: None,
                })
                .collect(),
        ),
        endpoints: Some(
            endpoints
                .iter()
                .map(|ep| Endpoint {
                    addresses: vec![ep.address.clone()],
                    conditions: Some(EndpointConditions {
                        ready: ep.ready,
                        serving: ep.ready,
                        terminating: ep.terminating,
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ..EndpointSlice::default()
    };
    slice.metadata.name = Some(name.to_string());
    // The controller stamps each update with the time of the pod change behind it.
    slice.metadata.annotations = Some(BTreeMap::from([(
        "endpoints.kubernetes.io/last-change-trigger-time".to_string(),
        k8s_openapi::jiff::Timestamp::now().to_string(),
    )]));
    slice.metadata.labels = Some(BTreeMap::from([
        (
            "kubernetes.io/service-name".to_string(),
            service.to_string(),
        ),
        (
            "endpointslice.kubernetes.io/managed-by".to_string(),
            "endpointslice-controller.k8s.io".to_string(),
        ),
    ]));
    slice
}
