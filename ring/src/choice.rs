use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::exclude::Exclude;
use crate::registry::Endpoint;

/// SplitMix64: a tiny, fast generator; callers seed it per pick so this crate
/// needs no global randomness and stays deterministic under test.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; bias is negligible for n ≪ 2^64).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

/// A uniformly drawn candidate: a few direct draws, then an exact count-and-index
/// pass when most endpoints are excluded.
pub(crate) fn uniform_candidate(
    n: usize,
    rng: &mut SplitMix64,
    exclude: &(impl Exclude + ?Sized),
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    for _ in 0..4 {
        let i = rng.below(n);
        if !exclude.excludes(i) {
            return Some(i);
        }
    }
    let candidates = (0..n).filter(|&i| !exclude.excludes(i)).count();
    if candidates == 0 {
        return None;
    }
    (0..n)
        .filter(|&i| !exclude.excludes(i))
        .nth(rng.below(candidates))
}

/// Power of two random choices: two independent uniform draws among the
/// candidates; the one with fewer in-flight requests wins, a tie keeps the first.
#[derive(Debug)]
pub struct PowerOfTwo {
    endpoints: Vec<Arc<Endpoint>>,
}

impl PowerOfTwo {
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        Self { endpoints }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    #[inline]
    pub fn pick(&self, random: u64, exclude: &(impl Exclude + ?Sized)) -> Option<usize> {
        let mut rng = SplitMix64(random);
        let first = uniform_candidate(self.endpoints.len(), &mut rng, exclude)?;
        let second = uniform_candidate(self.endpoints.len(), &mut rng, exclude)?;
        if self.endpoints[second].in_flight() < self.endpoints[first].in_flight() {
            Some(second)
        } else {
            Some(first)
        }
    }
}

/// Each candidate in turn.
#[derive(Debug)]
pub struct RoundRobin {
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// `start` offsets the rotation, so rebuilt rings need not all begin at 0.
    pub fn new(endpoints: Vec<Arc<Endpoint>>, start: usize) -> Self {
        Self {
            endpoints,
            next: AtomicUsize::new(start),
        }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    #[inline]
    pub fn pick(&self, exclude: &(impl Exclude + ?Sized)) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let found = (0..n)
            .map(|step| (start + step) % n)
            .find(|&i| !exclude.excludes(i));
        if found.is_none() {
            // A pick that finds nothing leaves the rotation where it was, so a
            // caller retrying with fewer exclusions still rotates evenly.
            self.next.fetch_sub(1, Ordering::Relaxed);
        }
        found
    }
}

/// A uniformly random candidate.
#[derive(Debug)]
pub struct Random {
    endpoints: Vec<Arc<Endpoint>>,
}

impl Random {
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        Self { endpoints }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    #[inline]
    pub fn pick(&self, random: u64, exclude: &(impl Exclude + ?Sized)) -> Option<usize> {
        uniform_candidate(self.endpoints.len(), &mut SplitMix64(random), exclude)
    }
}
