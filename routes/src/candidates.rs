//! Routes that share a path rule, bucketed by host, so that a table with
//! many virtual hosts checks only the routes that could serve the request's
//! host. Entries are ranks: a route's position in precedence order (more
//! conditions first, then file order), so lower is better.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::matcher::HostRule;

/// A multiply-rotate hash for the short, trusted keys of the route file
/// (path segments, host names). Lookups never insert, so hostile request
/// paths cannot lengthen a bucket; SipHash's DoS resistance buys nothing
/// here and costs a third of a lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type KeyMap<V> = HashMap<Box<str>, V, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Default)]
pub(crate) struct Candidates {
    /// By lowercase host.
    exact_host: KeyMap<Vec<u32>>,
    /// By wildcard suffix: `*.example.com` under `.example.com`.
    wildcard: KeyMap<Vec<u32>>,
    any_host: Vec<u32>,
}

impl Candidates {
    /// Ranks must be pushed in increasing order.
    pub fn push(&mut self, rank: u32, host: Option<&HostRule>) {
        match host {
            Some(HostRule::Exact(h)) => self.exact_host.entry(h.as_str().into()).or_default(),
            Some(HostRule::Suffix(s)) => self.wildcard.entry(s.as_str().into()).or_default(),
            None => &mut self.any_host,
        }
        .push(rank);
    }

    /// The best rank for which `holds` is true, for a request with the
    /// given lowercase, port-less host. Each list is sorted, so only each
    /// list's first holding entry can win, and a list is abandoned as soon
    /// as its ranks are worse than the best found.
    pub fn best(&self, host: Option<&str>, mut holds: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut best: Option<u32> = None;
        let mut consider = |list: &[u32]| {
            for &rank in list {
                if best.is_some_and(|b| b < rank) {
                    return;
                }
                if holds(rank) {
                    best = Some(rank);
                    return;
                }
            }
        };
        if let Some(host) = host {
            if !self.exact_host.is_empty() {
                if let Some(list) = self.exact_host.get(host) {
                    consider(list);
                }
            }
            if !self.wildcard.is_empty() {
                // Every proper suffix that starts at a dot: a.b.example.com
                // tries .b.example.com, .example.com, .com.
                for (i, _) in host.match_indices('.').filter(|&(i, _)| i > 0) {
                    if let Some(list) = self.wildcard.get(&host[i..]) {
                        consider(list);
                    }
                }
            }
        }
        consider(&self.any_host);
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Candidates {
        let mut c = Candidates::default();
        c.push(0, Some(&HostRule::Exact("a.example.com".into())));
        c.push(1, Some(&HostRule::Suffix(".example.com".into())));
        c.push(2, None);
        c.push(3, Some(&HostRule::Exact("a.example.com".into())));
        c
    }

    #[test]
    fn best_rank_across_buckets() {
        let c = candidates();
        assert_eq!(c.best(Some("a.example.com"), |_| true), Some(0));
        assert_eq!(c.best(Some("a.example.com"), |r| r != 0), Some(1));
        assert_eq!(c.best(Some("b.example.com"), |_| true), Some(1));
        assert_eq!(c.best(Some("x.b.example.com"), |_| true), Some(1));
        assert_eq!(c.best(Some("example.com"), |_| true), Some(2));
        assert_eq!(c.best(None, |_| true), Some(2));
        assert_eq!(c.best(Some("a.example.com"), |r| r == 3), Some(3));
        assert_eq!(c.best(Some("a.example.com"), |_| false), None);
    }

    #[test]
    fn stops_early_once_a_better_rank_holds() {
        let c = candidates();
        let mut checked = Vec::new();
        c.best(Some("a.example.com"), |r| {
            checked.push(r);
            true
        });
        assert_eq!(checked, [0], "ranks 1 and 2 cannot beat 0");
    }
}
