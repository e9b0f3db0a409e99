//! Which endpoint a request goes to, and what happens when it fails: the
//! pick (ring with bounded load, P2C, round robin, random), the in-flight
//! count it holds, passive health marks, and the retry budget.
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::Instant;

use ringress_ring::{pick, InFlightGuard, PickContext};

use crate::data::policy::error::{ErrorKind, ProxyError};
use crate::data::table::{ms_since_start, now_ms, RouteRuntime};

/// An endpoint to try.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub index: usize,
    pub addr: SocketAddr,
    pub tls: bool,
}

/// One request's tries at its route's endpoints.
#[derive(Default)]
pub struct Attempts {
    /// Endpoints whose connection failed during this request: never tried again.
    tried: Vec<usize>,
    /// Connection failures so far (the access log's `retries`).
    pub failures: u32,
    /// The endpoint being tried, or that answered.
    pub endpoint: Option<usize>,
    pub upstream_start: Option<Instant>,
    guard: Option<InFlightGuard>,
    /// Bounded load sent the request past its key's owner.
    pub spilled: bool,
    /// An endpoint answered with a usable head.
    pub answered: bool,
    /// Endpoints picked so far (more than one: the request was retried).
    pub tries: u32,
}

impl Attempts {
    /// The next candidate: the balancer's pick among endpoints not tried yet
    /// (skipping ejected ones when the route checks health). Holds the
    /// endpoint's in-flight count until [`Attempts::release`].
    pub fn next(
        &mut self,
        rr: &RouteRuntime,
        key_hash: u64,
        now: Instant,
    ) -> Result<Candidate, ProxyError> {
        let pool = rr
            .pool
            .as_ref()
            .ok_or(ProxyError::new(ErrorKind::Internal))?;
        let tried = &self.tried;
        let exclude = |i: usize| tried.contains(&i) || pool.upstreams[i].addr.is_none();
        let ctx = PickContext {
            key_hash,
            random: random_u64(),
        };
        let pick = pick(
            &*pool.balancer,
            &ctx,
            &exclude,
            rr.soft(ms_since_start(now)),
        );
        let Some(pick) = pick else {
            let kind = match self.tried.is_empty() {
                true => ErrorKind::NoEndpoints,
                false => ErrorKind::AllFailed,
            };
            return Err(ProxyError::new(kind));
        };
        if pick.spilled() {
            self.spilled = true;
            rr.metrics.spills.inc();
        }
        let i = pick.endpoint;
        self.tries += 1;
        let upstream = &pool.upstreams[i];
        self.guard = Some(pool.balancer.endpoints()[i].acquire());
        self.endpoint = Some(i);
        self.upstream_start = Some(now);
        Ok(Candidate {
            index: i,
            addr: upstream.addr.expect("unresolved endpoints are excluded"),
            tls: upstream.tls,
        })
    }

    /// The candidate could not be connected to (refused, connect timeout):
    /// counted for its health, never tried again by this request. The error
    /// is retryable while the route's retry budget lasts.
    pub fn connect_failed(&mut self, rr: &RouteRuntime) -> ProxyError {
        rr.metrics.upstream_failures.inc();
        if let Some(i) = self.endpoint.take() {
            record_failure(rr, i);
            self.tried.push(i);
        }
        self.guard = None;
        self.failures += 1;
        if self.failures <= rr.route.backend.retries {
            rr.metrics.retries.inc();
            ProxyError::retryable(ErrorKind::AllFailed)
        } else {
            ProxyError::new(ErrorKind::AllFailed)
        }
    }

    /// The candidate broke a connection opened for this request before a
    /// usable response head (it accepts but cannot serve), or answered a
    /// head that cannot be forwarded: counted like a failed connect. Not for
    /// a reused connection (the endpoint may have closed it while idle) nor
    /// a timeout (slow, not dead).
    pub fn broke_before_head(&self, rr: &RouteRuntime) {
        if let Some(i) = self.endpoint {
            record_failure(rr, i);
        }
    }

    /// The candidate answered with a usable head.
    pub fn responded(&mut self) {
        self.answered = true;
        if let Some(guard) = &self.guard {
            guard.endpoint().health().record_success();
        }
    }

    /// The response is complete (or abandoned): the endpoint's in-flight
    /// count drops.
    pub fn release(&mut self) {
        self.guard = None;
    }
}

/// Counts a failure of endpoint `i` for the passive health check; an
/// ejection is counted and logged once.
fn record_failure(rr: &RouteRuntime, i: usize) {
    let (Some(policy), Some(pool)) = (&rr.health, &rr.pool) else {
        return;
    };
    let endpoint = &pool.balancer.endpoints()[i];
    if let Some(period) = endpoint.health().record_failure(now_ms(), policy) {
        pool.upstreams[i].ejections.inc();
        log::warn!(
            "endpoint {} ejected for {period}ms after consecutive connection failures (route {})",
            endpoint.addr(),
            rr.route.name
        );
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

/// A fresh random number for the randomised balancers, without a lock.
#[inline]
pub fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut rng = ringress_ring::SplitMix64(state.get());
        let r = rng.next();
        state.set(rng.0);
        r
    })
}
