use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::health::Health;

/// One backend address, its live in-flight count and its passive health.
///
/// Rings hold `Arc<Endpoint>`s obtained from the [`Registry`], so a rebuilt ring
/// sees the same counter and health as the ring it replaces.
pub struct Endpoint {
    addr: Box<str>,
    in_flight: AtomicUsize,
    health: Health,
    /// When it became ready, on the caller's millisecond clock; 0 when it was
    /// there from the start (see [`crate::FadeIn`]). Fixed at creation.
    ready_since_ms: u64,
}

impl Endpoint {
    /// The address exactly as configured, e.g. `http://10.0.0.1:8080`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Requests currently sent to this endpoint and not yet finished.
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// When the endpoint became ready (caller's clock, ms); 0: from the start.
    #[inline]
    pub fn ready_since_ms(&self) -> u64 {
        self.ready_since_ms
    }

    /// Passive health, shared by every route using this address.
    #[inline]
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Counts one request in flight until the guard drops.
    pub fn acquire(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard {
            endpoint: Arc::clone(self),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("in_flight", &self.in_flight())
            .field("health", &self.health)
            .field("ready_since_ms", &self.ready_since_ms)
            .finish()
    }
}

/// Decrements its endpoint's in-flight count when dropped, on every path
/// (response, error, retry, panic, cancelled client).
#[derive(Debug)]
pub struct InFlightGuard {
    endpoint: Arc<Endpoint>,
}

impl InFlightGuard {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// In-flight counters keyed by endpoint address, shared by all routes.
///
/// The registry holds entries weakly: an endpoint lives as long as a ring or
/// an in-flight guard references it, so an address that left every ring is
/// dropped once its last request finishes, and one that stays in any ring keeps
/// its count across rebuilds.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<Box<str>, Weak<Endpoint>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The endpoint for `addr`, created on first use as one that was there
    /// from the start.
    pub fn endpoint(&self, addr: &str) -> Arc<Endpoint> {
        self.endpoint_ready_since(addr, 0)
    }

    /// The endpoint for `addr`; created on first use as ready since
    /// `ready_since_ms`. An endpoint already known keeps its own time, so
    /// every route using an address sees the same age.
    pub fn endpoint_ready_since(&self, addr: &str, ready_since_ms: u64) -> Arc<Endpoint> {
        let mut entries = self.lock();
        if let Some(live) = entries.get(addr).and_then(Weak::upgrade) {
            return live;
        }
        let endpoint = Arc::new(Endpoint {
            addr: addr.into(),
            in_flight: AtomicUsize::new(0),
            health: Health::default(),
            ready_since_ms,
        });
        entries.insert(addr.into(), Arc::downgrade(&endpoint));
        endpoint
    }

    /// The endpoint for `addr` if some ring or request still references it.
    pub fn get(&self, addr: &str) -> Option<Arc<Endpoint>> {
        self.lock().get(addr).and_then(Weak::upgrade)
    }

    /// Forgets entries no ring or request references any more.
    pub fn prune(&self) {
        self.lock().retain(|_, weak| weak.strong_count() > 0);
    }

    /// Live endpoints, sorted by address (for metrics and admin views).
    pub fn snapshot(&self) -> Vec<Arc<Endpoint>> {
        let mut live: Vec<_> = self.lock().values().filter_map(Weak::upgrade).collect();
        live.sort_by(|a, b| a.addr.cmp(&b.addr));
        live
    }

    /// Number of entries held, live or not yet pruned.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Weak<Endpoint>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.snapshot()).finish()
    }
}
