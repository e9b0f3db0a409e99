//! `ringress-ring`: the load-balancing algorithms of ringress, free of I/O.
//!
//! * [`HashRing`]: Skipper-compatible consistent hashing, 100 fixed positions
//!   per endpoint, with bounded load.
//! * [`PowerOfTwo`], [`RoundRobin`], [`Random`]: the other [`Balancer`]s.
//! * [`Registry`]: in-flight counters keyed by endpoint address, shared by
//!   every route and outliving ring rebuilds; [`InFlightGuard`] keeps them exact.
//! * [`Health`], [`HealthPolicy`], [`pick_admitted`]: passive health checking,
//!   per endpoint, with the caller's clock passed in.
//! * [`FadeIn`] and [`pick`]: new endpoints take their share gradually; the
//!   pick a request gets, with health and fade-in on top of its exclusions.
#![forbid(unsafe_code)]

mod balancer;
mod choice;
mod exclude;
mod fade;
mod hash;
mod health;
mod movement;
mod pick;
mod registry;
mod ring;

pub use balancer::{
    build, Algorithm, Balancer, ConsistentHash, Pick, PickContext, DEFAULT_BALANCE_FACTOR,
};
pub use choice::{PowerOfTwo, Random, RoundRobin, SplitMix64};
pub use exclude::{Exclude, NoExclusion};
pub use fade::FadeIn;
pub use hash::{hash_key, xxh64};
pub use health::{pick_admitted, Health, HealthPolicy};
pub use movement::{Change, ChangeError, Flow, Movement, KEY_SPACE};
pub use pick::{pick, Soft};
pub use registry::{Endpoint, InFlightGuard, Registry};
pub use ring::{HashRing, POSITIONS_PER_ENDPOINT};
