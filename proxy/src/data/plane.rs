//! What every transport shares: the routing table in force, the metrics, the
//! listener-wide admission queue and the count of requests in flight. The
//! control plane publishes tables here; the data plane only reads them.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::data::lifo::LifoQueue;
use crate::data::metrics::{Metrics, RouteMetrics, NO_ROUTE};
use crate::data::table::Runtime;

pub struct DataPlane {
    table: ArcSwap<Runtime>,
    pub metrics: Metrics,
    /// Metrics of requests no route matched.
    pub no_route: Arc<RouteMetrics>,
    /// `--max-concurrency`: one LIFO admission for the whole listener.
    pub listener_queue: Option<Arc<LifoQueue>>,
    /// `--access-log`: one JSON line per request.
    pub access_log: bool,
    active: AtomicUsize,
}

impl DataPlane {
    pub fn new(metrics: Metrics, listener_queue: Option<Arc<LifoQueue>>, access_log: bool) -> Self {
        Self {
            table: ArcSwap::from_pointee(Runtime::empty()),
            no_route: metrics.route(NO_ROUTE),
            metrics,
            listener_queue,
            access_log,
            active: AtomicUsize::new(0),
        }
    }

    /// The table in force; cheap, never blocks.
    #[inline]
    pub fn runtime(&self) -> Arc<Runtime> {
        self.table.load_full()
    }

    /// Puts `next` in force for every request that starts from now on.
    pub fn publish(&self, next: Arc<Runtime>) {
        self.table.store(next);
    }

    /// Downstream requests being handled right now.
    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn track_request(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveRequest(Arc::clone(self))
    }
}

/// Counts one downstream request until dropped (after its response is sent).
pub struct ActiveRequest(Arc<DataPlane>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}
