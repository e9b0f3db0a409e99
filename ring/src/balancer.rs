use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::choice::{PowerOfTwo, Random, RoundRobin};
use crate::exclude::Exclude;
use crate::registry::Endpoint;
use crate::ring::HashRing;

/// No endpoint may hold more than this multiple of the average in-flight load.
pub const DEFAULT_BALANCE_FACTOR: f64 = 2.0;

/// What a selection may use: the key's ring coordinate (see [`crate::hash_key`])
/// and a fresh random number for the randomised algorithms.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext {
    pub key_hash: u64,
    pub random: u64,
}

/// A selection: the endpoint chosen, and the endpoint the key's ring position
/// names. They differ when bounded load spilled the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub endpoint: usize,
    pub owner: usize,
}

impl Pick {
    pub fn spilled(&self) -> bool {
        self.endpoint != self.owner
    }
}

/// The seam between the algorithms and the data plane. Indices refer to
/// [`Balancer::endpoints`]; a balancer is immutable once built and is replaced
/// whole when its endpoint set or settings change.
pub trait Balancer: Send + Sync + fmt::Debug {
    fn algorithm(&self) -> Algorithm;
    fn endpoints(&self) -> &[Arc<Endpoint>];
    /// A candidate endpoint, or `None` when every endpoint is excluded (or
    /// there are none).
    fn pick(&self, ctx: &PickContext, exclude: &dyn Exclude) -> Option<Pick>;
}

/// Load-balancing algorithms, named as in Skipper's route backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    ConsistentHash,
    PowerOfRandomNChoices,
    RoundRobin,
    Random,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::ConsistentHash,
        Algorithm::PowerOfRandomNChoices,
        Algorithm::RoundRobin,
        Algorithm::Random,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::ConsistentHash => "consistentHash",
            Algorithm::PowerOfRandomNChoices => "powerOfRandomNChoices",
            Algorithm::RoundRobin => "roundRobin",
            Algorithm::Random => "random",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown algorithm {s:?}, expected one of: {}",
                    Algorithm::ALL.map(Algorithm::name).join(", ")
                )
            })
    }
}

/// Consistent hashing with bounded load `factor` (≥ 1; `f64::INFINITY` turns
/// the bound off).
#[derive(Debug)]
pub struct ConsistentHash {
    ring: HashRing,
    factor: f64,
}

impl ConsistentHash {
    pub fn new(endpoints: Vec<Arc<Endpoint>>, factor: f64) -> Self {
        assert!(factor >= 1.0, "balance factor must be >= 1, got {factor}");
        Self {
            ring: HashRing::new(endpoints),
            factor,
        }
    }

    pub fn ring(&self) -> &HashRing {
        &self.ring
    }
}

impl Balancer for ConsistentHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ConsistentHash
    }
    fn endpoints(&self) -> &[Arc<Endpoint>] {
        self.ring.endpoints()
    }
    fn pick(&self, ctx: &PickContext, exclude: &dyn Exclude) -> Option<Pick> {
        let (endpoint, owner) = if self.factor.is_finite() {
            self.ring.pick_bounded(ctx.key_hash, self.factor, exclude)?
        } else {
            let owner = self.ring.owner_among(ctx.key_hash, exclude)?;
            (owner, owner)
        };
        Some(Pick { endpoint, owner })
    }
}

macro_rules! keyless_balancer {
    ($ty:ty, $algorithm:expr, |$this:ident, $ctx:ident, $exclude:ident| $pick:expr) => {
        impl Balancer for $ty {
            fn algorithm(&self) -> Algorithm {
                $algorithm
            }
            fn endpoints(&self) -> &[Arc<Endpoint>] {
                <$ty>::endpoints(self)
            }
            fn pick(&self, $ctx: &PickContext, $exclude: &dyn Exclude) -> Option<Pick> {
                let $this = self;
                let endpoint = $pick?;
                Some(Pick {
                    endpoint,
                    owner: endpoint,
                })
            }
        }
    };
}

keyless_balancer!(
    PowerOfTwo,
    Algorithm::PowerOfRandomNChoices,
    |b, ctx, exclude| b.pick(ctx.random, exclude)
);
keyless_balancer!(RoundRobin, Algorithm::RoundRobin, |b, _ctx, exclude| b
    .pick(exclude));
keyless_balancer!(Random, Algorithm::Random, |b, ctx, exclude| b
    .pick(ctx.random, exclude));

/// Builds the balancer for `algorithm` over `endpoints`. `factor` applies to
/// consistent hashing only.
pub fn build(
    algorithm: Algorithm,
    endpoints: Vec<Arc<Endpoint>>,
    factor: f64,
) -> Arc<dyn Balancer> {
    match algorithm {
        Algorithm::ConsistentHash => Arc::new(ConsistentHash::new(endpoints, factor)),
        Algorithm::PowerOfRandomNChoices => Arc::new(PowerOfTwo::new(endpoints)),
        Algorithm::RoundRobin => Arc::new(RoundRobin::new(endpoints, 0)),
        Algorithm::Random => Arc::new(Random::new(endpoints)),
    }
}
