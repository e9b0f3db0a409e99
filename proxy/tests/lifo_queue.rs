//! LIFO admission queue: ordering, shedding, timeouts, cancellation, config
//! changes, registries and metrics. Real timers (the crate has no tokio
//! `test-util`); outcomes are fixed by the order of events, never by how fast
//! the machine is: arrivals are polled in sequence from the test task, and
//! only waits that nothing else can end are left to time out.
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use ringress::data::lifo::{LifoConfig, LifoMetrics, LifoQueue, LifoRegistry, Permit, Rejection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

const LONG: Duration = Duration::from_secs(3600);

fn config(max_concurrency: usize, max_queue_size: usize, timeout: Duration) -> LifoConfig {
    LifoConfig {
        max_concurrency,
        max_queue_size,
        timeout,
    }
}

/// Polls once, so a test can tell "admitted or rejected at once" from "queued".
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

type Log = Arc<Mutex<Vec<usize>>>;

/// Starts job `label`, returning once it is admitted, queued or rejected, so
/// arrival order is exactly call order. An admitted job appends its label to
/// `log` and holds its permit for `hold`.
async fn arrive(
    queue: &Arc<LifoQueue>,
    label: usize,
    hold: Duration,
    log: &Log,
) -> JoinHandle<Result<(), Rejection>> {
    let (queue, log) = (Arc::clone(queue), Arc::clone(log));
    let (arrived_tx, arrived_rx) = oneshot::channel();
    let job = tokio::spawn(async move {
        let mut acquire = pin!(queue.acquire());
        let first = poll_once(&mut acquire).await;
        let _ = arrived_tx.send(());
        let result = match first {
            Poll::Ready(result) => result,
            Poll::Pending => acquire.await,
        };
        if let Ok(_permit) = &result {
            log.lock().unwrap().push(label);
            sleep(hold).await;
        }
        result.map(drop)
    });
    arrived_rx.await.unwrap();
    job
}

/// Lets every runnable task run before the test goes on (current-thread
/// runtime: ready tasks run before the runtime parks on a timer).
async fn settle() {
    sleep(Duration::from_millis(1)).await;
}

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn logged(log: &Log) -> Vec<usize> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn twenty_arrivals_give_skippers_counts() {
    let timeout = Duration::from_millis(100);
    let queue = LifoQueue::new("t", config(5, 7, timeout), None);
    let start = Instant::now();
    // All 20 arrive in one go: each is polled once, in order, with no yield
    // in between, so no timer can fire before the last has arrived.
    let mut arrivals: Vec<_> = (0..20).map(|_| Box::pin(queue.acquire())).collect();
    let mut permits = Vec::new();
    let mut waiting = Vec::new();
    for (i, arrival) in arrivals.iter_mut().enumerate() {
        match poll_once(arrival).await {
            Poll::Ready(result) => permits.push((i, result.unwrap())),
            Poll::Pending => waiting.push(i),
        }
    }
    assert_eq!(permits.len(), 5);
    assert_eq!(waiting, (5..20).collect::<Vec<_>>());
    // The 8 oldest waiters were pushed out already: ready on the next poll,
    // before any timer has run (the timeout polls the grant first).
    let mut full = Vec::new();
    for &i in &waiting {
        if let Poll::Ready(result) = poll_once(&mut arrivals[i]).await {
            assert_eq!(result.unwrap_err(), Rejection::Full);
            full.push(i);
        }
    }
    assert_eq!(full, (5..13).collect::<Vec<_>>());
    // The newest 7 wait out the timeout; the 5 jobs still hold their slots.
    for arrival in &mut arrivals[13..] {
        assert_eq!(arrival.await.unwrap_err(), Rejection::Timeout);
    }
    assert!(start.elapsed() >= timeout);
    assert_eq!((queue.active(), queue.queued()), (5, 0));
    drop(arrivals);
    drop(permits);
    assert_eq!((queue.active(), queue.queued()), (0, 0));
}

#[tokio::test]
async fn newest_waiter_is_admitted_first() {
    let queue = LifoQueue::new("t", config(1, 10, LONG), None);
    let holder = queue.acquire().await.unwrap();
    let log = log();
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(arrive(&queue, i, Duration::from_millis(10), &log).await);
    }
    assert_eq!(queue.queued(), 5);
    drop(holder);
    for job in jobs {
        assert_eq!(job.await.unwrap(), Ok(()));
    }
    assert_eq!(logged(&log), [4, 3, 2, 1, 0]);
}

#[tokio::test]
async fn oldest_waiter_is_rejected_when_full() {
    let queue = LifoQueue::new("t", config(1, 2, LONG), None);
    let holder = queue.acquire().await.unwrap();
    let log = log();
    let oldest = arrive(&queue, 0, Duration::ZERO, &log).await;
    let middle = arrive(&queue, 1, Duration::ZERO, &log).await;
    let newest = arrive(&queue, 2, Duration::ZERO, &log).await;
    assert_eq!(oldest.await.unwrap(), Err(Rejection::Full));
    assert_eq!(queue.queued(), 2);
    drop(holder);
    assert_eq!(newest.await.unwrap(), Ok(()));
    assert_eq!(middle.await.unwrap(), Ok(()));
    assert_eq!(logged(&log), [2, 1]);
}

#[tokio::test]
async fn zero_queue_size_rejects_at_once() {
    let queue = LifoQueue::new("t", config(1, 0, LONG), None);
    let holder = queue.acquire().await.unwrap();
    let mut second = pin!(queue.acquire());
    assert!(matches!(
        poll_once(&mut second).await,
        Poll::Ready(Err(Rejection::Full))
    ));
    assert_eq!(queue.queued(), 0);
    drop(holder);
    let _again = queue.acquire().await.unwrap();
    assert_eq!(queue.active(), 1);
}

#[tokio::test]
async fn cancelled_waiter_leaves_the_stack() {
    let queue = LifoQueue::new("t", config(1, 5, LONG), None);
    let holder = queue.acquire().await.unwrap();
    let log = log();
    let older = arrive(&queue, 0, Duration::ZERO, &log).await;
    let newer = arrive(&queue, 1, Duration::ZERO, &log).await;
    newer.abort();
    assert!(newer.await.unwrap_err().is_cancelled());
    assert_eq!(queue.queued(), 1);
    // The slot goes to the remaining waiter, not to the cancelled ghost.
    drop(holder);
    assert_eq!(older.await.unwrap(), Ok(()));
    assert_eq!(logged(&log), [0]);
    assert_eq!((queue.active(), queue.queued()), (0, 0));
}

#[tokio::test]
async fn slot_granted_to_a_cancelled_waiter_passes_on() {
    let queue = LifoQueue::new("t", config(1, 5, LONG), None);
    let holder = queue.acquire().await.unwrap();
    let mut older = Box::pin(queue.acquire());
    assert!(poll_once(&mut older).await.is_pending());
    let mut newer = Box::pin(queue.acquire());
    assert!(poll_once(&mut newer).await.is_pending());

    drop(holder); // hands the slot to `newer`, which never sees it:
    assert_eq!((queue.active(), queue.queued()), (1, 1));
    drop(newer);
    assert_eq!((queue.active(), queue.queued()), (1, 0));
    let permit = match poll_once(&mut older).await {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("older waiter not admitted: {:?}", other.map(|r| r.err())),
    };
    drop(older);
    assert_eq!(queue.active(), 1);

    // Same race with nobody left to take the slot over.
    let mut last = Box::pin(queue.acquire());
    assert!(poll_once(&mut last).await.is_pending());
    drop(permit);
    drop(last);
    assert_eq!((queue.active(), queue.queued()), (0, 0));
}

#[tokio::test]
async fn permits_are_released_on_panic_abort_and_error() {
    let queue = LifoQueue::new("t", config(2, 2, LONG), None);

    let q = Arc::clone(&queue);
    let panicked = tokio::spawn(async move {
        let _permit = q.acquire().await.unwrap();
        panic!("handler panicked while holding a permit");
    });
    assert!(panicked.await.unwrap_err().is_panic());
    assert_eq!(queue.active(), 0);

    // The client went away: the task holding the permit is dropped.
    let q = Arc::clone(&queue);
    let (started_tx, started_rx) = oneshot::channel();
    let aborted = tokio::spawn(async move {
        let _permit = q.acquire().await.unwrap();
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
    });
    started_rx.await.unwrap();
    assert_eq!(queue.active(), 1);
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    assert_eq!(queue.active(), 0);

    async fn failing(queue: &Arc<LifoQueue>) -> Result<(), String> {
        let _permit = queue.acquire().await.map_err(|e| e.to_string())?;
        Err("upstream failed".into())
    }
    assert!(failing(&queue).await.is_err());
    assert_eq!((queue.active(), queue.queued()), (0, 0));
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_cancellations_leak_nothing() {
    const CONCURRENCY: usize = 3;
    let queue = LifoQueue::new("t", config(CONCURRENCY, 4, Duration::from_millis(2)), None);
    // Config changes race with everything else.
    let q = Arc::clone(&queue);
    let toggler = tokio::spawn(async move {
        for i in 0u64.. {
            let (concurrency, queue_size) = if i % 2 == 0 { (2, 1) } else { (3, 4) };
            q.set_config(config(concurrency, queue_size, Duration::from_millis(2)));
            tokio::task::yield_now().await;
        }
    });
    for wave in 0..40u64 {
        let mut jobs = Vec::new();
        for i in 0..50u64 {
            let queue = Arc::clone(&queue);
            let mut rng = Rng((wave << 32 | i).wrapping_mul(0x9e37_79b9) + 1);
            jobs.push(tokio::spawn(async move {
                for _ in 0..rng.below(3) {
                    tokio::task::yield_now().await;
                }
                // Cancel some waiters from the inside, at random moments.
                let patience = Duration::from_micros(rng.below(3000));
                let Ok(Ok(permit)) = tokio::time::timeout(patience, queue.acquire()).await else {
                    return;
                };
                assert!(queue.active() <= CONCURRENCY);
                for _ in 0..rng.below(4) {
                    tokio::task::yield_now().await;
                }
                if rng.below(4) == 0 {
                    sleep(Duration::from_millis(1)).await;
                }
                drop(permit);
            }));
        }
        // ... and abort others from the outside, waiting or holding.
        let mut rng = Rng(wave + 7);
        for job in &jobs {
            if rng.below(5) == 0 {
                job.abort();
            }
        }
        for job in jobs {
            let _ = job.await;
        }
    }
    toggler.abort();
    let _ = toggler.await;
    queue.set_config(config(CONCURRENCY, 4, LONG));

    assert_eq!((queue.active(), queue.queued()), (0, 0));
    let mut permits = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut acquire = Box::pin(queue.acquire());
        match poll_once(&mut acquire).await {
            Poll::Ready(Ok(permit)) => permits.push(permit),
            _ => panic!("capacity lost"),
        }
    }
    let mut extra = Box::pin(queue.acquire());
    assert!(poll_once(&mut extra).await.is_pending());
    drop(extra);
    drop(permits);
    assert_eq!((queue.active(), queue.queued()), (0, 0));
}

#[tokio::test]
async fn set_config_keeps_waiters_sheds_oldest_and_admits_newest() {
    let queue = LifoQueue::new("t", config(1, 5, LONG), None);
    let holder = queue.acquire().await.unwrap();
    let log = log();
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(arrive(&queue, i, Duration::from_secs(1), &log).await);
    }
    let mut jobs = jobs.into_iter();

    queue.set_config(config(1, 3, LONG));
    assert_eq!(queue.queued(), 3);
    for _ in 0..2 {
        assert_eq!(jobs.next().unwrap().await.unwrap(), Err(Rejection::Full));
    }

    queue.set_config(config(3, 3, LONG));
    settle().await;
    let mut admitted = logged(&log);
    admitted.sort_unstable();
    assert_eq!(admitted, [3, 4]);
    assert_eq!((queue.active(), queue.queued()), (3, 1));

    // The waiter that survived both changes still gets its turn.
    drop(holder);
    for job in jobs {
        assert_eq!(job.await.unwrap(), Ok(()));
    }
    assert_eq!(logged(&log)[2], 2);
    assert_eq!(queue.config(), config(3, 3, LONG));
}

#[tokio::test]
async fn group_is_shared_by_routes() {
    let groups = LifoRegistry::new(None);
    let route_a = groups.get("search-group", config(1, 5, LONG));
    let route_b = groups.get("search-group", config(1, 5, LONG));
    assert!(Arc::ptr_eq(&route_a, &route_b));
    assert_eq!(groups.len(), 1);

    let permit_a = route_a.acquire().await.unwrap();
    let mut b = Box::pin(route_b.acquire());
    assert!(poll_once(&mut b).await.is_pending());
    drop(permit_a);
    let _permit_b: Permit = b.await.unwrap();
    assert_eq!(route_a.active(), 1);
}

#[tokio::test]
async fn registry_keeps_a_routes_queue_across_reloads() {
    let routes = LifoRegistry::new(None);
    let before = routes.get("search", config(2, 5, LONG));
    let permit = before.acquire().await.unwrap();

    // Reload with new limits: same queue, in-flight count carried over.
    let after = routes.get("search", config(4, 5, LONG));
    assert!(Arc::ptr_eq(&before, &after));
    assert_eq!(after.config(), config(4, 5, LONG));
    assert_eq!(after.active(), 1);

    // Route removed while busy: kept until idle.
    routes.retain(["other"]);
    assert_eq!(routes.len(), 1);
    drop(permit);
    routes.retain(["other"]);
    assert!(routes.is_empty());
    let fresh = routes.get("search", config(4, 5, LONG));
    assert!(!Arc::ptr_eq(&before, &fresh));

    routes.retain(["search"]);
    assert_eq!(routes.len(), 1);
}

fn value(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let family = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == name)
        .unwrap_or_else(|| panic!("{name} not registered"));
    let metric = family
        .get_metric()
        .iter()
        .find(|metric| {
            labels.iter().all(|(k, v)| {
                metric
                    .get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .unwrap_or_else(|| panic!("{name}{labels:?} missing"));
    if name.ends_with("_total") {
        metric.get_counter().get_value()
    } else {
        metric.get_gauge().get_value()
    }
}

#[tokio::test]
async fn metrics_follow_the_queue() {
    let registry = prometheus::Registry::new();
    let metrics = LifoMetrics::new(&registry).unwrap();
    let timeout = Duration::from_millis(100);
    let queue = LifoQueue::new("search", config(1, 1, timeout), Some(&metrics));
    let other = LifoQueue::new("other", config(1, 0, timeout), Some(&metrics));
    let active = |q| value(&registry, "ringress_lifo_active", &[("queue", q)]);
    let queued = |q| value(&registry, "ringress_lifo_queued", &[("queue", q)]);
    let rejected = |q, reason| {
        value(
            &registry,
            "ringress_lifo_rejected_total",
            &[("queue", q), ("reason", reason)],
        )
    };

    let permit = queue.acquire().await.unwrap();
    assert_eq!((active("search"), queued("search")), (1.0, 0.0));
    let log = log();
    let first = arrive(&queue, 0, Duration::ZERO, &log).await;
    assert_eq!(queued("search"), 1.0);
    let second = arrive(&queue, 1, Duration::ZERO, &log).await;
    assert_eq!(first.await.unwrap(), Err(Rejection::Full));
    assert_eq!((queued("search"), rejected("search", "full")), (1.0, 1.0));
    assert_eq!(second.await.unwrap(), Err(Rejection::Timeout));
    assert_eq!(
        (queued("search"), rejected("search", "timeout")),
        (0.0, 1.0)
    );
    drop(permit);
    assert_eq!(active("search"), 0.0);

    let _held = other.acquire().await.unwrap();
    assert_eq!(other.acquire().await.unwrap_err(), Rejection::Full);
    assert_eq!(active("other"), 1.0);
    assert_eq!(rejected("other", "full"), 1.0);
    assert_eq!(rejected("other", "timeout"), 0.0);
    assert_eq!(rejected("search", "full"), 1.0);
}

#[test]
fn rejections_read_well() {
    assert_eq!(Rejection::Full.to_string(), "queue full");
    assert_eq!(Rejection::Timeout.to_string(), "queue timeout");
    assert_eq!(Rejection::Full.as_str(), "full");
    assert_eq!(Rejection::Timeout.as_str(), "timeout");
}
