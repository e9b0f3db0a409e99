//! A raw HTTP/1.1 backend on loopback that can fail the ways a real one does:
//! crash with responses half written (every connection reset), or accept
//! connections and reset them before answering. Written on bare sockets so
//! the faults are exact, where a server library would tidy them up.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Body length of every response; the first half is written at once, the rest
/// after the backend's body delay. Larger than the proxy's client write buffer,
/// so the first half reaches the client before the rest exists (a response
/// that fits is held until whole, and a crash gets it a 502 instead of a cut).
pub const BODY_LEN: usize = 32 * 1024;

#[derive(Default)]
pub struct Counts {
    /// Requests read.
    pub hits: AtomicUsize,
    /// Requests read and not yet answered in full.
    pub in_flight: AtomicUsize,
    /// Of those, responses whose head and half of the body are written.
    pub mid_body: AtomicUsize,
    /// Connections reset before a response head (in `reset_before_head` mode).
    pub resets: AtomicUsize,
}

/// What `crash` found in flight.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// Requests read and not answered in full.
    pub in_flight: usize,
    /// Of those, responses cut after the head and half of the body.
    pub mid_body: usize,
}

pub struct FaultyBackend {
    pub addr: SocketAddr,
    pub name: String,
    pub counts: Arc<Counts>,
    reset_before_head: Arc<AtomicBool>,
    crash: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultyBackend {
    /// Answers every request `200` with `x-backend: NAME`, keeping the
    /// connection alive; the second half of each body comes `body_delay`
    /// after the first.
    pub fn start(name: &str, body_delay: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let reset_before_head = Arc::new(AtomicBool::new(false));
        let (crash, crashed) = watch::channel(false);
        let conn = Conn {
            name: name.to_string(),
            counts: Arc::clone(&counts),
            reset_before_head: Arc::clone(&reset_before_head),
            body_delay,
            crashed,
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, conn));
        });
        Self {
            addr,
            name: name.to_string(),
            counts,
            reset_before_head,
            crash,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.counts.hits.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.counts.in_flight.load(Ordering::SeqCst)
    }

    /// From now on, read each request, write a few bytes of a status line and
    /// reset the connection: the endpoint accepts but cannot serve.
    pub fn reset_before_head(&self, on: bool) {
        self.reset_before_head.store(on, Ordering::SeqCst);
    }

    /// Crashes: resets every connection (responses half written stay cut) and
    /// closes the listener, so new connections are refused.
    pub fn crash(&mut self) -> Crash {
        let found = Crash {
            in_flight: self.counts.in_flight.load(Ordering::SeqCst),
            mid_body: self.counts.mid_body.load(Ordering::SeqCst),
        };
        let _ = self.crash.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        found
    }
}

impl Drop for FaultyBackend {
    fn drop(&mut self) {
        self.crash();
    }
}

#[derive(Clone)]
struct Conn {
    name: String,
    counts: Arc<Counts>,
    reset_before_head: Arc<AtomicBool>,
    body_delay: Duration,
    crashed: watch::Receiver<bool>,
}

async fn serve(listener: std::net::TcpListener, conn: Conn) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let mut crashed = conn.crashed.clone();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = crashed.wait_for(|c| *c) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                tasks.spawn(conn.clone().run(stream));
            }
        }
    }
    drop(listener);
    // Every connection resets itself on the crash signal; wait until they have.
    while tasks.join_next().await.is_some() {}
}

/// Whether a request still counts in flight when the connection ends.
struct Pending<'a>(&'a Counts, bool);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Conn {
    async fn run(mut self, stream: TcpStream) {
        // SO_LINGER 0: dropping the socket sends RST, as a crashed process's
        // kernel does for a connection with data still unsent or unread.
        stream.set_zero_linger().ok();
        let mut crashed = self.crashed.clone();
        tokio::select! {
            _ = crashed.wait_for(|c| *c) => {}
            _ = self.serve_requests(stream) => {}
        }
    }

    async fn serve_requests(&mut self, mut stream: TcpStream) {
        let mut buf = Vec::with_capacity(1024);
        loop {
            let Some(end) = read_head(&mut stream, &mut buf).await else {
                return;
            };
            buf.drain(..end);
            let counts = Arc::clone(&self.counts);
            counts.hits.fetch_add(1, Ordering::SeqCst);
            counts.in_flight.fetch_add(1, Ordering::SeqCst);
            let mut pending = Pending(&counts, true);
            if self.reset_before_head.load(Ordering::SeqCst) {
                let _ = stream.write_all(b"HTTP/1.1 2").await;
                counts.resets.fetch_add(1, Ordering::SeqCst);
                return; // dropped with linger 0: RST
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {BODY_LEN}\r\nx-backend: {}\r\n\r\n",
                self.name
            );
            let body = vec![b'x'; BODY_LEN];
            if stream.write_all(head.as_bytes()).await.is_err()
                || stream.write_all(&body[..BODY_LEN / 2]).await.is_err()
            {
                return;
            }
            counts.mid_body.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.body_delay).await;
            let finished = stream.write_all(&body[BODY_LEN / 2..]).await.is_ok();
            counts.mid_body.fetch_sub(1, Ordering::SeqCst);
            if !finished {
                return;
            }
            pending.1 = false;
            counts.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Reads until a complete request head (GET without a body) is buffered;
/// returns its length, or `None` when the peer closed.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
