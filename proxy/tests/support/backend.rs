//! A real HTTP backend on loopback that answers with its name (and echoes
//! the request target in `x-path`), optionally slowly, and records what it saw.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[derive(Default)]
pub struct Seen {
    pub hits: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub delay_ms: AtomicUsize,
    /// Headers of the last request, lowercase names.
    pub last_headers: Mutex<Vec<(String, String)>>,
    pub paths: Mutex<Vec<String>>,
    /// Length of each request body received complete.
    pub bodies: Mutex<Vec<usize>>,
    /// While set, requests whose query has a `hold` parameter wait before
    /// answering: in flight for as long as a test needs (see `Backend::hold`).
    pub gate_closed: AtomicBool,
    /// Requests waiting at the closed gate now.
    pub held: AtomicUsize,
}

pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub seen: Arc<Seen>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start(name: &str) -> Self {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn start_on(name: &str, addr: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind(addr).expect("bind backend");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let name_owned = name.to_string();
        let seen2 = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, name_owned, seen2, stopped));
        });
        Self {
            addr,
            name: name.to_string(),
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, as a route file names it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.seen
            .delay_ms
            .store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// From now on, requests with `hold` in their query (`/x?hold`) wait
    /// until `release`; others are answered as usual.
    pub fn hold(&self) {
        self.seen.gate_closed.store(true, Ordering::SeqCst);
    }

    /// Lets every held request answer.
    pub fn release(&self) {
        self.seen.gate_closed.store(false, Ordering::SeqCst);
    }

    /// Requests held at the gate now.
    pub fn held(&self) -> usize {
        self.seen.held.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.seen.in_flight.load(Ordering::SeqCst)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.seen
            .last_headers
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// Stops accepting and closes the port.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    name: String,
    seen: Arc<Seen>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let name = name.clone();
                let seen = Arc::clone(&seen);
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(name.clone(), Arc::clone(&seen), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
    conns.abort_all();
}

async fn handle(
    name: String,
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    *seen.last_headers.lock().unwrap() = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let uri = req.uri().to_string();
    seen.paths.lock().unwrap().push(uri.clone());
    let hold = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "hold"));
    if let Ok(body) = req.into_body().collect().await {
        seen.bodies.lock().unwrap().push(body.to_bytes().len());
    }
    let delay = seen.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    if hold && seen.gate_closed.load(Ordering::SeqCst) {
        seen.held.fetch_add(1, Ordering::SeqCst);
        while seen.gate_closed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.held.fetch_sub(1, Ordering::SeqCst);
    }
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = Response::new(Full::new(Bytes::from(name.clone())));
    resp.headers_mut()
        .insert("x-backend", http::HeaderValue::from_str(&name).unwrap());
    // Lets a client check that a response answers its own request.
    if let Ok(v) = http::HeaderValue::from_str(&uri) {
        resp.headers_mut().insert("x-path", v);
    }
    Ok(resp)
}
