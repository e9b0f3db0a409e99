//! Idle upstream connections of the fast path, kept per worker thread so a
//! connection is always driven by the runtime that registered it and taking
//! one needs no lock.
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections kept per endpoint and worker. A pool only holds what
/// recent concurrency opened (and `IDLE_FOR` ages it out), so the cap is a
/// guard, not a size: one at the typical per-endpoint concurrency (64 did, at
/// 256 client connections over 4 endpoints) closes and reopens connections
/// under steady load as each endpoint's share of in-flight requests wanders
/// around it, and the reconnects were the bench's p99.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
/// An idle connection older than this is closed rather than reused: backends
/// close idle keep-alive connections on their own schedule (NGINX after 75 s,
/// many application servers after 5–60 s), and a closed one costs a retry.
pub const IDLE_FOR: Duration = Duration::from_secs(30);
/// How often a worker's idle connections are checked while it holds any, so
/// connections the endpoint closed or that outlived `IDLE_FOR` (pods gone) do
/// not keep sockets open when traffic stops.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// FxHash-style: endpoint addresses come from the route file and discovery,
/// not from clients, so SipHash's flooding resistance buys nothing here.
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

#[derive(Default)]
struct Pool {
    idle: HashMap<SocketAddr, Vec<Idle>, BuildHasherDefault<AddrHasher>>,
    /// A sweeper task runs on this worker.
    sweeping: bool,
    /// Whether this thread drives a current-thread runtime (decided on first
    /// use): only then does a spawned sweeper stay on this thread's pool.
    current_thread: Option<bool>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// The most recently returned idle connection to `addr` that is not expired.
pub fn take(addr: SocketAddr, now: Instant) -> Option<TcpStream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let list = pool.idle.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            // Readable while idle means closed by the endpoint or stray bytes
            // that would be read as the next response; tokio answers from its
            // readiness flags without a syscall while the socket is quiet.
            if now.saturating_duration_since(idle.since) < IDLE_FOR && reusable(&idle.stream) {
                return Some(idle.stream);
            }
        }
        None
    })
}

/// Keeps a connection whose last response ended cleanly for the next request.
pub fn give_back(addr: SocketAddr, stream: TcpStream, now: Instant) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let current_thread = *pool.current_thread.get_or_insert_with(|| {
            tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::CurrentThread
        });
        if !current_thread {
            // A work-stealing runtime (RINGRESS_WORK_STEALING) moves tasks
            // between threads: no per-thread pool there, the connection closes.
            return;
        }
        let list = pool.idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle { stream, since: now });
        }
        if !pool.sweeping {
            pool.sweeping = true;
            // A current-thread runtime: the task stays on this thread and its pool.
            tokio::spawn(sweep_while_holding());
        }
    })
}

/// Every `SWEEP_EVERY`, closes idle connections that expired or that their
/// endpoint closed; ends once the pool is empty (`give_back` starts it again).
async fn sweep_while_holding() {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let now = Instant::now();
        let done = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            pool.idle.retain(|_, list| {
                list.retain(|idle| {
                    now.saturating_duration_since(idle.since) < IDLE_FOR && reusable(&idle.stream)
                });
                !list.is_empty()
            });
            pool.sweeping = !pool.idle.is_empty();
            !pool.sweeping
        });
        if done {
            return;
        }
    }
}

/// An idle connection has nothing to read: end of stream (the endpoint
/// closed it) or stray bytes mean it cannot carry another request.
fn reusable(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
