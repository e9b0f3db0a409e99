//! Event pacing (`--poll-interval`): while a worker is busy, it sleeps out
//! the rest of each interval and then collects every event that arrived,
//! instead of blocking in `epoll_wait` until the next event wakes it.
//!
//! Why: a thread blocked in `epoll_wait` must be woken by whoever sends it
//! data, and a wake-up across CPUs is an inter-processor interrupt, which in
//! a virtual machine is a VM exit charged to the sender (on loopback, the
//! peer's `sendto`). Measured on the bench (BENCHMARKS.md, "Event pacing"),
//! those wake-ups were where ringress's peers lost their time: with pacing
//! the same clients and endpoints complete ~15% more requests and ringress
//! uses less CPU per request, since each wake-up now collects several events.
//!
//! The cost is latency: an event that arrives while the worker sleeps waits
//! up to one interval. So pacing only runs while requests arrive faster than
//! one per [`ACTIVE_GAP`] intervals; between bursts and at low rates the
//! worker blocks in `epoll_wait` as usual and a lone request is not delayed.
//!
//! One pacer task per worker thread (pingora's current-thread runtimes);
//! the state is thread-local, so requests only touch their own worker's
//! (its atomics are only there to let the task be spawned; nothing contends).
use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use prometheus::IntCounter;

/// Pacing starts when a request arrives within this many intervals of the
/// previous one, and stops after this many intervals without a request.
pub const ACTIVE_GAP: u32 = 4;

struct Pacer {
    interval: Duration,
    /// Requests seen on this worker.
    requests: AtomicU64,
    /// Set while the pacer task waits for a busy period.
    dormant: AtomicBool,
    waker: Mutex<Option<Waker>>,
    /// Paced intervals so far (tests read it).
    cycles: AtomicU64,
}

struct Local {
    pacer: Arc<Pacer>,
    last_request: Option<Instant>,
}

thread_local! {
    static PACER: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Notes a request on this worker, starting the worker's pacer on first use.
/// `now` is the request's start, so this reads no clock. Must run on a
/// current-thread runtime (pingora's default here); `interval` zero is off.
/// `polls` counts the intervals paced (a metric).
pub fn on_request(interval: Duration, now: Instant, polls: &IntCounter) {
    if interval.is_zero() {
        return;
    }
    PACER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let local = slot.get_or_insert_with(|| {
            let pacer = Arc::new(Pacer {
                interval,
                requests: AtomicU64::new(0),
                dormant: AtomicBool::new(true),
                waker: Mutex::new(None),
                cycles: AtomicU64::new(0),
            });
            // A current-thread runtime keeps the task on this thread.
            tokio::spawn(run(Arc::clone(&pacer), polls.clone()));
            Local {
                pacer,
                last_request: None,
            }
        });
        let pacer = &local.pacer;
        // Only this thread writes it: no read-modify-write instruction needed.
        pacer
            .requests
            .store(pacer.requests.load(Relaxed) + 1, Relaxed);
        let previous = local.last_request.replace(now);
        if pacer.dormant.load(Relaxed) {
            let busy = previous
                .is_some_and(|p| now.saturating_duration_since(p) < pacer.interval * ACTIVE_GAP);
            if busy {
                pacer.dormant.store(false, Relaxed);
                if let Some(waker) = pacer.waker.lock().expect("pacer waker").take() {
                    waker.wake();
                }
            }
        }
    });
}

/// Paced intervals run so far by this worker thread's pacer.
pub fn cycles() -> u64 {
    PACER.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(0, |l| l.pacer.cycles.load(Relaxed))
    })
}

async fn run(pacer: Arc<Pacer>, polls: IntCounter) {
    loop {
        poll_fn(|cx| {
            if pacer.dormant.load(Relaxed) {
                *pacer.waker.lock().expect("pacer waker") = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let mut seen = pacer.requests.load(Relaxed);
        let mut quiet = 0;
        let mut cycle_start = Instant::now();
        while quiet < ACTIVE_GAP {
            // Blocking the thread is the point: nothing waits in epoll_wait,
            // so senders queue their events without waking anyone.
            let spent = cycle_start.elapsed();
            if spent < pacer.interval {
                std::thread::sleep(pacer.interval - spent);
            }
            cycle_start = Instant::now();
            // Runs what is ready, polls the driver without blocking, runs
            // what that woke, then resumes here.
            tokio::task::yield_now().await;
            pacer.cycles.store(pacer.cycles.load(Relaxed) + 1, Relaxed);
            polls.inc();
            let now = pacer.requests.load(Relaxed);
            quiet = if now == seen { quiet + 1 } else { 0 };
            seen = now;
        }
        pacer.dormant.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_request(interval: Duration, now: Instant) {
        thread_local!(static POLLS: IntCounter = IntCounter::new("polls", "test").unwrap());
        POLLS.with(|polls| super::on_request(interval, now, polls));
    }

    async fn settle() {
        // Real time: the pacer blocks this thread in its sleeps.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    #[tokio::test]
    async fn pacing_runs_only_while_requests_come_close_together_and_then_stops() {
        let interval = Duration::from_millis(1);
        let t0 = Instant::now();
        on_request(interval, t0);
        settle().await;
        assert_eq!(cycles(), 0, "a first request alone does not start pacing");

        on_request(interval, t0 + Duration::from_micros(500));
        settle().await;
        assert_eq!(
            cycles(),
            u64::from(ACTIVE_GAP),
            "paced until four quiet intervals"
        );

        // Long after the last one: a lone request is served without pacing.
        let later = t0 + Duration::from_secs(1);
        on_request(interval, later);
        settle().await;
        assert_eq!(cycles(), u64::from(ACTIVE_GAP));

        on_request(interval, later + Duration::from_millis(3));
        settle().await;
        assert_eq!(cycles(), 2 * u64::from(ACTIVE_GAP));
    }

    #[tokio::test]
    async fn requests_during_pacing_keep_it_going() {
        let interval = Duration::from_millis(1);
        let mut t = Instant::now();
        for _ in 0..40 {
            on_request(interval, t);
            tokio::time::sleep(Duration::from_millis(1)).await;
            t = Instant::now();
        }
        let busy = cycles();
        assert!(busy >= 10, "paced while busy: {busy} intervals");
        settle().await;
        let after = cycles();
        assert!(after <= busy + u64::from(ACTIVE_GAP), "{busy} -> {after}");
        settle().await;
        assert_eq!(cycles(), after, "dormant once quiet");
    }

    #[tokio::test]
    async fn zero_interval_is_off() {
        let now = Instant::now();
        on_request(Duration::ZERO, now);
        on_request(Duration::ZERO, now);
        settle().await;
        assert_eq!(cycles(), 0);
    }
}
