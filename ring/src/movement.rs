//! The cost of a scale event before it happens: the share of the key space
//! whose ring owner changes when the endpoint list changes, and between which
//! endpoints it moves.
//!
//! Exact, not sampled: the positions of both rings together cut the 2^64 key
//! hashes into arcs, and on each ring an arc has a single owner (the first
//! position at or after the arc's end), so summing the arcs whose owners
//! differ gives the moved keys to the last one.
//!
//! Ownership only. Bounded load, passive-health ejection and fade-in depend
//! on the load and health of the moment and redirect requests, not keys; they
//! are not counted here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::iter::Peekable;

use crate::registry::Registry;
use crate::ring::HashRing;

/// Number of key hashes: the whole ring.
pub const KEY_SPACE: u128 = 1 << 64;

/// Keys whose owner changes from one endpoint to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub from: String,
    pub to: String,
    /// Key hashes moving, out of [`KEY_SPACE`].
    pub keys: u128,
}

impl Flow {
    pub fn fraction(&self) -> f64 {
        fraction(self.keys)
    }
}

/// Which keys change owner between two rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Key hashes whose owner changes, out of [`KEY_SPACE`].
    pub moved: u128,
    /// One entry per (from, to) pair of addresses, most keys first.
    pub flows: Vec<Flow>,
}

impl Movement {
    /// The movement from `before` to `after`, or `None` if either ring is
    /// empty (then no key has an owner to move from or to). Endpoints are
    /// told apart by address, so one kept across the change moves nothing.
    pub fn between(before: &HashRing, after: &HashRing) -> Option<Self> {
        if before.is_empty() || after.is_empty() {
            return None;
        }
        let mut pairs: BTreeMap<(&str, &str), u128> = BTreeMap::new();
        for_each_arc(before, after, |keys, from, to| {
            let from = before.endpoints()[from].addr();
            let to = after.endpoints()[to].addr();
            if from != to {
                *pairs.entry((from, to)).or_default() += keys;
            }
        });
        let mut flows: Vec<Flow> = pairs
            .into_iter()
            .map(|((from, to), keys)| Flow {
                from: from.to_string(),
                to: to.to_string(),
                keys,
            })
            .collect();
        // Stable: equal flows stay in address order.
        flows.sort_by_key(|f| std::cmp::Reverse(f.keys));
        let moved = flows.iter().map(|f| f.keys).sum();
        Some(Self { moved, flows })
    }

    /// [`Movement::between`] rings of these addresses, built as the proxy
    /// builds them.
    pub fn of_lists(before: &[impl AsRef<str>], after: &[impl AsRef<str>]) -> Option<Self> {
        let registry = Registry::new();
        let before = ring_of(&registry, before);
        let after = ring_of(&registry, after);
        Self::between(&before, &after)
    }

    /// The share of keys that change owner, 0 to 1.
    pub fn fraction(&self) -> f64 {
        fraction(self.moved)
    }
}

/// The ring the proxy would build for `addrs`.
fn ring_of(registry: &Registry, addrs: &[impl AsRef<str>]) -> HashRing {
    HashRing::new(
        addrs
            .iter()
            .map(|a| registry.endpoint(a.as_ref()))
            .collect(),
    )
}

fn fraction(keys: u128) -> f64 {
    keys as f64 / KEY_SPACE as f64
}

/// Calls `f(keys, owner before, owner after)` once per arc between
/// consecutive positions of both rings (non-empty); the arcs cover every key
/// hash once.
fn for_each_arc(before: &HashRing, after: &HashRing, mut f: impl FnMut(u128, usize, usize)) {
    let mut old = owners(before);
    let mut new = owners(after);
    let mut bounds = union(
        before.positions().map(|(h, _)| h),
        after.positions().map(|(h, _)| h),
    );
    let first = bounds.next().expect("rings are not empty");
    // The arc that wraps past 2^64 ends at the first bound; its length is
    // known once the last bound is.
    let wrap_owners = (old.at(first), new.at(first));
    let mut last = first;
    for bound in bounds {
        f(u128::from(bound - last), old.at(bound), new.at(bound));
        last = bound;
    }
    f(
        KEY_SPACE - u128::from(last - first),
        wrap_owners.0,
        wrap_owners.1,
    );
}

fn owners(ring: &HashRing) -> Owners<impl Iterator<Item = (u64, usize)> + '_> {
    Owners {
        first: ring.positions().next().map_or(0, |(_, owner)| owner),
        rest: ring.positions().peekable(),
    }
}

/// One ring's owners, looked up at ascending key hashes in a single pass.
struct Owners<I: Iterator<Item = (u64, usize)>> {
    rest: Peekable<I>,
    /// The owner of key hashes past the last position (wrapping around).
    first: usize,
}

impl<I: Iterator<Item = (u64, usize)>> Owners<I> {
    /// The owner of key hash `key`, which must not decrease between calls.
    fn at(&mut self, key: u64) -> usize {
        while self.rest.next_if(|&(h, _)| h < key).is_some() {}
        self.rest.peek().map_or(self.first, |&(_, owner)| owner)
    }
}

/// The distinct values of two ascending sequences, ascending.
fn union(a: impl Iterator<Item = u64>, b: impl Iterator<Item = u64>) -> impl Iterator<Item = u64> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let next = match (a.peek(), b.peek()) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) | (None, Some(&x)) => x,
            (None, None) => return None,
        };
        while a.next_if_eq(&next).is_some() || b.next_if_eq(&next).is_some() {}
        Some(next)
    })
}

/// A proposed change of an endpoint list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Remove these addresses, then append those.
    Edit {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// The whole list after the change.
    Replace(Vec<String>),
}

/// Why a change cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// An address to remove is not in the list.
    NotListed(String),
    /// An address to add is in the list already, or given twice.
    AlreadyListed(String),
    EmptyAddress,
    /// The change leaves no endpoint.
    NoEndpoints,
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::NotListed(a) => write!(f, "cannot remove {a}: not an endpoint"),
            ChangeError::AlreadyListed(a) => write!(f, "cannot add {a}: already an endpoint"),
            ChangeError::EmptyAddress => f.write_str("empty endpoint address"),
            ChangeError::NoEndpoints => f.write_str("the change leaves no endpoint"),
        }
    }
}

impl std::error::Error for ChangeError {}

impl Change {
    /// The endpoint list after the change.
    pub fn apply(&self, current: &[String]) -> Result<Vec<String>, ChangeError> {
        let after = match self {
            Change::Replace(list) => list.clone(),
            Change::Edit { add, remove } => edit(current, add, remove)?,
        };
        if after.iter().any(String::is_empty) {
            return Err(ChangeError::EmptyAddress);
        }
        if after.is_empty() {
            return Err(ChangeError::NoEndpoints);
        }
        Ok(after)
    }
}

fn edit(current: &[String], add: &[String], remove: &[String]) -> Result<Vec<String>, ChangeError> {
    let remove: BTreeSet<&String> = remove.iter().collect();
    if let Some(missing) = remove.iter().find(|a| !current.contains(a)) {
        return Err(if missing.is_empty() {
            ChangeError::EmptyAddress
        } else {
            ChangeError::NotListed(missing.to_string())
        });
    }
    let mut after: Vec<String> = current
        .iter()
        .filter(|a| !remove.contains(a))
        .cloned()
        .collect();
    for a in add {
        if after.contains(a) {
            return Err(ChangeError::AlreadyListed(a.clone()));
        }
        after.push(a.clone());
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hash_key, SplitMix64};

    fn addrs(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("http://10.0.0.{i}:8080")).collect()
    }

    /// Key hashes `addr` owns on `ring`, summed from its positions alone.
    fn share(ring: &HashRing, addr: &str) -> u128 {
        let positions: Vec<(u64, usize)> = ring.positions().collect();
        let (first, last) = (positions[0].0, positions[positions.len() - 1].0);
        let mut previous = None;
        let mut owned = 0;
        for &(h, owner) in &positions {
            let arc = match previous {
                None => KEY_SPACE - u128::from(last - first),
                Some(p) => u128::from(h - p),
            };
            previous = Some(h);
            if ring.endpoints()[owner].addr() == addr {
                owned += arc;
            }
        }
        owned
    }

    #[test]
    fn shares_cover_the_key_space() {
        let list = addrs(7);
        let ring = ring_of(&Registry::new(), &list);
        assert_eq!(
            list.iter().map(|a| share(&ring, a)).sum::<u128>(),
            KEY_SPACE
        );
    }

    #[test]
    fn exact_fraction_agrees_with_200k_sampled_keys() {
        let before = addrs(6);
        // Two pods in, one out.
        let change = Change::Edit {
            add: vec!["http://10.0.1.1:8080".into(), "http://10.0.1.2:8080".into()],
            remove: vec![before[2].clone()],
        };
        let after = change.apply(&before).unwrap();
        let registry = Registry::new();
        let (old, new) = (ring_of(&registry, &before), ring_of(&registry, &after));
        let exact = Movement::between(&old, &new).unwrap();

        let samples = 200_000;
        let mut rng = SplitMix64(42);
        let mut sampled: BTreeMap<(String, String), usize> = BTreeMap::new();
        for _ in 0..samples {
            let key = rng.next();
            let from = old.endpoints()[old.owner(key).unwrap()].addr();
            let to = new.endpoints()[new.owner(key).unwrap()].addr();
            if from != to {
                *sampled.entry((from.into(), to.into())).or_default() += 1;
            }
        }
        // 4 standard deviations of a 200k-key estimate of a share ≤ 0.5.
        let tolerance = 4.0 * (0.25f64 / samples as f64).sqrt();
        let total = sampled.values().sum::<usize>() as f64 / samples as f64;
        assert!(
            (exact.fraction() - total).abs() < tolerance,
            "exact {} vs sampled {total}",
            exact.fraction()
        );
        for ((from, to), n) in &sampled {
            let flow = exact
                .flows
                .iter()
                .find(|f| (&f.from, &f.to) == (from, to))
                .unwrap_or_else(|| panic!("a sampled key moved {from} → {to}, not in {exact:?}"));
            let estimate = *n as f64 / samples as f64;
            assert!(
                (flow.fraction() - estimate).abs() < tolerance,
                "{flow:?}: {estimate}"
            );
        }
    }

    #[test]
    fn adding_one_of_n_plus_1_moves_its_share_and_only_to_it() {
        for n in [1, 3, 10, 50] {
            let before = addrs(n);
            let mut fractions = Vec::new();
            for i in 0..20 {
                let new_pod = format!("http://10.0.2.{i}:8080");
                let after = [before.clone(), vec![new_pod.clone()]].concat();
                let m = Movement::of_lists(&before, &after).unwrap();
                assert!(m.flows.iter().all(|f| f.to == new_pod), "{m:?}");
                let ring = ring_of(&Registry::new(), &after);
                assert_eq!(m.moved, share(&ring, &new_pod), "n = {n}");
                fractions.push(m.fraction());
            }
            let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
            let ideal = 1.0 / (n + 1) as f64;
            assert!(
                (mean / ideal - 1.0).abs() < 0.1,
                "n = {n}: {mean} vs {ideal}"
            );
        }
    }

    #[test]
    fn removing_one_moves_exactly_its_share_and_only_from_it() {
        let before = addrs(8);
        let ring = ring_of(&Registry::new(), &before);
        for gone in &before {
            let after = Change::Edit {
                add: vec![],
                remove: vec![gone.clone()],
            }
            .apply(&before)
            .unwrap();
            let m = Movement::of_lists(&before, &after).unwrap();
            assert_eq!(m.moved, share(&ring, gone));
            assert!(m.flows.iter().all(|f| &f.from == gone), "{m:?}");
            assert_eq!(
                m.flows.len(),
                7,
                "its keys spread over every other endpoint"
            );
        }
    }

    #[test]
    fn an_unchanged_list_moves_nothing() {
        let list = addrs(5);
        let m = Movement::of_lists(&list, &list).unwrap();
        assert_eq!(m.moved, 0);
        assert!(m.flows.is_empty());
    }

    #[test]
    fn order_does_not_matter() {
        let before = addrs(9);
        let after = [&before[2..], &["http://10.0.3.1:8080".to_string()]].concat();
        let m = Movement::of_lists(&before, &after).unwrap();
        let mut rng = SplitMix64(7);
        for _ in 0..5 {
            let (mut b, mut a) = (before.clone(), after.clone());
            shuffle(&mut b, &mut rng);
            shuffle(&mut a, &mut rng);
            assert_eq!(Movement::of_lists(&b, &a).unwrap(), m);
        }
        assert_eq!(Movement::of_lists(&after, &after).unwrap().moved, 0);
    }

    fn shuffle(list: &mut [String], rng: &mut SplitMix64) {
        for i in (1..list.len()).rev() {
            list.swap(i, rng.below(i + 1));
        }
    }

    #[test]
    fn disjoint_lists_move_every_key() {
        let m = Movement::of_lists(&addrs(3), &["http://10.0.9.9:8080"]).unwrap();
        assert_eq!(m.moved, KEY_SPACE);
        assert_eq!(m.fraction(), 1.0);
        assert_eq!(m.flows.len(), 3);
    }

    #[test]
    fn the_owners_of_named_keys_follow_the_flows() {
        let before = addrs(4);
        let after = addrs(5);
        let m = Movement::of_lists(&before, &after).unwrap();
        let registry = Registry::new();
        let (old, new) = (ring_of(&registry, &before), ring_of(&registry, &after));
        for k in 0..1000 {
            let key = hash_key(format!("sku-{k}").as_bytes());
            let from = old.endpoints()[old.owner(key).unwrap()].addr();
            let to = new.endpoints()[new.owner(key).unwrap()].addr();
            assert!(
                from == to
                    || m.flows
                        .iter()
                        .any(|f| (f.from.as_str(), f.to.as_str()) == (from, to))
            );
        }
    }

    #[test]
    fn an_empty_ring_has_no_movement() {
        let none: [&str; 0] = [];
        assert_eq!(Movement::of_lists(&none, &addrs(2)), None);
        assert_eq!(Movement::of_lists(&addrs(2), &none), None);
    }

    #[test]
    fn changes_that_cannot_apply() {
        let list = addrs(2);
        let edit = |add: &[&str], remove: &[&str]| Change::Edit {
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            edit(&[], &["http://x"]).apply(&list),
            Err(ChangeError::NotListed("http://x".into()))
        );
        assert_eq!(
            edit(&[&list[0]], &[]).apply(&list),
            Err(ChangeError::AlreadyListed(list[0].clone()))
        );
        assert_eq!(
            edit(&["a", "a"], &[]).apply(&list),
            Err(ChangeError::AlreadyListed("a".into()))
        );
        assert_eq!(
            edit(&[], &[&list[0], &list[1]]).apply(&list),
            Err(ChangeError::NoEndpoints)
        );
        assert_eq!(
            edit(&[""], &[]).apply(&list),
            Err(ChangeError::EmptyAddress)
        );
        assert_eq!(
            edit(&[], &[""]).apply(&list),
            Err(ChangeError::EmptyAddress)
        );
        assert_eq!(
            Change::Replace(vec![]).apply(&list),
            Err(ChangeError::NoEndpoints)
        );
        // Replacing a pod by itself is allowed and moves nothing.
        let same = edit(&[&list[0]], &[&list[0]]).apply(&list).unwrap();
        assert_eq!(Movement::of_lists(&list, &same).unwrap().moved, 0);
    }
}
