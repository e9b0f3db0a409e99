//! The route of a request (matched once), its hash key, and its admission
//! through the LIFO queues.
use std::cell::RefCell;

use ringress_ring::{hash_key, Algorithm};
use ringress_routes::{BackendTarget, Match, RequestParts};

use crate::data::lifo::{Permit, Rejection};
use crate::data::plane::DataPlane;
use crate::data::policy::error::{ErrorKind, ProxyError};
use crate::data::table::{RouteRuntime, Runtime};

/// A request the route table sends to endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Routed {
    /// Index into `Runtime::routes`.
    pub route: usize,
    /// The hash of the route's key (consistent-hash routes; 0 on others).
    pub key_hash: u64,
}

/// A request the proxy answers itself, and the route it matched (for metrics).
#[derive(Debug, Clone, Copy)]
pub struct Unrouted {
    pub route: Option<usize>,
    pub error: ProxyError,
}

/// Matches `request` against the table in force, once.
pub fn route<R: RequestParts>(runtime: &Runtime, request: &R) -> Result<Routed, Unrouted> {
    let Some(m) = runtime.table.find(request) else {
        return Err(Unrouted {
            route: None,
            error: ProxyError::new(ErrorKind::NoRoute),
        });
    };
    // `runtime.routes` runs parallel to the table's routes.
    let index = m.index;
    let Some(rr) = runtime.routes.get(index) else {
        return Err(Unrouted {
            route: None,
            error: ProxyError::new(ErrorKind::Internal),
        });
    };
    let fail = |kind| {
        Err(Unrouted {
            route: Some(index),
            error: ProxyError::new(kind),
        })
    };
    match &rr.pool {
        None => match rr.route.backend.target {
            BackendTarget::Status(code) => fail(ErrorKind::StatusRoute(code)),
            _ => fail(ErrorKind::Internal),
        },
        Some(pool) if pool.balancer.endpoints().is_empty() => fail(ErrorKind::NoEndpoints),
        Some(_) => Ok(Routed {
            route: index,
            key_hash: key_hash_of(rr, &m, request),
        }),
    }
}

thread_local! {
    /// Reused key buffer: resolving a template allocates nothing per request.
    static KEY: RefCell<String> = RefCell::new(String::with_capacity(64));
}

/// The hash of the request's key on a consistent-hash route (0 on others).
fn key_hash_of<R: RequestParts>(rr: &RouteRuntime, m: &Match<'_, '_>, request: &R) -> u64 {
    match &rr.pool {
        Some(pool) if pool.balancer.algorithm() == Algorithm::ConsistentHash => KEY.with(|key| {
            let mut key = key.borrow_mut();
            rr.route.hash_key(m, request, &mut key);
            hash_key(key.as_bytes())
        }),
        _ => 0,
    }
}

/// LIFO admissions a request holds (listener, route, group) until its
/// response is sent or it is dropped.
#[derive(Default)]
pub struct Permits(#[allow(dead_code)] [Option<Permit>; 3]);

/// Whether a request must pass a LIFO queue.
pub fn queued(plane: &DataPlane, rr: &RouteRuntime) -> bool {
    plane.listener_queue.is_some() || !rr.queues.is_empty()
}

/// Admits a request to `rr` through the listener's queue, then the route's
/// and its group's, in that order.
pub async fn admit(plane: &DataPlane, rr: &RouteRuntime) -> Result<Permits, ProxyError> {
    let mut permits: [Option<Permit>; 3] = Default::default();
    let queues = plane.listener_queue.iter().chain(&rr.queues);
    for (slot, queue) in queues.enumerate() {
        match queue.acquire().await {
            Ok(permit) => permits[slot] = Some(permit),
            Err(Rejection::Full) => return Err(ProxyError::new(ErrorKind::QueueFull)),
            Err(Rejection::Timeout) => return Err(ProxyError::new(ErrorKind::QueueTimeout)),
        }
    }
    Ok(Permits(permits))
}
