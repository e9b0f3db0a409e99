//! A timeout that lives as long as a connection and is moved, not
//! re-registered, for each wait. `tokio::time::timeout` inserts a timer into
//! the runtime's wheel and removes it again on every call: about 0.5k
//! instructions per request on the fast path, whose endpoint reads almost
//! always wait. Moving a registered timer's deadline later is one atomic
//! update; the wheel re-files it only when the old deadline comes round.
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The wait took longer than its timeout.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
}

impl Default for LazyTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl LazyTimer {
    /// Unregistered until its first wait. Must be created inside a runtime
    /// with timers enabled, as `tokio::time::sleep`.
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
        }
    }

    /// Runs `fut` for at most `timeout` from now, like `tokio::time::timeout`.
    pub async fn within<F: Future>(
        &mut self,
        timeout: Duration,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        let mut fut = pin!(fut);
        // Unlike `tokio::time::timeout`, the common case (the future is ready
        // at once) reads no clock and touches no timer.
        let mut armed = false;
        let sleep = &mut self.sleep;
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            if !armed {
                armed = true;
                // Later than the registered deadline: an atomic update. Earlier
                // (a shorter timeout than the last wait's): re-registered.
                sleep.as_mut().reset(Instant::now() + timeout);
            }
            sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_wins_and_a_slow_one_times_out_at_its_own_deadline() {
        let mut timer = LazyTimer::new();
        assert_eq!(
            timer.within(Duration::from_secs(1), async { 7 }).await,
            Ok(7)
        );

        let start = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(
            timer.within(Duration::from_secs(2), slow).await,
            Err(Elapsed)
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // A later wait with a shorter timeout is not held to the earlier deadline,
        // and one with a longer timeout is not cut by it.
        let start = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert_eq!(
            timer.within(Duration::from_millis(300), slow).await,
            Err(Elapsed)
        );
        assert_eq!(start.elapsed(), Duration::from_millis(300));

        let start = Instant::now();
        let done = tokio::time::sleep(Duration::from_secs(3));
        assert_eq!(timer.within(Duration::from_secs(4), done).await, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_that_each_finish_in_time_never_add_up_to_a_timeout() {
        let mut timer = LazyTimer::new();
        let start = Instant::now();
        for _ in 0..10 {
            let step = tokio::time::sleep(Duration::from_millis(900));
            assert_eq!(timer.within(Duration::from_secs(1), step).await, Ok(()));
        }
        assert_eq!(start.elapsed(), Duration::from_secs(9));
    }
}
