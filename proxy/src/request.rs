//! Views and edits of HTTP messages shared by the data plane and tests.
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use ringress_routes::RequestParts;

/// A route matcher's view of a pingora request header.
pub struct RequestView<'a> {
    pub req: &'a RequestHeader,
    pub peer: Option<IpAddr>,
}

impl RequestParts for RequestView<'_> {
    #[inline]
    fn method(&self) -> &str {
        self.req.method.as_str()
    }
    #[inline]
    fn host(&self) -> Option<&str> {
        self.req
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.req.uri.host())
    }
    #[inline]
    fn path(&self) -> &str {
        self.req.uri.path()
    }
    #[inline]
    fn query(&self) -> Option<&str> {
        self.req.uri.query()
    }
    #[inline]
    fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.req
            .headers
            .get(lowercase_name)
            .and_then(|v| v.to_str().ok())
    }
    #[inline]
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
/// `Transfer-Encoding` is left to pingora, which re-frames bodies itself.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
];

/// Removes hop-by-hop headers, including those named by `Connection`, but
/// keeps an `Upgrade` handshake (WebSocket) intact.
pub fn strip_hop_by_hop(req: &mut RequestHeader) {
    let upgrade = req.headers.contains_key(header::UPGRADE);
    let named: Vec<String> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade" && t != "close" && t != "keep-alive")
        .collect();
    for name in named {
        req.remove_header(&name);
    }
    for name in &HOP_BY_HOP {
        req.remove_header(name);
    }
    if upgrade {
        let _ = req.insert_header(header::CONNECTION, "upgrade");
    } else {
        req.remove_header(&header::UPGRADE);
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto`/`-Host`.
/// Static names and a shared Host value keep this to one allocation.
pub fn add_forwarded(req: &mut RequestHeader, client: Option<IpAddr>, proto: &'static str) {
    if let Some(host) = req.headers.get(header::HOST).cloned() {
        let _ = req.insert_header("x-forwarded-host", host);
    }
    if let Some(ip) = client {
        use std::io::Write;
        let mut buf = [0u8; 512]; // an XFF chain this long is already suspicious
        let mut out = &mut buf[..];
        let fits = match req.headers.get("x-forwarded-for").map(|v| v.as_bytes()) {
            Some(prior) if !prior.trim_ascii().is_empty() => {
                out.write_all(prior).and_then(|()| write!(out, ", {ip}"))
            }
            _ => write!(out, "{ip}"),
        };
        let written = 512 - out.len();
        // A chain longer than the buffer is kept as it came, plus the client.
        let value = match fits {
            Ok(()) => HeaderValue::from_bytes(&buf[..written]).ok(),
            Err(_) => req
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|prior| HeaderValue::from_str(&format!("{prior}, {ip}")).ok()),
        };
        if let Some(value) = value {
            let _ = req.insert_header("x-forwarded-for", value);
        }
    }
    let _ = req.insert_header("x-forwarded-proto", HeaderValue::from_static(proto));
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

/// A fresh random number for the randomised balancers, without a lock.
#[inline]
pub fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut rng = ringress_ring::SplitMix64(state.get());
        let r = rng.next();
        state.set(rng.0);
        r
    })
}
