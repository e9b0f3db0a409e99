use std::sync::Arc;

use crate::exclude::Exclude;
use crate::hash::xxh64;
use crate::registry::Endpoint;

/// Fixed positions per endpoint, as in Skipper: scaling N → N+1 endpoints
/// moves about 1/(N+1) of the keys.
pub const POSITIONS_PER_ENDPOINT: usize = 100;

/// A consistent-hash ring placed exactly like Skipper's `consistentHash`:
/// position `j` of endpoint `E` is `xxh64("{E}-{j}")`, and a key belongs to the
/// first position at or after `xxh64(key)`, wrapping around.
pub struct HashRing {
    endpoints: Vec<Arc<Endpoint>>,
    /// Position hashes, ascending.
    hashes: Vec<u64>,
    /// `owners[i]` is the endpoint index of position `i`.
    owners: Vec<u32>,
    /// `prefix[p]` is the first position whose top bits are ≥ `p`; narrows the
    /// binary search to a handful of positions (a big ring outgrows the cache).
    prefix: Vec<u32>,
    shift: u32,
}

impl HashRing {
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> Self {
        assert!(
            endpoints.len() <= (u32::MAX as usize) / POSITIONS_PER_ENDPOINT,
            "too many endpoints for one ring"
        );
        let mut positions: Vec<(u64, u32)> =
            Vec::with_capacity(endpoints.len() * POSITIONS_PER_ENDPOINT);
        let suffixes = position_suffixes();
        let mut label = Vec::with_capacity(64);
        for (index, endpoint) in endpoints.iter().enumerate() {
            // The label is "{addr}-{j}"; built in place rather than format! per position.
            label.clear();
            label.extend_from_slice(endpoint.addr().as_bytes());
            let base = label.len();
            for suffix in &suffixes {
                label.truncate(base);
                label.extend_from_slice(suffix.as_bytes());
                positions.push((xxh64(&label), index as u32));
            }
        }
        let (hashes, owners) = sort_positions(positions);

        // About one position per prefix bucket, at most 2^16 buckets.
        let bits = (usize::BITS - hashes.len().leading_zeros()).clamp(1, 16);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut prefix = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for p in 0..buckets as u64 {
            while i < hashes.len() && (hashes[i] >> shift) < p {
                i += 1;
            }
            prefix.push(i as u32);
        }
        prefix.push(hashes.len() as u32);
        Self {
            endpoints,
            hashes,
            owners,
            prefix,
            shift,
        }
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Number of ring positions.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Index of the first position whose hash is ≥ `key_hash`, wrapping to 0.
    #[inline]
    pub fn position(&self, key_hash: u64) -> usize {
        let p = (key_hash >> self.shift) as usize;
        let lo = self.prefix[p] as usize;
        let hi = self.prefix[p + 1] as usize;
        let i = lo + self.hashes[lo..hi].partition_point(|&h| h < key_hash);
        if i == self.hashes.len() {
            0
        } else {
            i
        }
    }

    /// The endpoint owning `key_hash` when load is not considered.
    #[inline]
    pub fn owner(&self, key_hash: u64) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        Some(self.owners[self.position(key_hash)] as usize)
    }

    /// The first non-excluded endpoint clockwise from `key_hash`, ignoring load.
    pub fn owner_among(&self, key_hash: u64, exclude: &(impl Exclude + ?Sized)) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        let start = self.position(key_hash);
        self.walk(start)
            .find(|&endpoint| !exclude.excludes(endpoint))
    }

    /// Bounded-load selection: walk clockwise from the key's position, skipping
    /// excluded endpoints, and take the first whose in-flight ≤
    /// `(Σ in-flight over candidates + 1) / candidates × factor`. A whole turn
    /// without one yields the unbounded choice. Returns `(chosen, owner)`, where
    /// `owner` is the first candidate at the key's position.
    pub fn pick_bounded(
        &self,
        key_hash: u64,
        factor: f64,
        exclude: &(impl Exclude + ?Sized),
    ) -> Option<(usize, usize)> {
        if self.hashes.is_empty() {
            return None;
        }
        let start = self.position(key_hash);
        let mut walk = self.walk(start).filter(|&e| !exclude.excludes(e));
        let owner = walk.next()?;
        let owner_load = self.endpoints[owner].in_flight();
        // An idle owner is always within target: skip summing the ring.
        if owner_load == 0 {
            return Some((owner, owner));
        }
        let (total, candidates) = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|&(i, _)| !exclude.excludes(i))
            .fold((0usize, 0usize), |(sum, n), (_, e)| {
                (sum + e.in_flight(), n + 1)
            });
        let target = (total + 1) as f64 / candidates as f64 * factor;
        if owner_load as f64 <= target {
            return Some((owner, owner));
        }
        let chosen = walk
            .find(|&e| self.endpoints[e].in_flight() as f64 <= target)
            .unwrap_or(owner);
        Some((chosen, owner))
    }

    /// Endpoint indices of one full turn of positions, starting at `start`.
    #[inline]
    fn walk(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        self.owners[start..]
            .iter()
            .chain(&self.owners[..start])
            .map(|&o| o as usize)
    }

    /// Every position as `(hash, endpoint index)`, ascending: a key hash `k`
    /// belongs to the first position with hash ≥ `k`. Read by
    /// [`crate::Movement`] so that it compares exactly the rings in use.
    pub fn positions(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.hashes
            .iter()
            .copied()
            .zip(self.owners.iter().map(|&o| o as usize))
    }
}

impl std::fmt::Debug for HashRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashRing")
            .field("endpoints", &self.endpoints.len())
            .field("positions", &self.hashes.len())
            .finish()
    }
}

/// "-0" … "-99": the per-position label suffixes.
fn position_suffixes() -> Vec<String> {
    (0..POSITIONS_PER_ENDPOINT)
        .map(|j| format!("-{j}"))
        .collect()
}

/// Sorts by (hash, endpoint index) into separate hash and owner arrays.
/// Hashes are uniform, so big rings use one counting pass on the top 16 bits,
/// scattering straight into the final arrays, and then an insertion sort per
/// bucket (about one position each): well under half the time of a comparison
/// sort at 100,000 positions, which keeps rebuilds cheap.
fn sort_positions(mut positions: Vec<(u64, u32)>) -> (Vec<u64>, Vec<u32>) {
    if positions.len() < 4096 {
        positions.sort_unstable();
        return positions.into_iter().unzip();
    }
    let mut starts = vec![0usize; (1 << 16) + 1];
    for &(hash, _) in &positions {
        starts[(hash >> 48) as usize + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut next = starts.clone();
    let mut hashes = vec![0u64; positions.len()];
    let mut owners = vec![0u32; positions.len()];
    for &(hash, owner) in &positions {
        let slot = &mut next[(hash >> 48) as usize];
        hashes[*slot] = hash;
        owners[*slot] = owner;
        *slot += 1;
    }
    for b in 0..1 << 16 {
        for i in starts[b] + 1..starts[b + 1] {
            let mut j = i;
            while j > starts[b] && (hashes[j - 1], owners[j - 1]) > (hashes[j], owners[j]) {
                hashes.swap(j - 1, j);
                owners.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    (hashes, owners)
}
