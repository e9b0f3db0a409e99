//! What a finished request leaves behind: its metrics and its access-log line,
//! the same for every transport.
use std::net::IpAddr;
use std::time::Instant;

use crate::data::access_log;
use crate::data::plane::DataPlane;
use crate::data::policy::attempts::Attempts;
use crate::data::table::RouteRuntime;

/// A finished request, as the transport saw it.
pub struct Finished<'a> {
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub client: Option<IpAddr>,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`, as the client spoke.
    pub protocol: &'static str,
    /// `https` when the client came through the TLS listener.
    pub scheme: &'static str,
    /// The status the client got; 0 when the response was cut after its head
    /// or never written (counted as `other`).
    pub status: u16,
    pub start: Instant,
}

/// Counts the request for its route (or `no_route`), observes its duration and
/// its endpoint's latency, and writes its access-log line when enabled.
pub fn finish(
    plane: &DataPlane,
    rr: Option<&RouteRuntime>,
    attempts: &Attempts,
    done: &Finished<'_>,
) {
    let now = Instant::now();
    let elapsed = now.saturating_duration_since(done.start);
    let metrics = rr.map_or(&plane.no_route, |rr| &rr.metrics);
    metrics.count(done.method, done.status);
    match done.status {
        // A tunnel's lifetime says nothing about request latency.
        101 => metrics.observe_tunnel(elapsed.as_secs_f64()),
        _ => metrics.duration.observe(elapsed.as_secs_f64()),
    }
    if attempts.tries > 1 {
        metrics.retried[usize::from(!attempts.answered)].inc();
    }
    let endpoint = match (
        rr.and_then(|rr| rr.pool.as_ref()),
        attempts.endpoint,
        attempts.upstream_start,
    ) {
        (Some(pool), Some(i), Some(t)) => {
            let upstream = now.saturating_duration_since(t);
            pool.upstreams[i].latency.observe(upstream.as_secs_f64());
            Some(pool.balancer.endpoints()[i].addr())
        }
        _ => None,
    };
    if plane.access_log {
        access_log::write(&access_log::Entry {
            client: done.client,
            protocol: done.protocol,
            scheme: done.scheme,
            method: done.method,
            host: done.host,
            path: done.path,
            route: rr.map(|r| r.route.name.as_str()),
            endpoint,
            status: done.status,
            spilled: attempts.spilled,
            retries: attempts.failures,
            duration: elapsed,
        });
    }
}
