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

/// Whether a segment is a dot-segment, literal or percent-encoded: `Some(false)`
/// for `.`, `Some(true)` for `..`.
fn dot_segment(seg: &str) -> Option<bool> {
    let b = seg.as_bytes();
    let (mut dots, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b[i..].len() >= 3 && b[i] == b'%' && b[i + 1] == b'2' && b[i + 2] | 0x20 == b'e' {
            i += 3;
        } else {
            return None;
        }
        dots += 1;
        if dots > 2 {
            return None;
        }
    }
    match dots {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// A path that climbs above the root with `..`.
#[derive(Debug, PartialEq, Eq)]
pub struct AboveRoot;

/// The path routes match and the backend receives: dot-segments (`.`, `..`,
/// also as `%2e`) resolved and empty segments (`//`) merged, so a path cannot
/// match one route while a backend that normalises reads it as another's.
/// `Ok(None)` when the path is already normal (the common case, no allocation).
pub fn normalize_path(path: &str) -> Result<Option<String>, AboveRoot> {
    let Some(rest) = path.strip_prefix('/') else {
        return Ok(None); // `*` or an authority: nothing to resolve
    };
    let mut segments = rest.split('/').peekable();
    let mut normal = true;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || dot_segment(seg).is_some() {
            normal = false;
            break;
        }
    }
    if normal {
        return Ok(None);
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match dot_segment(seg) {
            Some(true) => {
                kept.pop().ok_or(AboveRoot)?;
                trailing_slash = last;
            }
            Some(false) => trailing_slash = last,
            None if seg.is_empty() => trailing_slash = last,
            None => {
                kept.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Some(out))
}

/// Whether a raw request header carries a `Content-Length` field. pingora
/// drops `Content-Length` when `Transfer-Encoding` is present (RFC 9112 §6.3),
/// so the conflict is only visible in the bytes as received.
pub fn has_content_length(raw_header: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length";
    raw_header.split(|&b| b == b'\n').any(|line| {
        line.len() > NAME.len()
            && line[..NAME.len()].eq_ignore_ascii_case(NAME)
            && matches!(line[NAME.len()], b':' | b' ' | b'\t')
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_left_alone() {
        for p in [
            "/", "/a", "/a/", "/a/b.c", "/a/.b", "/a/..b", "/a/b%2e", "/%2F..", "*",
        ] {
            assert_eq!(normalize_path(p), Ok(None), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_empty_segments_are_resolved() {
        let cases = [
            ("//admin", "/admin"),
            ("/static/../admin", "/admin"),
            ("/static/%2e%2e/admin", "/admin"),
            ("/static/%2E./admin", "/admin"),
            ("/static/.%2e/admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("/a/%2e/b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a//b//", "/a/b/"),
            ("/a/..", "/"),
            ("//", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), Ok(Some(want.to_string())), "{raw}");
        }
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for p in ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x"] {
            assert_eq!(normalize_path(p), Err(AboveRoot), "{p}");
        }
    }

    #[test]
    fn content_length_is_found_in_raw_headers() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-LENGTH: 4\r\n\r\n";
        assert!(has_content_length(raw));
        assert!(!has_content_length(
            b"POST / HTTP/1.1\r\nX-Content-Length: 4\r\nContent-Lengthy: 1\r\n\r\n"
        ));
    }
}
