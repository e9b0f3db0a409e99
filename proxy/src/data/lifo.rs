//! LIFO admission queues, after Skipper's `lifo` and `lifoGroup` filters.
//!
//! Under a latency spike a FIFO queue makes every request wait behind the
//! stalled head. A LIFO queue admits the newest waiter when a slot frees and
//! sheds the oldest when the stack is full, so most requests stay fast while a
//! few fail fast.
//!
//! A slot is held by a [`Permit`] and released when it drops. Every state
//! change happens under one mutex, and slots are handed to waiters under that
//! mutex, so a waiter that is cancelled while being woken always finds out
//! (and passes the slot on) instead of leaking it.
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifoConfig {
    /// Requests that may run at once.
    pub max_concurrency: usize,
    /// Requests that may wait for a slot; 0 rejects at once when none is free.
    pub max_queue_size: usize,
    /// How long a request may wait before it is rejected.
    pub timeout: Duration,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No slot and no room on the stack, or pushed out by newer arrivals.
    Full,
    /// Waited `timeout` without getting a slot.
    Timeout,
}

impl Rejection {
    /// The `reason` label of `ringress_lifo_rejected_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Full => "full",
            Rejection::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Full => "queue full",
            Rejection::Timeout => "queue timeout",
        })
    }
}

impl std::error::Error for Rejection {}

/// The LIFO metric families, registered once; each queue gets its own
/// pre-resolved handles so admission never looks up labels.
#[derive(Clone)]
pub struct LifoMetrics {
    active: IntGaugeVec,
    queued: IntGaugeVec,
    rejected: IntCounterVec,
}

impl LifoMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let active = IntGaugeVec::new(
            Opts::new(
                "ringress_lifo_active",
                "Requests holding a LIFO queue slot.",
            ),
            &["queue"],
        )?;
        let queued = IntGaugeVec::new(
            Opts::new("ringress_lifo_queued", "Requests waiting in a LIFO queue."),
            &["queue"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "ringress_lifo_rejected_total",
                "Requests rejected by a LIFO queue.",
            ),
            &["queue", "reason"],
        )?;
        registry.register(Box::new(active.clone()))?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        Ok(Self {
            active,
            queued,
            rejected,
        })
    }

    fn handles(&self, queue: &str) -> QueueMetrics {
        QueueMetrics {
            active: self.active.with_label_values(&[queue]),
            queued: self.queued.with_label_values(&[queue]),
            full: self.rejected.with_label_values(&[queue, "full"]),
            timeout: self.rejected.with_label_values(&[queue, "timeout"]),
        }
    }
}

struct QueueMetrics {
    active: IntGauge,
    queued: IntGauge,
    full: IntCounter,
    timeout: IntCounter,
}

/// What a waiter receives: a slot (already counted in `active`) or a rejection.
type Grant = Result<(), Rejection>;

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Grant>,
}

struct State {
    config: LifoConfig,
    active: usize,
    /// Oldest at the front, newest at the back; ids increase front to back.
    waiters: VecDeque<Waiter>,
    next_id: u64,
    /// Gauge values this queue has contributed, see [`LifoQueue::publish`].
    shown_active: i64,
    shown_queued: i64,
}

pub struct LifoQueue {
    name: String,
    state: Mutex<State>,
    metrics: Option<QueueMetrics>,
}

impl LifoQueue {
    pub fn new(name: &str, config: LifoConfig, metrics: Option<&LifoMetrics>) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            state: Mutex::new(State {
                config,
                active: 0,
                waiters: VecDeque::new(),
                next_id: 0,
                shown_active: 0,
                shown_queued: 0,
            }),
            metrics: metrics.map(|m| m.handles(name)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> LifoConfig {
        self.lock().config
    }

    pub fn active(&self) -> usize {
        self.lock().active
    }

    pub fn queued(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Waits for a slot. Cancel-safe: dropping the future removes the waiter,
    /// and a slot granted at that very moment passes to the next waiter.
    pub async fn acquire(self: &Arc<Self>) -> Result<Permit, Rejection> {
        let (id, rx, timeout) = {
            let mut s = self.lock();
            if s.active < s.config.max_concurrency {
                s.active += 1;
                self.publish(&mut s);
                return Ok(Permit {
                    queue: Arc::clone(self),
                });
            }
            if s.config.max_queue_size == 0 {
                self.count(Rejection::Full);
                return Err(Rejection::Full);
            }
            while s.waiters.len() >= s.config.max_queue_size {
                self.reject_oldest(&mut s);
            }
            let id = s.next_id;
            s.next_id += 1;
            let (tx, rx) = oneshot::channel();
            s.waiters.push_back(Waiter { id, tx });
            self.publish(&mut s);
            (id, rx, s.config.timeout)
        };
        let mut waiting = Waiting {
            queue: self,
            id,
            rx,
            settled: false,
        };
        let grant = match tokio::time::timeout(timeout, &mut waiting.rx).await {
            // The sender is only dropped after sending, so `Err` cannot happen.
            Ok(grant) => grant.unwrap_or(Err(Rejection::Full)),
            Err(_) => self.leave(id, &mut waiting.rx).unwrap_or_else(|| {
                self.count(Rejection::Timeout);
                Err(Rejection::Timeout)
            }),
        };
        waiting.settled = true;
        grant.map(|()| Permit {
            queue: Arc::clone(self),
        })
    }

    /// Applies to the next admissions. Current waiters stay, except the
    /// oldest beyond a smaller `max_queue_size`; a larger `max_concurrency`
    /// admits the newest waiters at once.
    pub fn set_config(&self, config: LifoConfig) {
        let mut s = self.lock();
        s.config = config;
        while s.waiters.len() > config.max_queue_size {
            self.reject_oldest(&mut s);
        }
        self.admit(&mut s);
        self.publish(&mut s);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned count is still
        // better than taking every later request down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self) {
        let mut s = self.lock();
        s.active -= 1;
        self.admit(&mut s);
        self.publish(&mut s);
    }

    /// Hands free slots to the newest waiters.
    fn admit(&self, s: &mut State) {
        while s.active < s.config.max_concurrency {
            let Some(waiter) = s.waiters.pop_back() else {
                break;
            };
            // Fails only if the waiter is gone, and gone waiters remove
            // themselves first; then the slot goes to the next one.
            if waiter.tx.send(Ok(())).is_ok() {
                s.active += 1;
            }
        }
    }

    fn reject_oldest(&self, s: &mut State) {
        if let Some(waiter) = s.waiters.pop_front() {
            let _ = waiter.tx.send(Err(Rejection::Full));
            self.count(Rejection::Full);
        }
    }

    /// Removes a waiter that stops waiting. `None` if it was still on the
    /// stack; otherwise what it was sent, which the caller must honour.
    fn leave(&self, id: u64, rx: &mut oneshot::Receiver<Grant>) -> Option<Grant> {
        let mut s = self.lock();
        match s.waiters.binary_search_by_key(&id, |w| w.id) {
            Ok(i) => {
                s.waiters.remove(i);
                self.publish(&mut s);
                None
            }
            // Sent under the lock we hold, so it is in the channel by now.
            Err(_) => Some(rx.try_recv().unwrap_or(Err(Rejection::Full))),
        }
    }

    /// Adds deltas rather than setting values, so queues sharing a label (a
    /// route queue replaced while the old one drains) sum instead of
    /// overwriting each other.
    fn publish(&self, s: &mut State) {
        if let Some(m) = &self.metrics {
            let (active, queued) = (s.active as i64, s.waiters.len() as i64);
            m.active.add(active - s.shown_active);
            m.queued.add(queued - s.shown_queued);
            s.shown_active = active;
            s.shown_queued = queued;
        }
    }

    fn count(&self, rejection: Rejection) {
        if let Some(m) = &self.metrics {
            match rejection {
                Rejection::Full => m.full.inc(),
                Rejection::Timeout => m.timeout.inc(),
            }
        }
    }
}

impl fmt::Debug for LifoQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("LifoQueue")
            .field("name", &self.name)
            .field("config", &s.config)
            .field("active", &s.active)
            .field("queued", &s.waiters.len())
            .finish()
    }
}

/// A waiter's place on the stack while its `acquire` future is pending.
struct Waiting<'a> {
    queue: &'a LifoQueue,
    id: u64,
    rx: oneshot::Receiver<Grant>,
    settled: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.settled {
            if let Some(Ok(())) = self.queue.leave(self.id, &mut self.rx) {
                // Granted a slot while being cancelled: pass it on.
                self.queue.release();
            }
        }
    }
}

/// A running request's slot; dropping it (also while unwinding) admits the
/// newest waiter.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct Permit {
    queue: Arc<LifoQueue>,
}

impl Permit {
    pub fn queue(&self) -> &Arc<LifoQueue> {
        &self.queue
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.queue.release();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("queue", &self.queue.name)
            .finish()
    }
}

/// Queues by name that outlive route-table reloads: the same name yields the
/// same queue, so in-flight counts and waiters carry over. Keep one registry
/// for route queues (`lifo`) and another for shared groups (`lifoGroup`).
pub struct LifoRegistry {
    metrics: Option<LifoMetrics>,
    queues: Mutex<HashMap<String, Arc<LifoQueue>>>,
}

impl LifoRegistry {
    pub fn new(metrics: Option<LifoMetrics>) -> Self {
        Self {
            metrics,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// The queue called `name`, created with `config` if new; an existing
    /// queue takes `config` for its next admissions.
    pub fn get(&self, name: &str, config: LifoConfig) -> Arc<LifoQueue> {
        let mut queues = self.lock();
        if let Some(queue) = queues.get(name) {
            if queue.config() != config {
                queue.set_config(config);
            }
            return Arc::clone(queue);
        }
        let queue = LifoQueue::new(name, config, self.metrics.as_ref());
        queues.insert(name.to_owned(), Arc::clone(&queue));
        queue
    }

    /// Forgets queues whose names are not in `names` once they are idle; busy
    /// ones stay until a later call, so a route that returns meanwhile keeps
    /// its limit instead of starting a second queue beside the old one.
    pub fn retain<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let names: HashSet<&str> = names.into_iter().collect();
        self.lock().retain(|name, queue| {
            names.contains(name.as_str()) || queue.active() > 0 || queue.queued() > 0
        });
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<LifoQueue>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
