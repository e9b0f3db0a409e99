//! Atomic publication of the route table for hot reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::error::RouteErrors;
use crate::table::RouteTable;

/// The table in force. Readers load it without locks and always see a whole
/// table; a reload that fails leaves the previous table in force.
pub struct RouteSource {
    origin: String,
    table: ArcSwap<RouteTable>,
    generation: AtomicU64,
}

impl RouteSource {
    /// Starts at generation 0 with `table`; `origin` names the file in errors.
    pub fn new(origin: &str, table: RouteTable) -> Self {
        RouteSource {
            origin: origin.to_owned(),
            table: ArcSwap::from_pointee(table),
            generation: AtomicU64::new(0),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A handle that may be kept for as long as needed.
    pub fn current(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// The cheapest read, for the request path; do not hold it across awaits.
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Compiles `text`; on success publishes it and returns it, on failure
    /// keeps the previous table and returns every error.
    pub fn reload(&self, text: &str) -> Result<Arc<RouteTable>, RouteErrors> {
        let table = Arc::new(RouteTable::parse(&self.origin, text)?);
        self.publish(Arc::clone(&table));
        Ok(table)
    }

    /// Publishes an already compiled table.
    pub fn publish(&self, table: Arc<RouteTable>) {
        self.table.store(table);
        // After the store: whoever sees generation n also sees table n.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Bumps on each successful publish.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for RouteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSource")
            .field("origin", &self.origin)
            .field("generation", &self.generation())
            .field("routes", &self.load().len())
            .finish()
    }
}
