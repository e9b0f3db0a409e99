//! Which header fields cross the proxy, in both directions, and which the
//! proxy adds. Transports apply these rules to their own representation
//! (pingora's header maps, the fast path's raw lines); the rules live here.
//!
//! - Hop-by-hop fields (RFC 9110 §7.6.1) and every field the message's own
//!   `Connection` names stop at the proxy, both ways. An upgrade handshake
//!   keeps `Upgrade` and `Connection: upgrade`.
//! - `Proxy-Authorization` is for the proxy the client talks to, which is
//!   ringress: it is not passed on to endpoints. A request's `Trailer` is
//!   not either (pingora's HTTP/1 pipeline drops request trailers); a
//!   response's is (RFC 9110 §7.6.1 does not list it as hop-by-hop).
//! - `X-Forwarded-For` gets the client appended; `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are set; a route's own value for any of them wins.
//! - A route's request and response headers replace fields of the same name.
//! - An obs-folded value (RFC 9112 §5.2) is forwarded with each line break
//!   replaced by a space.
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

/// Fields that describe one connection (RFC 9110 §7.6.1), lowercase.
/// `Transfer-Encoding` is not here: each transport frames bodies itself.
pub const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
];

/// Request fields that stop at the proxy besides the hop-by-hop ones.
const NOT_UPSTREAM: [&str; 2] = ["proxy-authorization", "trailer"];

/// The `X-Forwarded-*` fields the proxy writes itself.
pub const FORWARDED: [&str; 3] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// Whether `name` is hop-by-hop.
#[inline]
pub fn is_hop_by_hop(name: &str) -> bool {
    // By length first: most fields are none of these, and this runs per field.
    let candidates: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["upgrade"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        _ => return false,
    };
    candidates.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Fields a `Connection` header cannot remove: they address or frame the
/// message for every hop (RFC 9110 §7.6.1 forbids listing them). Removing
/// Host would send a request without one; framing is each transport's own.
const END_TO_END: [&[u8]; 3] = [b"host", b"content-length", b"transfer-encoding"];

/// The field names a message's `Connection` header lists (besides the
/// `close`, `keep-alive` and `upgrade` options): they stop at the proxy too.
#[derive(Debug, Default)]
pub struct ConnectionNames<'a> {
    names: Vec<&'a [u8]>,
    /// `Connection: close` was among the options.
    pub close: bool,
    /// `Connection: upgrade` was among the options.
    pub upgrade: bool,
}

impl<'a> ConnectionNames<'a> {
    /// From the values of every `Connection` field of a message. Allocates
    /// only when a field name is listed (rare).
    pub fn parse(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut me = Self::default();
        for value in values {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.is_empty() || token.eq_ignore_ascii_case(b"keep-alive") {
                    continue;
                }
                if token.eq_ignore_ascii_case(b"close") {
                    me.close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    me.upgrade = true;
                } else if !END_TO_END.iter().any(|n| token.eq_ignore_ascii_case(n)) {
                    me.names.push(token);
                }
            }
        }
        me
    }

    /// Whether `name` is listed.
    #[inline]
    pub fn lists(&self, name: &str) -> bool {
        !self.names.is_empty()
            && self
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Whether a request field stays out of the request sent upstream (the
/// proxy writes its own `X-Forwarded-*` and the route's fields instead).
/// `upgrade`: the request is an upgrade handshake the proxy passes on.
#[inline]
pub fn drop_upstream(
    name: &str,
    connection: &ConnectionNames<'_>,
    route_headers: &[(String, String)],
    upgrade: bool,
) -> bool {
    drop_downstream(name, connection, route_headers, upgrade)
        || (matches!(name.len(), 7 | 19)
            && NOT_UPSTREAM.iter().any(|n| name.eq_ignore_ascii_case(n)))
        || is_forwarded(name)
}

/// Whether a response field stays out of the response sent to the client
/// (and, with [`drop_upstream`]'s additions, a request field out of the
/// request). `upgrade`: a handshake passed on keeps `Upgrade` and `Connection`.
#[inline]
pub fn drop_downstream(
    name: &str,
    connection: &ConnectionNames<'_>,
    route_headers: &[(String, String)],
    upgrade: bool,
) -> bool {
    (is_hop_by_hop(name) && !(upgrade && is_upgrade_field(name)))
        || connection.lists(name)
        || route_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn is_upgrade_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("connection")
}

#[inline]
fn is_forwarded(name: &str) -> bool {
    name.len() >= 15
        && name.as_bytes()[..12].eq_ignore_ascii_case(b"x-forwarded-")
        && FORWARDED.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// The `X-Forwarded-*` fields for a request, in the order they are written;
/// a field the route sets itself is left out (the route's value goes instead).
pub struct Forwarded<'a> {
    /// The client's `X-Forwarded-For` chain, if it sent one.
    pub prior_for: Option<&'a [u8]>,
    /// The client's address as text (empty when unknown).
    pub client: &'a [u8],
    pub host: Option<&'a [u8]>,
    pub proto: &'static str,
}

impl Forwarded<'_> {
    /// Calls `put(name, value)` for each field to add.
    pub fn each(
        &self,
        route_headers: &[(String, String)],
        mut put: impl FnMut(&'static str, &[u8]),
    ) {
        let routed = |name: &str| {
            route_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if let Some(host) = self.host.filter(|_| !routed("x-forwarded-host")) {
            put("X-Forwarded-Host", host);
        }
        if !routed("x-forwarded-for") {
            let prior = self
                .prior_for
                .map(<[u8]>::trim_ascii)
                .filter(|p| !p.is_empty());
            match (prior, self.client.is_empty()) {
                (Some(prior), false) => {
                    let mut chain = Vec::with_capacity(prior.len() + 2 + self.client.len());
                    chain.extend_from_slice(prior);
                    chain.extend_from_slice(b", ");
                    chain.extend_from_slice(self.client);
                    put("X-Forwarded-For", &chain);
                }
                (None, false) => put("X-Forwarded-For", self.client),
                (Some(prior), true) => put("X-Forwarded-For", prior),
                (None, true) => {}
            }
        }
        if !routed("x-forwarded-proto") {
            put("X-Forwarded-Proto", self.proto.as_bytes());
        }
    }
}

/// A field value as forwarded: each obs-fold (a line break and the
/// whitespace around it) becomes one space (RFC 9112 §5.2).
#[inline]
pub fn unfold(value: &[u8]) -> Cow<'_, [u8]> {
    if !value.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut folding = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {
                while out.last().is_some_and(|&c| c == b' ' || c == b'\t') {
                    out.pop();
                }
                folding = true;
            }
            b' ' | b'\t' if folding => {}
            _ => {
                if folding {
                    out.push(b' ');
                    folding = false;
                }
                out.push(b);
            }
        }
    }
    Cow::Owned(out)
}

/// A list-valued field (`Transfer-Encoding`) with empty elements dropped
/// (RFC 9110 §5.6.1: `chunked,` is `chunked`), so the framing the client is
/// told is the framing the proxy used.
#[inline]
pub fn tidy_list(value: &[u8]) -> Cow<'_, [u8]> {
    let untidy = value
        .split(|&b| b == b',')
        .enumerate()
        .any(|(i, e)| e.trim_ascii().is_empty() || (i > 0 && !e.starts_with(b" ")));
    if !untidy {
        return Cow::Borrowed(value.trim_ascii());
    }
    let elements: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
        .collect();
    Cow::Owned(elements.join(&b", "[..]))
}

/// The authority of an endpoint, for a request that came without Host: the
/// host the route file or discovery named, with the port connected to.
pub fn endpoint_authority(host: &str, addr: SocketAddr) -> String {
    if host.is_empty() {
        return addr.to_string();
    }
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, addr.port()).to_string(),
        Err(_) => format!("{host}:{}", addr.port()),
    }
}

/// Room for the longest IPv6 text form, on the stack.
pub struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    /// Dotted quads by hand: `fmt` costs more than the rest of the header work.
    pub fn new(ip: IpAddr) -> Self {
        let mut me = Self {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        me.put(b".");
                    }
                    let digits = [
                        b'0' + octet / 100,
                        b'0' + octet / 10 % 10,
                        b'0' + octet % 10,
                    ];
                    let skip = match octet {
                        100.. => 0,
                        10.. => 1,
                        _ => 2,
                    };
                    me.put(&digits[skip..]);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = &mut me.buf[..];
                let _ = write!(cursor, "{v6}");
                me.len = 48 - cursor.len();
            }
        }
        me
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_are_known_in_any_case_and_nothing_else_is() {
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
            assert!(is_hop_by_hop(&name.to_ascii_uppercase()), "{name}");
        }
        for name in [
            "host",
            "content-length",
            "transfer-encoding",
            "tf",
            "upgrades",
            "x-connection",
            "trailer",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    #[test]
    fn fields_named_by_connection_stop_at_the_proxy_both_ways() {
        let c = ConnectionNames::parse([&b"close, X-Secret"[..], b" keep-alive ,Upgrade"]);
        assert!(c.close && c.upgrade);
        assert!(c.lists("x-secret") && !c.lists("close") && !c.lists("accept"));
        // Host and framing fields are never removed by being listed.
        let c2 = ConnectionNames::parse([&b"Host, content-length, Transfer-Encoding"[..]]);
        assert!(!c2.lists("host") && !c2.lists("Content-Length") && !c2.lists("transfer-encoding"));
        let none: &[(String, String)] = &[];
        assert!(drop_upstream("X-Secret", &c, none, false));
        assert!(drop_downstream("x-secret", &c, none, false));
        assert!(drop_upstream("Proxy-Authorization", &c, none, false));
        assert!(drop_upstream("Trailer", &c, none, false));
        assert!(!drop_downstream("Trailer", &c, none, false));
        assert!(!drop_downstream("proxy-authorization", &c, none, false));
        assert!(drop_upstream("Upgrade", &c, none, false));
        assert!(!drop_upstream("Upgrade", &c, none, true));
        assert!(drop_upstream("x-forwarded-proto", &c, none, false));
        assert!(!drop_upstream("accept", &c, none, false));
        let route = [("X-Env".to_string(), "prod".to_string())];
        assert!(drop_upstream(
            "x-env",
            &ConnectionNames::default(),
            &route,
            false
        ));
        assert!(drop_downstream(
            "X-ENV",
            &ConnectionNames::default(),
            &route,
            false
        ));
    }

    fn forwarded(
        prior: Option<&str>,
        client: &str,
        route: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        Forwarded {
            prior_for: prior.map(str::as_bytes),
            client: client.as_bytes(),
            host: Some(b"shop.example"),
            proto: "http",
        }
        .each(route, |n, v| {
            out.push((n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
        });
        out
    }

    #[test]
    fn the_client_is_appended_to_the_forwarded_chain_and_a_route_value_wins() {
        let all = forwarded(Some("203.0.113.7, 10.0.0.1"), "10.1.2.3", &[]);
        assert_eq!(all[0], ("X-Forwarded-Host".into(), "shop.example".into()));
        assert_eq!(all[1].1, "203.0.113.7, 10.0.0.1, 10.1.2.3");
        assert_eq!(all[2], ("X-Forwarded-Proto".into(), "http".into()));
        assert_eq!(forwarded(Some("  "), "10.1.2.3", &[])[1].1, "10.1.2.3");
        let route = [("x-forwarded-for".to_string(), "fixed".to_string())];
        let names: Vec<String> = forwarded(None, "10.1.2.3", &route)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["X-Forwarded-Host", "X-Forwarded-Proto"]);
    }

    #[test]
    fn client_addresses_are_written_as_std_formats_them() {
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
            assert_eq!(
                IpText::new(parsed).as_bytes(),
                parsed.to_string().as_bytes()
            );
        }
    }

    #[test]
    fn obs_folds_become_one_space() {
        assert_eq!(&*unfold(b"a\r\n  b"), b"a b");
        assert_eq!(&*unfold(b"a \r\n\tb\r\n c"), b"a b c");
        assert!(matches!(unfold(b"plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn lists_lose_their_empty_elements() {
        assert_eq!(&*tidy_list(b"chunked,"), b"chunked");
        assert_eq!(&*tidy_list(b"gzip,,chunked"), b"gzip, chunked");
        assert!(matches!(
            tidy_list(b"gzip, chunked"),
            Cow::Borrowed(b"gzip, chunked")
        ));
    }
}
