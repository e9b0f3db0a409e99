//! From the marked YAML tree to [`Route`]s, recording every problem with its
//! position and route. One submodule per section of a route.

mod backend;
mod filters;
mod match_section;
mod upstream;

use ringress_ring::{Algorithm, DEFAULT_BALANCE_FACTOR};

use crate::error::RouteError;
use crate::marks::{self, Kind, Node, Pos, Scalar};
use crate::reader::Reader;
use crate::spec::{
    Backend, BackendTarget, Filter, PassiveHealthCheck, Protocol, Route, Timeouts, DEFAULT_RETRIES,
};
use crate::validate::{self, Outline};

const ROUTE_KEYS: &[&str] = &["name", "match", "filters", "backend"];

/// Parses and validates a whole file: the routes in file order, or every
/// error found, sorted by position.
pub(crate) fn parse_file(file: &str, text: &str) -> Result<Vec<Route>, Vec<RouteError>> {
    let mut r = Reader::new(file);
    let root = match marks::load(text) {
        Ok(root) => root,
        Err(e) => {
            r.error(e.pos, e.message);
            return Err(r.errors);
        }
    };
    let missing = "missing the top-level key \"routes\" (a list of routes)";
    let Some(root) = root else {
        r.error(Pos::START, missing);
        return Err(r.errors);
    };
    let Some(top) = r.fields(&root, "the route file", &["routes"]) else {
        return Err(r.errors);
    };
    let Some(list) = top.get("routes") else {
        // After the unknown keys, which may lie further down the file.
        r.error(root.pos, missing);
        return Err(in_file_order(r.errors));
    };
    let items: &[Node] = if list.is_null() {
        &[]
    } else {
        r.list(list, "routes").unwrap_or(&[])
    };
    let mut routes = Vec::with_capacity(items.len());
    let mut outlines = Vec::with_capacity(items.len());
    for item in items {
        let (route, outline) = parse_route(&mut r, item);
        routes.extend(route);
        outlines.push(outline);
    }
    validate::across_routes(&outlines, &mut r);
    if r.errors.is_empty() {
        Ok(routes)
    } else {
        Err(in_file_order(r.errors))
    }
}

/// Stable, so errors at one position keep the order they were found in.
fn in_file_order(mut errors: Vec<RouteError>) -> Vec<RouteError> {
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

fn parse_route(r: &mut Reader<'_>, node: &Node) -> (Option<Route>, Outline) {
    r.route = None;
    let mut outline = Outline {
        name: None,
        lifo_group: None,
    };
    let before = r.errors.len();
    // The name first, so that every later error can carry it.
    let name_node = match &node.kind {
        Kind::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(&k.kind, Kind::Scalar { text, .. } if text == "name"))
            .map(|(_, v)| v),
        _ => None,
    };
    let name = name_node.and_then(|n| match n.scalar() {
        Some(Scalar::Str(s)) => Some(s.to_owned()),
        _ => None,
    });
    r.route = name.clone();
    let Some(fields) = r.fields(node, "a route", ROUTE_KEYS) else {
        return (None, outline);
    };
    match (name_node, &name) {
        (None, _) => r.error(node.pos, "route is missing its \"name\""),
        (Some(n), None) => {
            r.string(n, "name");
        }
        (Some(n), Some(name)) if !validate::is_name(name) => r.error(
            n.pos,
            format!("name must be letters, digits, '-' and '_', got {name:?}"),
        ),
        (Some(n), Some(name)) => outline.name = Some((name.clone(), n.pos)),
    }

    let (matcher, compiled) = match_section::parse_match(r, fields.get("match"));
    let filters = fields
        .get("filters")
        .map(|f| filters::parse_filters(r, f, &compiled.params))
        .unwrap_or_default();
    let backend = match fields.get("backend") {
        Some(b) => backend::parse_backend(r, b),
        None => {
            r.error(
                node.pos,
                "route has no \"backend\" (one of: endpoints, service, status)",
            );
            None
        }
    };

    let mut route = Route {
        name: name.unwrap_or_default(),
        matcher,
        filters: Vec::new(),
        backend: Backend {
            target: BackendTarget::Status(404),
            algorithm: Algorithm::ConsistentHash,
            timeouts: Timeouts::default(),
            retries: DEFAULT_RETRIES,
            passive_health_check: Some(PassiveHealthCheck::default()),
            protocol: Protocol::default(),
            tls: None,
        },
        balance_factor: DEFAULT_BALANCE_FACTOR,
        lifo: None,
        lifo_group: None,
        fade_in: None,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
        compiled,
    };
    for (filter, pos) in filters {
        match &filter {
            Filter::ConsistentHashBalanceFactor(f) => route.balance_factor = *f,
            Filter::Lifo(spec) => route.lifo = Some(*spec),
            Filter::FadeIn(spec) => route.fade_in = Some(*spec),
            Filter::LifoGroup(group) => {
                route.lifo_group = Some(group.clone());
                outline.lifo_group = Some((group.clone(), pos));
            }
            Filter::SetRequestHeader { name, value } => {
                set_header(&mut route.request_headers, name, value)
            }
            Filter::SetResponseHeader { name, value } => {
                set_header(&mut route.response_headers, name, value)
            }
            Filter::ConsistentHashKey(_) => {}
        }
        route.filters.push(filter);
    }
    match backend {
        Some(b) if r.errors.len() == before => {
            route.backend = b;
            (Some(route), outline)
        }
        _ => (None, outline),
    }
}

/// Sets a header as the filters do, one after another: a later filter for the
/// same name replaces the earlier value.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    let name = name.to_ascii_lowercase();
    match headers.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value.to_owned(),
        None => headers.push((name, value.to_owned())),
    }
}
