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
//! up to one interval, and an interval with little in it is a wake-up that
//! saved nothing. Pacing only pays when many requests are in flight, so:
//! - it starts only while at least [`MIN_IN_FLIGHT`] requests are in flight
//!   on the worker and requests arrive on average less than [`BUSY_GAP`]
//!   intervals apart (a moving average of the gaps);
//! - it stops after [`QUIET`] intervals without a request;
//! - every [`WINDOW`] intervals it checks that they collected at least
//!   [`MIN_PER_WINDOW`] requests together; if not, it stops and does
//!   not try again for a back-off that doubles (10 ms up to 1 s) while tries
//!   keep failing.
//!
//! Otherwise the worker blocks in `epoll_wait` as usual, and a lone request
//! is not delayed. (Measured, closed loop: with one client connection pacing
//! on every request added ~60 µs and a third more CPU per request; with four,
//! at ~26k requests/s, it halved their throughput, although each interval
//! collected about one request. The rules are for that.)
//!
//! While pacing, a response waits for the end of the pass it was read in
//! ([`end_of_pass`]), so the responses of one pass reach the clients together;
//! with a deep queue ([`DEEP_IN_FLIGHT`]) a pass is [`DEEP_FACTOR`] intervals
//! and a response waits for the next one. (Measured in BENCHMARKS.md: at any
//! depth, holding responses for the next pass cost a third of the throughput
//! at 8 connections; at 64 it took CPU per request from ~0.85x to ~0.75x
//! HAProxy's and p99 below it.)
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

/// Pacing runs while the average gap between requests is under this many intervals.
pub const BUSY_GAP: u32 = 2;
/// ... and at least this many requests are in flight on the worker.
pub const MIN_IN_FLIGHT: usize = 8;
/// From this many requests in flight on the worker the queue is deep: the
/// worker is waiting on its endpoints and clients, not they on it, so a
/// pass can be longer ([`DEEP_FACTOR`] intervals) and a response can wait
/// for the next pass, to leave with more others.
pub const DEEP_IN_FLIGHT: usize = 32;
pub const DEEP_FACTOR: u32 = 4;
/// Pacing stops after this many intervals without a request.
pub const QUIET: u32 = 4;
/// Intervals over which pacing checks that it pays: long enough to ride
/// out the bursts of a closed loop.
pub const WINDOW: u32 = 16;
/// Requests [`WINDOW`] intervals must collect together for pacing to go on:
/// one per interval (measured: pacing paid at 4-6 per interval and cost at
/// under one).
pub const MIN_PER_WINDOW: u32 = 16;
const FIRST_BACK_OFF: Duration = Duration::from_millis(10);
const MAX_BACK_OFF: Duration = Duration::from_secs(1);
/// Weight of the newest gap in the moving average (1/8).
const GAP_SHIFT: u32 = 3;
/// Gaps are counted up to this (a long idle period is just "long").
const MAX_GAP_NS: u64 = 1_000_000_000;

struct Pacer {
    interval: Duration,
    /// Requests seen on this worker.
    requests: AtomicU64,
    /// Whether the average gap between requests is short enough to pace.
    busy: AtomicBool,
    /// Set while the pacer task waits for a busy period.
    dormant: AtomicBool,
    /// No new try before this many nanoseconds after `epoch` (after a try that did not pay).
    retry_at_ns: AtomicU64,
    epoch: Instant,
    waker: Mutex<Option<Waker>>,
}

struct Local {
    pacer: Arc<Pacer>,
    last_request: Option<Instant>,
    /// Moving average of the gaps between requests, in nanoseconds.
    average_gap_ns: u64,
    /// Requests on this worker between `on_request` and their `InFlight`'s drop.
    in_flight: usize,
    busy_gap_ns: u64,
    /// Responses read in the current pass, waiting to leave at its end.
    writers: Vec<Waker>,
}

thread_local! {
    static PACER: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Notes a request on this worker, starting the worker's pacer on first use.
/// `now` is the request's start, so this reads no clock. Must run on a
/// current-thread runtime (pingora's default here); `interval` zero is off.
/// `polls` counts the passes paced (a metric). The request counts as in
/// flight until the returned value is dropped.
#[must_use]
pub fn on_request(interval: Duration, now: Instant, polls: &IntCounter) -> Option<InFlight> {
    if interval.is_zero() {
        return None;
    }
    PACER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let local = slot.get_or_insert_with(|| {
            let pacer = Arc::new(Pacer {
                interval,
                requests: AtomicU64::new(0),
                busy: AtomicBool::new(false),
                dormant: AtomicBool::new(true),
                retry_at_ns: AtomicU64::new(0),
                epoch: now,
                waker: Mutex::new(None),
            });
            // A current-thread runtime keeps the task on this thread.
            tokio::spawn(run(Arc::clone(&pacer), polls.clone()));
            Local {
                pacer,
                last_request: None,
                average_gap_ns: MAX_GAP_NS,
                in_flight: 0,
                writers: Vec::new(),
                busy_gap_ns: (interval * BUSY_GAP).as_nanos().min(u128::from(MAX_GAP_NS)) as u64,
            }
        });
        local.in_flight += 1;
        let pacer = &local.pacer;
        // Only this thread writes it: no read-modify-write instruction needed.
        pacer
            .requests
            .store(pacer.requests.load(Relaxed) + 1, Relaxed);
        if let Some(previous) = local.last_request.replace(now) {
            let gap = now.saturating_duration_since(previous).as_nanos();
            let gap = gap.min(u128::from(MAX_GAP_NS)) as u64;
            local.average_gap_ns += gap >> GAP_SHIFT;
            local.average_gap_ns -= local.average_gap_ns >> GAP_SHIFT;
        }
        let busy = local.average_gap_ns < local.busy_gap_ns && local.in_flight >= MIN_IN_FLIGHT;
        pacer.busy.store(busy, Relaxed);
        if busy && pacer.dormant.load(Relaxed) && pacer.may_try(now) {
            pacer.dormant.store(false, Relaxed);
            if let Some(waker) = pacer.waker.lock().expect("pacer waker").take() {
                waker.wake();
            }
        }
    });
    Some(InFlight(()))
}

/// A request in flight on this worker (see [`on_request`]).
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        // `try_with`: a connection task may be dropped while its thread's
        // locals are being torn down, at shutdown.
        let _ = PACER.try_with(|slot| {
            if let Some(local) = slot.borrow_mut().as_mut() {
                local.in_flight = local.in_flight.saturating_sub(1);
            }
        });
    }
}

/// While this thread's worker paces, waits for the end of the current pass
/// (every ready event read), so that the responses read in one pass leave
/// together; otherwise returns at once. See `forward_response`.
pub async fn end_of_pass() {
    if deep() {
        // After the next poll of the driver, i.e. with the next pass's.
        tokio::task::yield_now().await;
        return;
    }
    let mut queued = false;
    poll_fn(|cx| {
        if queued {
            return Poll::Ready(());
        }
        queued = PACER
            .try_with(|slot| match slot.borrow_mut().as_mut() {
                Some(local) if !local.pacer.dormant.load(Relaxed) => {
                    local.writers.push(cx.waker().clone());
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if queued {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// Whether this worker is pacing with a deep queue.
fn deep() -> bool {
    PACER
        .try_with(|slot| {
            slot.borrow().as_ref().is_some_and(|local| {
                local.in_flight >= DEEP_IN_FLIGHT && !local.pacer.dormant.load(Relaxed)
            })
        })
        .unwrap_or(false)
}

/// Wakes the writers waiting for the end of the pass; whether there were any.
fn wake_writers() -> bool {
    let writers = PACER
        .try_with(|slot| {
            slot.borrow_mut()
                .as_mut()
                .map(|local| std::mem::take(&mut local.writers))
        })
        .ok()
        .flatten()
        .unwrap_or_default();
    let woke = !writers.is_empty();
    writers.into_iter().for_each(Waker::wake);
    woke
}

/// Wakes the writers waiting for the end of the pass; they run before the
/// caller goes on.
async fn release_writers() {
    if !wake_writers() {
        return;
    }
    // Behind them in the run queue (a plain wake, not `yield_now`, which
    // would wait for the next poll of the driver).
    let mut requeued = false;
    poll_fn(|cx| {
        if requeued {
            Poll::Ready(())
        } else {
            requeued = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

impl Pacer {
    fn may_try(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.epoch).as_nanos()
            >= u128::from(self.retry_at_ns.load(Relaxed))
    }

    fn back_off(&self, now: Instant, back_off: Duration) {
        let at = (now + back_off)
            .saturating_duration_since(self.epoch)
            .as_nanos();
        self.retry_at_ns
            .store(at.min(u128::from(u64::MAX)) as u64, Relaxed);
    }
}

/// Should the pacer task ever stop (a panic, its runtime dropping it), the
/// responses waiting for its passes leave and no more wait.
struct ReleaseOnDrop(Arc<Pacer>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.dormant.store(true, Relaxed);
        wake_writers();
    }
}

async fn run(pacer: Arc<Pacer>, polls: IntCounter) {
    let _release = ReleaseOnDrop(Arc::clone(&pacer));
    let mut back_off = FIRST_BACK_OFF;
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
        let mut window = (0, seen);
        let mut cycle_start = Instant::now();
        while quiet < QUIET && pacer.busy.load(Relaxed) {
            // The end of a pass: what was read in it is answered before the sleep.
            release_writers().await;
            // Blocking the thread is the point: nothing waits in epoll_wait,
            // so senders queue their events without waking anyone.
            let interval = if deep() {
                pacer.interval.saturating_mul(DEEP_FACTOR)
            } else {
                pacer.interval
            };
            let spent = cycle_start.elapsed();
            if spent < interval {
                std::thread::sleep(interval - spent);
            }
            cycle_start = Instant::now();
            // Runs what is ready, polls the driver without blocking, runs
            // what that woke, then resumes here.
            tokio::task::yield_now().await;
            polls.inc();
            let now = pacer.requests.load(Relaxed);
            quiet = if now == seen { quiet + 1 } else { 0 };
            seen = now;
            // Counted in passes: with a deep queue the window spans 4x the time,
            // which is fine, a deep queue having requests to spare.
            window.0 += 1;
            if window.0 == WINDOW {
                let collected = now - window.1;
                if collected < u64::from(MIN_PER_WINDOW) {
                    pacer.back_off(cycle_start, back_off);
                    back_off = (back_off * 2).min(MAX_BACK_OFF);
                    break;
                }
                back_off = FIRST_BACK_OFF;
                window = (0, now);
            }
        }
        // Dormant first: no writer waits for a pass from here on.
        pacer.dormant.store(true, Relaxed);
        release_writers().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static POLLS: IntCounter = IntCounter::new("polls", "test").unwrap();
        /// The latest requests stay in flight, enough to allow pacing.
        static HELD: RefCell<std::collections::VecDeque<InFlight>> = RefCell::default();
    }

    fn on_request(interval: Duration, now: Instant) {
        let held = POLLS.with(|polls| super::on_request(interval, now, polls));
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            h.extend(held);
            while h.len() > MIN_IN_FLIGHT {
                h.pop_front();
            }
        });
    }

    /// Paced passes so far on this test's thread (its pacer's metric).
    fn cycles() -> u64 {
        POLLS.with(IntCounter::get)
    }

    async fn settle() {
        // Real time: the pacer blocks this thread in its sleeps.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// `n` requests `gap` apart from `t`, without waiting; returns the last time.
    fn burst(interval: Duration, t: Instant, n: u32, gap: Duration) -> Instant {
        let mut t = t;
        for _ in 0..n {
            t += gap;
            on_request(interval, t);
        }
        t
    }

    #[tokio::test]
    async fn requests_far_apart_never_start_pacing() {
        let interval = Duration::from_millis(1);
        // Three intervals apart on average: no two would share an interval.
        burst(interval, Instant::now(), 200, interval * 3);
        settle().await;
        assert_eq!(cycles(), 0);
    }

    #[tokio::test]
    async fn a_dense_burst_is_paced_and_pacing_stops_when_requests_stop() {
        let interval = Duration::from_millis(1);
        let t = burst(interval, Instant::now(), 100, Duration::from_micros(100));
        settle().await;
        assert_eq!(
            cycles(),
            u64::from(QUIET),
            "paced until {QUIET} quiet intervals"
        );

        // A lone request long after: served without pacing.
        let t = burst(interval, t, 1, Duration::from_secs(1));
        settle().await;
        assert_eq!(cycles(), u64::from(QUIET));

        // Dense again: paced again.
        burst(interval, t, 100, Duration::from_micros(100));
        settle().await;
        assert_eq!(cycles(), 2 * u64::from(QUIET));
    }

    /// Whether `end_of_pass` returns on its first poll.
    async fn answered_at_once() -> bool {
        let mut wait = std::pin::pin!(end_of_pass());
        poll_fn(|cx| Poll::Ready(std::future::Future::poll(wait.as_mut(), cx).is_ready())).await
    }

    #[tokio::test]
    async fn a_response_waits_for_the_end_of_the_pass_only_while_pacing() {
        assert!(answered_at_once().await, "not pacing: no wait");
        let interval = Duration::from_millis(1);
        burst(interval, Instant::now(), 100, Duration::from_micros(100));
        assert!(!answered_at_once().await, "pacing: waits for the pass");
        // Released by the pacer (a wait that never ends would time out here).
        let writers: Vec<_> = (0..10).map(|_| tokio::spawn(end_of_pass())).collect();
        for writer in writers {
            tokio::time::timeout(Duration::from_secs(5), writer)
                .await
                .expect("released within the pass")
                .unwrap();
        }
        // A deep queue: still released, by the next pass.
        let held: Vec<_> = (0..DEEP_IN_FLIGHT)
            .map(|_| POLLS.with(|polls| super::on_request(interval, Instant::now(), polls)))
            .collect();
        assert!(deep());
        tokio::time::timeout(Duration::from_secs(5), end_of_pass())
            .await
            .expect("released by the next pass");
        drop(held);
        settle().await;
        assert!(answered_at_once().await, "dormant again: no wait");
    }

    #[tokio::test]
    async fn requests_during_pacing_keep_it_going() {
        let interval = Duration::from_millis(1);
        let mut t = burst(interval, Instant::now(), 100, Duration::from_micros(100));
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            t = burst(interval, t, 10, Duration::from_micros(100));
        }
        let busy = cycles();
        assert!(busy >= 10, "paced while busy: {busy} intervals");
        settle().await;
        let after = cycles();
        assert!(after <= busy + u64::from(QUIET) + 1, "{busy} -> {after}");
        settle().await;
        assert_eq!(cycles(), after, "dormant once quiet");
    }

    #[tokio::test]
    async fn pacing_that_collects_too_little_backs_off_then_tries_again() {
        let interval = Duration::from_millis(1);
        // Dense, then a request every other interval. The timestamps stay
        // microseconds apart, so the average gap says busy and only the
        // collected count can stop pacing; they also stay behind the clock,
        // so the back-off never ends for them.
        let mut t = burst(interval, Instant::now(), 100, Duration::from_micros(1));
        for i in 0..60 {
            if i % 2 == 0 {
                t = burst(interval, t, 1, Duration::from_micros(1));
            }
            tokio::time::sleep(interval).await;
        }
        let tried = cycles();
        // Paced throughout, ~60 intervals; one try of a window, then backed off.
        assert!(
            (u64::from(WINDOW)..=u64::from(WINDOW) + 4).contains(&tried),
            "{tried} intervals"
        );
        // After the back-off (10 ms), a dense burst is paced again.
        tokio::time::sleep(Duration::from_millis(30)).await;
        burst(interval, Instant::now(), 100, Duration::from_micros(1));
        settle().await;
        assert!(
            cycles() >= tried + u64::from(QUIET),
            "{tried} -> {}",
            cycles()
        );
    }

    #[tokio::test]
    async fn few_requests_in_flight_are_not_paced_however_fast_they_come() {
        let interval = Duration::from_millis(1);
        let mut t = Instant::now();
        for _ in 0..1000 {
            t += Duration::from_micros(1);
            // Each finishes before the next starts: one in flight at a time.
            POLLS.with(|polls| drop(super::on_request(interval, t, polls)));
        }
        settle().await;
        assert_eq!(cycles(), 0);
    }

    #[tokio::test]
    async fn zero_interval_is_off() {
        burst(Duration::ZERO, Instant::now(), 100, Duration::ZERO);
        settle().await;
        assert_eq!(cycles(), 0);
    }
}
