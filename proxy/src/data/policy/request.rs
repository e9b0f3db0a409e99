//! Views and edits of HTTP messages shared by the data plane and tests.
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use ringress_routes::RequestParts;

use crate::data::transport::h1::HOP_BY_HOP;

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

/// Removes hop-by-hop headers, including those named by `Connection`, but
/// keeps an `Upgrade` handshake (WebSocket) intact.
pub fn strip_hop_by_hop(req: &mut RequestHeader) {
    // Most requests carry none of these: one pass over the names decides.
    let any = req
        .headers
        .keys()
        .any(|name| name == header::UPGRADE || HOP_BY_HOP.contains(&name.as_str()));
    if !any {
        return;
    }
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
    for name in HOP_BY_HOP {
        req.remove_header(name);
    }
    if upgrade {
        let _ = req.insert_header(header::CONNECTION, "upgrade");
    } else {
        req.remove_header(&header::UPGRADE);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto`/`-Host`.
/// Static names, a shared Host value and an IP written without `fmt` keep this
/// to one value allocation.
pub fn add_forwarded(req: &mut RequestHeader, client: Option<IpAddr>, proto: &'static str) {
    if let Some(host) = req.headers.get(header::HOST).cloned() {
        let _ = req.insert_header("x-forwarded-host", host);
    }
    if let Some(ip) = client {
        let value = match req.headers.get(&X_FORWARDED_FOR) {
            Some(prior) if !prior.as_bytes().trim_ascii().is_empty() => {
                let mut chain = Vec::with_capacity(prior.len() + 2 + 39);
                chain.extend_from_slice(prior.as_bytes());
                chain.extend_from_slice(b", ");
                write_ip(&mut chain, ip);
                HeaderValue::from_bytes(&chain).ok()
            }
            _ => {
                let mut buf = IpText::default();
                write_ip(&mut buf, ip);
                HeaderValue::from_bytes(buf.as_bytes()).ok()
            }
        };
        if let Some(value) = value {
            let _ = req.insert_header("x-forwarded-for", value);
        }
    }
    let _ = req.insert_header("x-forwarded-proto", HeaderValue::from_static(proto));
}

/// Room for the longest IPv6 text form, on the stack.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl Default for IpText {
    fn default() -> Self {
        Self {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl IpText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for IpText {
    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }
}

/// Dotted quads by hand: `fmt` costs more than the rest of the header work.
pub(crate) fn write_ip(out: &mut impl Sink, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put(b".");
                }
                let digits = [
                    b'0' + octet / 100,
                    b'0' + octet / 10 % 10,
                    b'0' + octet % 10,
                ];
                let skip = if octet >= 100 {
                    0
                } else if octet >= 10 {
                    1
                } else {
                    2
                };
                out.put(&digits[skip..]);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut buf = [0u8; 48];
            let mut cursor = &mut buf[..];
            let _ = write!(cursor, "{v6}");
            let written = 48 - cursor.len();
            out.put(&buf[..written]);
        }
    }
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
    // The common case in one pass: no segment starts with `/`, `.` or `%`,
    // so none is empty or a dot segment.
    let b = path.as_bytes();
    if b.first() == Some(&b'/')
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && matches!(w[1], b'/' | b'.' | b'%'))
    {
        return Ok(None);
    }
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

    fn forwarded_for(prior: Option<&str>, client: &str) -> String {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Host", "shop.example").unwrap();
        if let Some(prior) = prior {
            req.insert_header("X-Forwarded-For", prior).unwrap();
        }
        add_forwarded(&mut req, Some(client.parse().unwrap()), "http");
        assert_eq!(req.headers["x-forwarded-host"], "shop.example");
        assert_eq!(req.headers["x-forwarded-proto"], "http");
        req.headers["x-forwarded-for"].to_str().unwrap().to_owned()
    }

    #[test]
    fn client_address_is_written_as_std_formats_it() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:192.0.2.128",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(forwarded_for(None, ip), parsed.to_string());
        }
    }

    #[test]
    fn client_is_appended_to_an_existing_chain() {
        assert_eq!(
            forwarded_for(Some("203.0.113.7, 10.0.0.1"), "10.1.2.3"),
            "203.0.113.7, 10.0.0.1, 10.1.2.3"
        );
        assert_eq!(forwarded_for(Some("  "), "10.1.2.3"), "10.1.2.3");
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Connection", "close, X-Secret").unwrap();
        req.insert_header("X-Secret", "1").unwrap();
        req.insert_header("Keep-Alive", "timeout=5").unwrap();
        req.insert_header("Accept", "*/*").unwrap();
        strip_hop_by_hop(&mut req);
        let names: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept"]);

        let mut plain = RequestHeader::build("GET", b"/", None).unwrap();
        plain.insert_header("Accept", "*/*").unwrap();
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.headers.len(), 1);
    }
}
