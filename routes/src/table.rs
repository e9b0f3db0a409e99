//! The compiled route table and its lookups.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeStruct;

use crate::error::RouteErrors;
use crate::matcher::Matcher;
use crate::parse::parse_file;
use crate::request::{write_client_address, RequestParts};
use crate::spec::{Filter, Route, MAX_PARAMS};

/// An immutable set of routes, ready for lookups.
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    by_name: HashMap<String, usize>,
    matcher: Matcher,
}

/// A route that matched, with the path parameters it captured (borrowed
/// from the request, no allocation).
#[derive(Clone, Copy)]
pub struct Match<'t, 'r> {
    pub route: &'t Arc<Route>,
    /// Position of `route` in [`RouteTable::routes`].
    pub index: usize,
    params: [&'r str; MAX_PARAMS],
    len: usize,
}

impl<'t, 'r> Match<'t, 'r> {
    /// The segment captured by `{name}` in the route's `path`.
    pub fn param(&self, name: &str) -> Option<&'r str> {
        let names = &self.route.compiled.params;
        let i = names.iter().position(|n| n == name)?;
        (i < self.len).then(|| self.params[i])
    }

    /// Every captured `(name, value)`, in path order.
    pub fn params(&self) -> impl Iterator<Item = (&'t str, &'r str)> + '_ {
        let route: &'t Route = self.route;
        route
            .compiled
            .params
            .iter()
            .map(String::as_str)
            .zip(self.params[..self.len].iter().copied())
    }
}

impl fmt::Debug for Match<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Match")
            .field("route", &self.route.name)
            .field("params", &self.params().collect::<Vec<_>>())
            .finish()
    }
}

impl RouteTable {
    /// Parses and validates a route file. `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<RouteTable, RouteErrors> {
        parse_file(origin, text)
            .map(RouteTable::from_routes)
            .map_err(RouteErrors)
    }

    /// No routes: every lookup misses.
    pub fn empty() -> RouteTable {
        RouteTable::from_routes(Vec::new())
    }

    fn from_routes(routes: Vec<Route>) -> RouteTable {
        let routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        let by_name = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let matcher = Matcher::build(&routes);
        RouteTable {
            routes,
            by_name,
            matcher,
        }
    }

    /// In file order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Route>> {
        self.by_name.get(name).map(|&i| &self.routes[i])
    }

    /// The most specific route that matches `req`, or `None` (the proxy
    /// answers 404). Exact `path` beats `pathPrefix` beats the rest; a
    /// longer prefix beats a shorter one; a literal segment beats a
    /// `{param}` at the same position; then more conditions; then file order.
    pub fn find<'t, 'r, R: RequestParts + ?Sized>(&'t self, req: &'r R) -> Option<Match<'t, 'r>> {
        let found = self.matcher.find(&self.routes, req)?;
        Some(Match {
            route: &self.routes[found.route],
            index: found.route,
            params: found.params,
            len: found.len,
        })
    }
}

impl Route {
    /// Clears `out` and writes the hash key: the last `consistentHashKey`
    /// whose placeholders are all non-empty, else the client address (first
    /// `X-Forwarded-For` element, else the peer IP). `out` is reused across
    /// requests so that resolving a key allocates nothing once warm.
    pub fn hash_key<R: RequestParts + ?Sized>(&self, m: &Match<'_, '_>, req: &R, out: &mut String) {
        for filter in self.filters.iter().rev() {
            if let Filter::ConsistentHashKey(template) = filter {
                if template.resolve(m, req, out) {
                    return;
                }
            }
        }
        out.clear();
        write_client_address(req, out);
    }

    /// Names of the parameters the route's `path` captures, in path order.
    pub fn param_names(&self) -> &[String] {
        &self.compiled.params
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.routes)
            .finish()
    }
}

impl serde::Serialize for RouteTable {
    /// `{"routes": [...]}`, the same shape as the file.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RouteTable", 1)?;
        st.serialize_field("routes", &self.routes)?;
        st.end()
    }
}
