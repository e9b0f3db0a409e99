//! Request matching: a trie over path segments for `path` and `pathPrefix`
//! routes, a short ordered list for the rest. A lookup walks at most the
//! request's segments, captures `{param}`s into a fixed array and allocates
//! nothing.

use std::sync::Arc;

use regex::Regex;

use crate::candidates::{Candidates, KeyMap};
use crate::request::{host_without_port, query_param, RequestParts};
use crate::spec::{MatchSpec, Route, MAX_PARAMS};

/// One segment of an exact `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug, Clone, Default)]
pub(crate) enum PathRule {
    #[default]
    Any,
    Exact(Vec<Segment>),
    /// Literal segments; the trailing slash of the file's text is dropped.
    Prefix(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) enum HostRule {
    Exact(String),
    /// `*.example.com` kept as `.example.com`.
    Suffix(String),
}

/// The parts of a route's `match:` prepared for fast checks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Compiled {
    pub path: PathRule,
    /// Names of the `{param}` segments, in path order.
    pub params: Vec<String>,
    pub regex: Option<Regex>,
    /// A literal every path the regex matches starts with, checked first
    /// because it is far cheaper than the regex.
    pub regex_prefix: String,
    pub host: Option<HostRule>,
    /// How many non-path conditions the route has, for precedence.
    pub conditions: usize,
}

/// The path's segments: `/` has none, `/a/` has `a` and an empty one. The
/// leading slash is optional so that odd request targets cannot panic.
pub(crate) fn first_segments(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    (!rest.is_empty()).then_some(rest)
}

/// Splits off the next segment: `(segment, remaining segments)`.
fn next_segment(rest: Option<&str>) -> Option<(&str, Option<&str>)> {
    let rest = rest?;
    Some(match rest.split_once('/') {
        Some((seg, tail)) => (seg, Some(tail)),
        None => (rest, None),
    })
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = first_segments(path);
    std::iter::from_fn(move || {
        let (seg, tail) = next_segment(rest)?;
        rest = tail;
        Some(seg)
    })
}

/// Parses a `path` such as `/products/{id}`: `{name}` must fill a whole
/// segment, names are unique, at most [`MAX_PARAMS`] of them.
pub(crate) fn parse_path(path: &str) -> Result<(Vec<Segment>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut params: Vec<String> = Vec::new();
    for seg in segments(path) {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if !crate::template::is_param_name(name) {
                return Err(format!(
                    "bad parameter {seg:?} in path {path:?}: names are letters, digits and _"
                ));
            }
            if params.iter().any(|p| p == name) {
                return Err(format!(
                    "parameter {{{name}}} appears twice in path {path:?}"
                ));
            }
            params.push(name.to_owned());
            out.push(Segment::Param);
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "bad segment {seg:?} in path {path:?}: a {{param}} must be a whole segment"
            ));
        } else {
            out.push(Segment::Literal(seg.to_owned()));
        }
    }
    if params.len() > MAX_PARAMS {
        return Err(format!(
            "path {path:?} captures {} parameters; at most {MAX_PARAMS} are allowed",
            params.len()
        ));
    }
    Ok((out, params))
}

/// `pathPrefix` segments: `/static/` and `/static` are the same subtree.
/// The literal text right after a leading `^`, up to the first
/// metacharacter: `^/v1/items/[0-9]+` gives `/v1/items/`. Empty when the
/// pattern is not anchored or has an alternation anywhere (which could
/// escape the anchor).
pub(crate) fn anchored_literal_prefix(pattern: &str) -> String {
    let Some(body) = pattern.strip_prefix('^') else {
        return String::new();
    };
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix = String::new();
    for c in body.chars() {
        if "*?{".contains(c) {
            // The quantifier makes the previous character optional.
            prefix.pop();
            break;
        }
        if "\\.+()[]^$#".contains(c) || c.is_whitespace() {
            break;
        }
        prefix.push(c);
    }
    prefix
}

pub(crate) fn parse_prefix(prefix: &str) -> Vec<String> {
    segments(prefix.trim_end_matches('/'))
        .map(str::to_owned)
        .collect()
}

impl Compiled {
    /// Everything but the path, which the trie has already checked. `host`
    /// is lowercase and port-less.
    fn holds<R: RequestParts + ?Sized>(
        &self,
        spec: &MatchSpec,
        req: &R,
        host: Option<&str>,
    ) -> bool {
        if let Some(rule) = &self.host {
            let Some(host) = host else { return false };
            let ok = match rule {
                HostRule::Exact(h) => host == h,
                HostRule::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            };
            if !ok {
                return false;
            }
        }
        if !spec.methods.is_empty() && !spec.methods.iter().any(|m| m == req.method()) {
            return false;
        }
        if !spec
            .headers
            .iter()
            .all(|(name, value)| req.header(name) == Some(value.as_str()))
        {
            return false;
        }
        if !spec.query.is_empty() {
            let query = req.query().unwrap_or("");
            if !spec
                .query
                .iter()
                .all(|(name, value)| query_param(query, name) == Some(value.as_str()))
            {
                return false;
            }
        }
        self.regex.as_ref().is_none_or(|re| {
            let path = req.path();
            path.starts_with(self.regex_prefix.as_str()) && re.is_match(path)
        })
    }
}

#[derive(Debug, Default)]
struct TrieNode {
    literals: KeyMap<u32>,
    param: Option<u32>,
    /// Routes whose `path` ends here.
    exact: Candidates,
    /// Routes whose `pathPrefix` ends here.
    prefix: Candidates,
}

/// The table's routes arranged for lookup. Candidates hold ranks, positions
/// in precedence order; `by_rank` turns them back into route indices.
#[derive(Debug)]
pub(crate) struct Matcher {
    nodes: Vec<TrieNode>,
    /// Routes with neither `path` nor `pathPrefix`.
    rest: Candidates,
    by_rank: Vec<u32>,
}

/// The winner of a lookup: route index and its captures.
pub(crate) struct Found<'r> {
    pub route: usize,
    pub params: [&'r str; MAX_PARAMS],
    pub len: usize,
}

struct Lookup<'a, R: ?Sized> {
    routes: &'a [Arc<Route>],
    by_rank: &'a [u32],
    req: &'a R,
    host: Option<&'a str>,
}

impl<R: RequestParts + ?Sized> Lookup<'_, R> {
    /// The best route among `candidates` whose conditions hold.
    fn first_holding(&self, candidates: &Candidates) -> Option<usize> {
        let index = |rank: u32| self.by_rank[rank as usize] as usize;
        let rank = candidates.best(self.host, |rank| {
            let route = &self.routes[index(rank)];
            route.compiled.holds(&route.matcher, self.req, self.host)
        })?;
        Some(index(rank))
    }
}

/// Longest host name DNS allows; longer Host headers match no host rule.
pub(crate) const MAX_HOST_LEN: usize = 253;

/// The request's host without port, lowercased into `buf`, so that host
/// rules compare and hash bytes directly without allocating.
fn normalized_host<'b>(host: Option<&str>, buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b str> {
    let host = host_without_port(host?);
    let out = buf.get_mut(..host.len())?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

impl Matcher {
    pub fn build(routes: &[Arc<Route>]) -> Matcher {
        // Among routes at the same trie node, more conditions win, then file
        // order; inserting in that order keeps every list sorted.
        let mut by_rank: Vec<u32> = (0..routes.len() as u32).collect();
        by_rank.sort_by_key(|&i| {
            let i = i as usize;
            (std::cmp::Reverse(routes[i].compiled.conditions), i)
        });
        let mut m = Matcher {
            nodes: vec![TrieNode::default()],
            rest: Candidates::default(),
            by_rank,
        };
        for rank in 0..routes.len() {
            let route = &routes[m.by_rank[rank] as usize].compiled;
            let (rank, host) = (rank as u32, route.host.as_ref());
            match &route.path {
                PathRule::Any => m.rest.push(rank, host),
                PathRule::Exact(segs) => {
                    let node = m.insert(segs.iter().map(|s| match s {
                        Segment::Literal(l) => Some(l.as_str()),
                        Segment::Param => None,
                    }));
                    m.nodes[node].exact.push(rank, host);
                }
                PathRule::Prefix(segs) => {
                    let node = m.insert(segs.iter().map(|s| Some(s.as_str())));
                    m.nodes[node].prefix.push(rank, host);
                }
            }
        }
        m
    }

    /// Walks (creating) the path of literal (`Some`) and param (`None`)
    /// segments; returns the final node.
    fn insert<'s>(&mut self, segs: impl Iterator<Item = Option<&'s str>>) -> usize {
        let mut node = 0;
        for seg in segs {
            let next = self.nodes.len() as u32;
            let child = match seg {
                Some(lit) => *self.nodes[node].literals.entry(lit.into()).or_insert(next),
                None => *self.nodes[node].param.get_or_insert(next),
            };
            if child == next {
                self.nodes.push(TrieNode::default());
            }
            node = child as usize;
        }
        node
    }

    /// The best route for `req`: exact paths, then the longest prefix, then
    /// routes without a path rule.
    pub fn find<'r, R: RequestParts + ?Sized>(
        &self,
        routes: &[Arc<Route>],
        req: &'r R,
    ) -> Option<Found<'r>> {
        let path = req.path();
        let mut host_buf = [0u8; MAX_HOST_LEN];
        let lookup = Lookup {
            routes,
            by_rank: &self.by_rank,
            req,
            host: normalized_host(req.host(), &mut host_buf),
        };
        let rest = first_segments(path);
        let mut found = Found {
            route: 0,
            params: [""; MAX_PARAMS],
            len: 0,
        };
        if let Some((route, len)) = self.exact(0, rest, &mut found.params, 0, &lookup) {
            found.route = route;
            found.len = len;
            return Some(found);
        }
        found.params = [""; MAX_PARAMS];
        let route = self
            .prefix(0, rest, &lookup)
            .or_else(|| lookup.first_holding(&self.rest))?;
        found.route = route;
        Some(found)
    }

    /// Depth-first, literal child before param child, so a literal segment
    /// beats a `{param}` at the same position.
    fn exact<'r, R: RequestParts + ?Sized>(
        &self,
        node: usize,
        rest: Option<&'r str>,
        params: &mut [&'r str; MAX_PARAMS],
        len: usize,
        lookup: &Lookup<'_, R>,
    ) -> Option<(usize, usize)> {
        let here = &self.nodes[node];
        let Some((seg, tail)) = next_segment(rest) else {
            return lookup.first_holding(&here.exact).map(|r| (r, len));
        };
        if let Some(&child) = here.literals.get(seg) {
            if let Some(hit) = self.exact(child as usize, tail, params, len, lookup) {
                return Some(hit);
            }
        }
        match here.param {
            // A parameter captures one non-empty segment.
            Some(child) if !seg.is_empty() && len < MAX_PARAMS => {
                params[len] = seg;
                self.exact(child as usize, tail, params, len + 1, lookup)
            }
            _ => None,
        }
    }

    /// The deepest prefix node with a route that holds: the longest prefix.
    fn prefix<R: RequestParts + ?Sized>(
        &self,
        node: usize,
        rest: Option<&str>,
        lookup: &Lookup<'_, R>,
    ) -> Option<usize> {
        let here = &self.nodes[node];
        if let Some((seg, tail)) = next_segment(rest) {
            if let Some(&child) = here.literals.get(seg) {
                if let Some(hit) = self.prefix(child as usize, tail, lookup) {
                    return Some(hit);
                }
            }
        }
        lookup.first_holding(&here.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_like_the_request_path() {
        let all = |p| segments(p).collect::<Vec<_>>();
        assert!(all("/").is_empty());
        assert!(all("").is_empty());
        assert_eq!(all("/a"), ["a"]);
        assert_eq!(all("/a/"), ["a", ""]);
        assert_eq!(all("/a//b"), ["a", "", "b"]);
        assert_eq!(parse_prefix("/static/"), ["static"]);
        assert_eq!(parse_prefix("/static"), ["static"]);
        assert!(parse_prefix("/").is_empty());
    }

    #[test]
    fn regex_literal_prefixes() {
        let cases = [
            ("^/v1/items/[0-9]+", "/v1/items/"),
            ("^/legacy19/[0-9]+$", "/legacy19/"),
            ("^/ab?c", "/a"),
            ("^/ab*", "/a"),
            ("^/a{2}", "/"),
            ("^/ab+", "/ab"),
            ("^/a\\.b", "/a"),
            ("^/a.b", "/a"),
            ("^/a|^/b", ""),
            ("/a", ""),
            ("(?i)^/a", ""),
            ("^", ""),
        ];
        for (pattern, want) in cases {
            assert_eq!(anchored_literal_prefix(pattern), want, "{pattern}");
        }
    }

    #[test]
    fn hosts_are_normalised_without_allocating() {
        let mut buf = [0u8; MAX_HOST_LEN];
        assert_eq!(
            normalized_host(Some("Shop.Example.COM:8080"), &mut buf),
            Some("shop.example.com")
        );
        assert_eq!(normalized_host(Some("[::1]:80"), &mut buf), Some("[::1]"));
        assert_eq!(normalized_host(None, &mut buf), None);
        let long = "a".repeat(MAX_HOST_LEN + 1);
        assert_eq!(normalized_host(Some(&long), &mut buf), None);
    }

    #[test]
    fn path_patterns() {
        let (segs, params) = parse_path("/p/{id}/x/{v_2}").unwrap();
        assert_eq!(params, ["id", "v_2"]);
        assert_eq!(segs[1], Segment::Param);
        assert!(parse_path("/p/{id}/{id}").is_err());
        assert!(parse_path("/p/x{id}").is_err());
        assert!(parse_path("/p/{}").is_err());
        assert!(parse_path("/p/{a-b}").is_err());
        assert!(parse_path("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}").is_ok());
        assert!(parse_path("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}").is_err());
    }
}
