//! Upgraded connections (WebSocket) on pingora's pipeline: their timeouts.
//!
//! pingora times each read of the endpoint with the peer's read timeout
//! (`timeouts.response`) and each read of the client with the session's
//! (60 s), each way on its own. A tunnel is quiet one way for as long as
//! the application likes, so those per-read timeouts would cut live
//! WebSockets. For an upgrade request they are off, and the front door
//! ([`conn_watch::watch_inactivity`]) ends the request instead once no byte
//! passed *either* way for the limit in force: `timeouts.connect +
//! timeouts.response` until the endpoint answers, then, after a 101, the
//! route's `timeouts.tunnelIdle` (HAProxy's `timeout tunnel`).
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use prometheus::IntGauge;
use ringress_routes::Timeouts;

use crate::data::policy::error::{ErrorKind, ProxyError};
use crate::data::transport::conn_watch;

/// An upgrade request's endpoint is chosen: its response head is awaited.
pub fn awaiting_head(peer: &mut HttpPeer, timeouts: &Timeouts) {
    peer.options.read_timeout = None;
    conn_watch::watch_inactivity(timeouts.connect + timeouts.response, false);
}

/// The endpoint answered 101: the connection is a tunnel from here on.
pub fn tunnel_opened(session: &mut Session, timeouts: &Timeouts) {
    session.as_downstream_mut().set_read_timeout(None);
    conn_watch::watch_inactivity(timeouts.tunnel_idle, true);
}

/// The error to answer when the inactivity limit ended the request: before
/// a response head, the endpoint did not answer in time (504). A tunnel
/// ended idle has nothing to answer.
pub fn timed_out() -> Option<ProxyError> {
    match conn_watch::inactivity_expired()? {
        false => Some(ProxyError::new(ErrorKind::UpstreamTimeout)),
        true => None,
    }
}

/// Counts an open tunnel in `ringress_tunnels_open` until dropped.
pub struct OpenTunnel(IntGauge);

impl OpenTunnel {
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.0.dec();
    }
}
