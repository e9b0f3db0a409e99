//! How long a failed list or watch waits before it is tried again.

use std::time::Duration;

use kube::runtime::utils::Backoff;
use kube::runtime::watcher::DefaultBackoff;

/// Retry pacing for a Service's watch after an error.
#[derive(Clone, Copy, Debug, Default)]
pub enum RetryBackoff {
    /// kube's client-go-like default: 0.8 s doubling to 30 s, with jitter; kind to a struggling
    /// API server when hundreds of proxy replicas lose it at once.
    #[default]
    KubeDefault,
    /// Doubling from `min` to `max`, no jitter (tests, small clusters).
    Exponential { min: Duration, max: Duration },
}

impl RetryBackoff {
    pub(super) fn build(self) -> Box<dyn Backoff> {
        match self {
            RetryBackoff::KubeDefault => Box::new(DefaultBackoff::default()),
            RetryBackoff::Exponential { min, max } => Box::new(Doubling {
                min,
                max,
                next: min,
            }),
        }
    }
}

struct Doubling {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        Some(delay)
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = RetryBackoff::Exponential {
            min: ms(100),
            max: ms(350),
        }
        .build();
        let delays: Vec<_> = backoff.by_ref().take(4).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350)]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(ms(100)));
    }
}
