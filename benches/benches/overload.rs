//! Overload simulation, in process: an upstream that serves `CAPACITY`
//! requests at once in `SERVICE` each is offered twice what it can serve, with
//! open-loop arrivals, behind no admission control, a FIFO queue, and the LIFO
//! queue. Latency is end to end from the scheduled arrival (queueing included),
//! so a late arrival loop cannot hide delay. Only arrivals in a middle window
//! count: load runs `CLIENT_TIMEOUT` before it (to reach steady state) and
//! after it (so the window never sees queues drain once arrivals stop).
//!
//! `cargo bench -p ringress-benches --bench overload`; `OVERLOAD_SECS` sets the
//! measured window per scenario (default 4).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringress::data::lifo::{LifoConfig, LifoQueue, Permit};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, sleep_until, timeout, Instant};

const CAPACITY: usize = 50;
const SERVICE: Duration = Duration::from_millis(20);
const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Clients give up after this; without admission control it bounds the pile-up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A bounded FIFO with the same knobs, for comparison: tokio's semaphore is
/// fair (first come, first served), and the newest arrival is turned away
/// when the queue is full.
struct Fifo {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue_size: usize,
}

impl Fifo {
    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue_size {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let _waiting = Decrement(&self.waiting);
        let acquire = Arc::clone(&self.slots).acquire_owned();
        timeout(QUEUE_TIMEOUT, acquire).await.ok()?.ok()
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
enum Admission {
    None,
    Fifo(Arc<Fifo>),
    Lifo(Arc<LifoQueue>),
}

impl Admission {
    fn fifo(max_queue_size: usize) -> Self {
        Admission::Fifo(Arc::new(Fifo {
            slots: Arc::new(Semaphore::new(CAPACITY)),
            waiting: AtomicUsize::new(0),
            max_queue_size,
        }))
    }

    fn lifo(max_queue_size: usize) -> Self {
        let config = LifoConfig {
            max_concurrency: CAPACITY,
            max_queue_size,
            timeout: QUEUE_TIMEOUT,
        };
        Admission::Lifo(LifoQueue::new("bench", config, None))
    }
}

enum Outcome {
    Served(Duration),
    /// Turned away by the admission queue, or the client gave up.
    Failed(Duration),
}

async fn request(admission: Admission, upstream: Arc<Semaphore>, arrival: Instant) -> Outcome {
    let served = timeout(CLIENT_TIMEOUT, async {
        // Held until the upstream has answered, as the proxy holds it until
        // the response is sent.
        let _slot: (Option<OwnedSemaphorePermit>, Option<Permit>) = match &admission {
            Admission::None => (None, None),
            Admission::Fifo(fifo) => (Some(fifo.acquire().await?), None),
            Admission::Lifo(lifo) => (None, Some(lifo.acquire().await.ok()?)),
        };
        let _busy = upstream.acquire().await.ok()?;
        sleep(SERVICE).await;
        Some(())
    })
    .await;
    match served {
        Ok(Some(())) => Outcome::Served(arrival.elapsed()),
        _ => Outcome::Failed(arrival.elapsed()),
    }
}

struct Report {
    offered: usize,
    served: Vec<Duration>,
    failed: Vec<Duration>,
}

/// Offers `load` × capacity and reports the arrivals of a `secs` window.
async fn run(admission: Admission, load: f64, secs: f64) -> Report {
    let upstream = Arc::new(Semaphore::new(CAPACITY));
    let rate = load * CAPACITY as f64 / SERVICE.as_secs_f64();
    let margin = (rate * CLIENT_TIMEOUT.as_secs_f64()) as usize;
    let window = margin..margin + (rate * secs) as usize;
    let start = Instant::now();
    let mut requests = Vec::with_capacity(window.end + margin);
    for i in 0..window.end + margin {
        let arrival = start + Duration::from_secs_f64(i as f64 / rate);
        // Timers tick in milliseconds: arrivals due meanwhile start in a burst.
        if arrival > Instant::now() {
            sleep_until(arrival).await;
        }
        requests.push(tokio::spawn(request(
            admission.clone(),
            Arc::clone(&upstream),
            arrival,
        )));
    }
    let mut report = Report {
        offered: window.len(),
        served: Vec::new(),
        failed: Vec::new(),
    };
    for (i, request) in requests.into_iter().enumerate() {
        let outcome = request.await.expect("request task panicked");
        if !window.contains(&i) {
            continue;
        }
        match outcome {
            Outcome::Served(latency) => report.served.push(latency),
            Outcome::Failed(latency) => report.failed.push(latency),
        }
    }
    report.served.sort_unstable();
    report.failed.sort_unstable();
    report
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((last as f64) * p).round() as usize])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

fn main() {
    let secs: f64 = std::env::var("OVERLOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let scenarios = [
        (
            "unloaded (0.5×), no admission control",
            0.5,
            Admission::None,
        ),
        ("2×, no admission control", 2.0, Admission::None),
        ("2×, FIFO queue 50", 2.0, Admission::fifo(CAPACITY)),
        ("2×, LIFO queue 50", 2.0, Admission::lifo(CAPACITY)),
        ("2×, FIFO queue 500", 2.0, Admission::fifo(10 * CAPACITY)),
        ("2×, LIFO queue 500", 2.0, Admission::lifo(10 * CAPACITY)),
    ];
    println!(
        "upstream: {CAPACITY} at once × {} ms; admission: max_concurrency {CAPACITY}, \
         timeout {} s; clients give up after {} s; {secs} s measured per scenario\n",
        SERVICE.as_millis(),
        QUEUE_TIMEOUT.as_secs(),
        CLIENT_TIMEOUT.as_secs(),
    );
    println!("| scenario | offered | served | p50 ms | p99 ms | p99 / unloaded p99 | failures: p50 ms to fail |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut unloaded_p99 = None;
    for (name, load, admission) in scenarios {
        let report = runtime.block_on(run(admission, load, secs));
        let p99 = percentile(&report.served, 0.99);
        let unloaded = *unloaded_p99.get_or_insert(p99);
        let ratio = match (p99, unloaded) {
            (Some(p99), Some(base)) => format!("{:.2}", p99.as_secs_f64() / base.as_secs_f64()),
            _ => "-".into(),
        };
        println!(
            "| {name} | {} | {:.1} % | {} | {} | {ratio} | {} |",
            report.offered,
            100.0 * report.served.len() as f64 / report.offered as f64,
            ms(percentile(&report.served, 0.5)),
            ms(p99),
            ms(percentile(&report.failed, 0.5)),
        );
    }
}
