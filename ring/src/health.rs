//! Passive health checking: endpoints that fail to connect N times in a row
//! are ejected for a back-off period, then readmitted on probation.
//!
//! State lives in each registry [`Endpoint`] as plain atomics, so it survives
//! ring rebuilds and is shared by every route using the address. Time is the
//! caller's monotonic clock in milliseconds; this crate never reads a clock.
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::balancer::{Balancer, Pick, PickContext};
use crate::exclude::Exclude;
use crate::pick::{pick, Soft};

/// When to eject an endpoint, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive connection failures that eject an endpoint (≥ 1).
    pub consecutive_failures: u32,
    /// First ejection period, in milliseconds; each ejection without a
    /// success in between doubles it.
    pub eject_for_ms: u64,
    /// Longest ejection period, in milliseconds.
    pub max_eject_for_ms: u64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            consecutive_failures: 3,
            eject_for_ms: 10_000,
            max_eject_for_ms: 60_000,
        }
    }
}

impl HealthPolicy {
    /// The ejection period after `streak` earlier ejections without a
    /// success: `eject_for × 2^streak`, capped at `max_eject_for`.
    pub fn period_ms(&self, streak: u32) -> u64 {
        let doubled = self
            .eject_for_ms
            .checked_shl(streak.min(63))
            .filter(|p| p >> streak.min(63) == self.eject_for_ms)
            .unwrap_or(u64::MAX);
        doubled.min(self.max_eject_for_ms.max(self.eject_for_ms))
    }
}

/// One endpoint's passive health: consecutive failures, the end of its
/// current ejection and how many ejections came without a success between.
///
/// A readmitted endpoint (its ejection over, `streak > 0`) is on probation:
/// its next failure ejects it again, for twice as long; its next success
/// clears the streak.
#[derive(Debug, Default)]
pub struct Health {
    failures: AtomicU32,
    /// Milliseconds on the caller's clock; 0 when never ejected.
    ejected_until: AtomicU64,
    streak: AtomicU32,
}

impl Health {
    /// Whether the endpoint is ejected at `now_ms`.
    #[inline]
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now_ms
    }

    /// Milliseconds of ejection left at `now_ms` (0 when admitted).
    pub fn ejected_for_ms(&self, now_ms: u64) -> u64 {
        self.ejected_until
            .load(Ordering::Relaxed)
            .saturating_sub(now_ms)
    }

    /// Consecutive failures counted towards the next ejection.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Ejections since the last success.
    pub fn streak(&self) -> u32 {
        self.streak.load(Ordering::Relaxed)
    }

    /// Records a connection failure at `now_ms`; returns the ejection period
    /// when this call ejected the endpoint. Failures while already ejected
    /// (requests picked before the ejection, or a pool whose endpoints are all
    /// ejected) do not count: they would only stretch the ejection.
    pub fn record_failure(&self, now_ms: u64, policy: &HealthPolicy) -> Option<u64> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until > now_ms {
            return None;
        }
        let streak = self.streak.load(Ordering::Relaxed);
        let threshold = if streak > 0 {
            1
        } else {
            policy.consecutive_failures.max(1)
        };
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < threshold {
            return None;
        }
        let period = policy.period_ms(streak);
        let next = now_ms.saturating_add(period).max(1);
        // Of racing failures, one ejects; the others see it done.
        self.ejected_until
            .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        self.failures.store(0, Ordering::Relaxed);
        self.streak.fetch_add(1, Ordering::Relaxed);
        Some(period)
    }

    /// Records a success (the endpoint answered): the failure count and the
    /// back-off start over. An ejection in force runs its course. Reads before
    /// writing, so the common healthy case writes no shared cache line.
    #[inline]
    pub fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }
}

/// A pick that avoids ejected endpoints at `now_ms` on top of `exclude`.
/// When that leaves no candidate (every endpoint ejected, or only ejected ones
/// untried), ejection is ignored: a degraded pool keeps serving rather than
/// failing every request. For consistent hashing an ejected owner's keys go to
/// the next admitted endpoint clockwise, and come back on readmission.
pub fn pick_admitted(
    balancer: &dyn Balancer,
    ctx: &PickContext,
    exclude: &dyn Exclude,
    now_ms: u64,
) -> Option<Pick> {
    let soft = Soft {
        now_ms,
        health: true,
        fade_in: None,
    };
    pick(balancer, ctx, exclude, soft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::{build, hash_key, Algorithm, HashRing, NoExclusion};
    use std::sync::Arc;

    const POLICY: HealthPolicy = HealthPolicy {
        consecutive_failures: 3,
        eject_for_ms: 1_000,
        max_eject_for_ms: 5_000,
    };

    #[test]
    fn ejects_after_n_consecutive_failures_only() {
        let h = Health::default();
        assert_eq!(h.record_failure(100, &POLICY), None);
        assert_eq!(h.record_failure(101, &POLICY), None);
        assert!(!h.is_ejected(102));
        assert_eq!(h.record_failure(102, &POLICY), Some(1_000));
        assert!(h.is_ejected(102) && h.is_ejected(1_101));
        assert!(!h.is_ejected(1_102), "readmitted when the period ends");
        assert_eq!(h.ejected_for_ms(602), 500);
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(h.streak(), 1);
    }

    #[test]
    fn a_success_resets_the_count() {
        let h = Health::default();
        for round in 0..5 {
            assert_eq!(h.record_failure(round, &POLICY), None);
            assert_eq!(h.record_failure(round, &POLICY), None);
            h.record_success();
            assert_eq!(h.consecutive_failures(), 0);
        }
        assert!(!h.is_ejected(10));
    }

    #[test]
    fn failures_while_ejected_do_not_count() {
        let h = Health::default();
        for _ in 0..3 {
            h.record_failure(0, &POLICY);
        }
        for t in [1, 500, 999] {
            assert_eq!(h.record_failure(t, &POLICY), None);
        }
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(h.ejected_for_ms(0), 1_000, "not stretched");
    }

    #[test]
    fn probation_doubles_the_back_off_up_to_the_cap() {
        let h = Health::default();
        let mut now = 0;
        for _ in 0..3 {
            h.record_failure(now, &POLICY);
        }
        let mut periods = vec![1_000];
        // Each readmission fails its first trial: ejected again at once.
        for _ in 0..5 {
            now += h.ejected_for_ms(now);
            assert!(!h.is_ejected(now));
            periods.push(
                h.record_failure(now, &POLICY)
                    .expect("one failure re-ejects"),
            );
        }
        assert_eq!(periods, [1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
    }

    #[test]
    fn a_successful_trial_readmits_for_good() {
        let h = Health::default();
        for _ in 0..3 {
            h.record_failure(0, &POLICY);
        }
        h.record_failure(1_000, &POLICY)
            .expect("re-ejected for 2 s");
        assert!(h.is_ejected(2_999));
        h.record_success();
        assert_eq!(h.streak(), 0);
        // Off probation: one failure no longer ejects, three do, for the base period.
        assert_eq!(h.record_failure(3_000, &POLICY), None);
        assert_eq!(h.record_failure(3_000, &POLICY), None);
        assert_eq!(h.record_failure(3_000, &POLICY), Some(1_000));
    }

    #[test]
    fn period_saturates_instead_of_overflowing() {
        let huge = HealthPolicy {
            consecutive_failures: 1,
            eject_for_ms: u64::MAX / 3,
            max_eject_for_ms: u64::MAX,
        };
        assert_eq!(huge.period_ms(0), u64::MAX / 3);
        assert_eq!(huge.period_ms(2), u64::MAX);
        assert_eq!(huge.period_ms(200), u64::MAX);
        // A cap below the base never shortens the base.
        let odd = HealthPolicy {
            max_eject_for_ms: 10,
            ..POLICY
        };
        assert_eq!(odd.period_ms(3), 1_000);
        let h = Health::default();
        assert_eq!(h.record_failure(u64::MAX - 5, &huge), Some(u64::MAX / 3));
        assert!(h.is_ejected(u64::MAX - 1));
    }

    #[test]
    fn concurrent_failures_eject_exactly_once() {
        for _ in 0..50 {
            let h = Arc::new(Health::default());
            let ejections: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let h = Arc::clone(&h);
                        s.spawn(move || {
                            (0..100)
                                .filter(|_| h.record_failure(7, &POLICY).is_some())
                                .count()
                        })
                    })
                    .collect();
                handles.into_iter().map(|t| t.join().unwrap()).sum()
            });
            assert_eq!(ejections, 1);
            assert!(h.is_ejected(7) && !h.is_ejected(1_007));
            assert_eq!(h.streak(), 1);
        }
    }

    #[test]
    fn concurrent_successes_and_failures_keep_state_consistent() {
        let h = Arc::new(Health::default());
        std::thread::scope(|s| {
            for t in 0..4 {
                let h = Arc::clone(&h);
                s.spawn(move || {
                    for i in 0..10_000u64 {
                        if (i + t) % 2 == 0 {
                            h.record_success();
                        } else {
                            h.record_failure(i, &POLICY);
                        }
                    }
                });
            }
        });
        h.record_success();
        assert_eq!((h.consecutive_failures(), h.streak()), (0, 0));
    }

    fn eject(endpoint: &crate::Endpoint, now: u64) {
        for _ in 0..3 {
            endpoint.health().record_failure(now, &POLICY);
        }
        assert!(endpoint.health().is_ejected(now));
    }

    #[test]
    fn every_algorithm_avoids_ejected_endpoints() {
        let registry = Registry::new();
        let addrs: Vec<String> = (0..4).map(|i| format!("http://10.0.0.{i}:80")).collect();
        let endpoints: Vec<_> = addrs.iter().map(|a| registry.endpoint(a)).collect();
        eject(&endpoints[2], 0);
        for algorithm in Algorithm::ALL {
            let b = build(algorithm, endpoints.clone(), 2.0);
            for i in 0..400u64 {
                let ctx = PickContext {
                    key_hash: hash_key(format!("k{i}").as_bytes()),
                    random: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                };
                let pick = pick_admitted(&*b, &ctx, &NoExclusion, 10).unwrap();
                assert_ne!(pick.endpoint, 2, "{algorithm}");
                // Readmitted once the period is over.
                let later = pick_admitted(&*b, &ctx, &NoExclusion, 1_000).unwrap();
                if algorithm == Algorithm::ConsistentHash {
                    assert_eq!(later.endpoint, b.pick(&ctx, &NoExclusion).unwrap().endpoint);
                }
            }
        }
    }

    #[test]
    fn consistent_hash_moves_only_the_ejected_owners_keys_clockwise() {
        let registry = Registry::new();
        let endpoints: Vec<_> = (0..5)
            .map(|i| registry.endpoint(&format!("http://10.0.1.{i}:80")))
            .collect();
        let ring = HashRing::new(endpoints.clone());
        let b = build(Algorithm::ConsistentHash, endpoints.clone(), 2.0);
        eject(&endpoints[1], 0);
        let mut moved = 0;
        for i in 0..2_000 {
            let key_hash = hash_key(format!("key-{i}").as_bytes());
            let ctx = PickContext {
                key_hash,
                random: 0,
            };
            let owner = ring.owner(key_hash).unwrap();
            let pick = pick_admitted(&*b, &ctx, &NoExclusion, 5).unwrap();
            if owner == 1 {
                moved += 1;
                let next = ring.owner_among(key_hash, &[1usize][..]).unwrap();
                assert_eq!(pick.endpoint, next, "to the clockwise neighbour");
            } else {
                assert_eq!(pick.endpoint, owner, "other keys stay");
            }
            assert_eq!(
                pick_admitted(&*b, &ctx, &NoExclusion, 1_000)
                    .unwrap()
                    .endpoint,
                owner,
                "back on readmission"
            );
        }
        assert!(moved > 100, "endpoint 1 owned {moved} keys");
    }

    #[test]
    fn round_robin_keeps_rotating_evenly_over_an_all_ejected_pool() {
        let registry = Registry::new();
        let endpoints: Vec<_> = (0..2)
            .map(|i| registry.endpoint(&format!("http://10.0.3.{i}:80")))
            .collect();
        endpoints.iter().for_each(|e| eject(e, 0));
        let b = build(Algorithm::RoundRobin, endpoints, 1.0);
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                pick_admitted(&*b, &PickContext::default(), &NoExclusion, 1)
                    .unwrap()
                    .endpoint
            })
            .collect();
        assert_eq!(picks, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn an_all_ejected_pool_ignores_ejection() {
        let registry = Registry::new();
        let endpoints: Vec<_> = (0..3)
            .map(|i| registry.endpoint(&format!("http://10.0.2.{i}:80")))
            .collect();
        for e in &endpoints {
            eject(e, 0);
        }
        for algorithm in Algorithm::ALL {
            let b = build(algorithm, endpoints.clone(), 2.0);
            let twin = build(algorithm, endpoints.clone(), 2.0);
            for i in 0..6 {
                let ctx = PickContext {
                    key_hash: hash_key(&[i]),
                    random: u64::from(i) * 7919,
                };
                assert_eq!(
                    pick_admitted(&*b, &ctx, &NoExclusion, 1),
                    twin.pick(&ctx, &NoExclusion),
                    "{algorithm}: as if none were ejected"
                );
            }
            let ctx = PickContext {
                key_hash: 42,
                random: 7,
            };
            // Tried endpoints stay excluded even then.
            let all_tried = |_: usize| true;
            assert_eq!(pick_admitted(&*b, &ctx, &all_tried, 1), None);
            let tried = |i: usize| i != 1;
            assert_eq!(pick_admitted(&*b, &ctx, &tried, 1).unwrap().endpoint, 1);
        }
    }
}
