//! Idle upstream connections of the fast path, kept per worker thread so a
//! connection is always driven by the runtime that registered it and taking
//! one needs no lock.
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections kept per endpoint and worker.
const MAX_IDLE_PER_ENDPOINT: usize = 64;
/// An idle connection older than this is closed rather than reused: backends
/// close idle keep-alive connections on their own schedule (NGINX after 75 s,
/// many application servers after 5–60 s), and a closed one costs a retry.
pub const IDLE_FOR: Duration = Duration::from_secs(30);
/// How often the whole pool is swept for expired connections, so endpoints
/// that left (pods gone) do not keep sockets open.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

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
    last_sweep: Option<Instant>,
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
            if now.saturating_duration_since(idle.since) < IDLE_FOR {
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
        if pool
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
        {
            pool.last_sweep = Some(now);
            pool.idle.retain(|_, list| {
                list.retain(|idle| now.saturating_duration_since(idle.since) < IDLE_FOR);
                !list.is_empty()
            });
        }
        let list = pool.idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle { stream, since: now });
        }
    })
}

/// Idle connections held by this thread (for tests and diagnostics).
pub fn idle_count() -> usize {
    POOL.with(|pool| pool.borrow().idle.values().map(Vec::len).sum())
}
