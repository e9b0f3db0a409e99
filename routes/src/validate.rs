//! Checks on single values (names, endpoints, hosts, tokens) and across
//! routes (unique names, consistent LIFO groups).

use std::collections::HashMap;
use std::net::Ipv6Addr;

use crate::marks::Pos;
use crate::reader::Reader;
use crate::spec::LifoGroupSpec;

/// Route and LIFO group names: `[A-Za-z0-9_-]+`.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a header filter may not set `name` (`None`: it may). Framing and
/// hop-by-hop fields belong to each connection, not to the route: a set
/// `Content-Length` or `Transfer-Encoding` would let the proxy and the
/// next hop disagree where a message ends (RFC 9112 §6.3), and hop-by-hop
/// fields are removed at every hop (RFC 9110 §7.6.1). `Host` may be set on
/// requests (to rewrite the authority the backend sees), not on responses.
pub(crate) fn unsettable_header(name: &str, request: bool) -> Option<&'static str> {
    const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];
    const HOP_BY_HOP: [&str; 6] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ];
    let is = |set: &[&str]| set.iter().any(|n| n.eq_ignore_ascii_case(name));
    if is(&FRAMING) {
        Some("frames the message; the proxy sets it")
    } else if is(&HOP_BY_HOP) {
        Some("is hop-by-hop; the proxy sets it per connection")
    } else if !request && name.eq_ignore_ascii_case("host") {
        Some("is a request header")
    } else {
        None
    }
}

/// An HTTP token (RFC 9110 `tchar`), as header names and methods are.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// RFC 9110 `tchar`: the bytes of a token. `const` so the proxy builds its
/// per-byte table from the same definition.
pub const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Methods are case-sensitive tokens, and every standard one is uppercase;
/// a lowercase `get` in a route file is a mistake that would never match.
pub(crate) fn check_method(m: &str) -> Result<(), String> {
    if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "method {m:?} must be an uppercase token such as GET or POST"
        ));
    }
    Ok(())
}

/// A host name, or `*.` followed by one. Returns it lowercase.
pub(crate) fn check_host(host: &str) -> Result<String, String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = host.len() <= crate::matcher::MAX_HOST_LEN
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(format!(
            "host {host:?} must be a host name such as shop.example.com or *.example.com, \
             without a port"
        ));
    }
    Ok(host.to_ascii_lowercase())
}

/// Kubernetes names for namespaces and services: a DNS label.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A Kubernetes port name (IANA service name): up to 15 lowercase
/// alphanumerics and hyphens, at least one letter.
pub(crate) fn is_port_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 15 && s.bytes().any(|c| c.is_ascii_lowercase())
}

/// `http://host:port` or `https://host:port`: port required, no path,
/// query or user info; IPv6 hosts in brackets.
pub(crate) fn check_endpoint(url: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "endpoint {url:?} must be http://host:port or https://host:port: {why}"
        ))
    };
    let Some(authority) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return bad("the scheme must be http or https");
    };
    if authority.contains(['/', '?', '#']) {
        return bad("no path or query is allowed");
    }
    if authority.contains('@') {
        return bad("no user info is allowed");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((ip, port)) = bracketed.split_once("]:") else {
            return bad("an IPv6 address needs brackets and a port, e.g. [::1]:8080");
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return bad("bad IPv6 address");
        }
        (ip, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => {
                let host_ok = host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                if !host_ok {
                    return bad("bad host");
                }
                (host, port)
            }
            None => return bad("the port is required"),
        }
    };
    if host.is_empty() {
        return bad("the host is empty");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => bad("the port must be 1..=65535"),
    }
}

/// What the cross-route checks need from a route, even one that had other
/// errors, so that every problem is reported in one pass.
pub(crate) struct Outline {
    pub name: Option<(String, Pos)>,
    pub lifo_group: Option<(LifoGroupSpec, Pos)>,
}

/// Unique route names (the second is the error) and one setting per LIFO
/// group (each member that differs from the group's first is an error).
pub(crate) fn across_routes(outlines: &[Outline], reader: &mut Reader<'_>) {
    let mut names: HashMap<&str, Pos> = HashMap::new();
    let mut groups: HashMap<&str, (&LifoGroupSpec, Option<&str>, Pos)> = HashMap::new();
    for outline in outlines {
        let route = outline.name.as_ref().map(|(n, _)| n.as_str());
        reader.route = route.map(str::to_owned);
        if let Some((name, pos)) = &outline.name {
            match names.get(name.as_str()) {
                Some(first) => reader.error(
                    *pos,
                    format!(
                        "duplicate route name {name:?} (first used on line {})",
                        first.line
                    ),
                ),
                None => {
                    names.insert(name, *pos);
                }
            }
        }
        if let Some((group, pos)) = &outline.lifo_group {
            match groups.get(group.name.as_str()) {
                Some((first, first_route, first_pos)) if first.spec != group.spec => {
                    let owner = first_route.map_or(String::new(), |r| format!("route {r:?}, "));
                    reader.error(
                        *pos,
                        format!(
                            "lifoGroup {:?} settings differ from its first definition \
                             ({owner}line {}); every member of a group must use the same \
                             maxConcurrency, maxQueueSize and timeout",
                            group.name, first_pos.line
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    groups.insert(&group.name, (group, route, *pos));
                }
            }
        }
    }
    reader.route = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in [
            "http://10.0.0.1:8080",
            "https://svc.ns.svc.cluster.local:443",
            "http://[::1]:80",
            "http://a:1",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "10.0.0.1:8080",
            "ftp://a:1",
            "http://a",
            "http://:80",
            "http://a:0",
            "http://a:65536",
            "http://a:80/",
            "http://a:80?x",
            "http://u@a:80",
            "http://[::1]",
            "http://[zz]:80",
            "http://a b:80",
            "http://a:+80",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_methods_and_names() {
        assert_eq!(
            check_host("Shop.Example.com"),
            Ok("shop.example.com".into())
        );
        assert_eq!(check_host("*.example.com"), Ok("*.example.com".into()));
        for bad in ["", "*", "*.", "a..b", "a:80", "a*.b", "a b"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
        assert!(check_method("GET").is_ok());
        assert!(check_method("M-SEARCH").is_ok());
        assert!(check_method("get").is_err());
        assert!(check_method("GE T").is_err());
        assert!(is_name("products_v2-a"));
        assert!(!is_name("a b") && !is_name(""));
        assert!(is_dns_label("shop-1") && !is_dns_label("Shop") && !is_dns_label("-a"));
        assert!(
            is_port_name("http") && !is_port_name("8080") && !is_port_name("a-very-long-port-name")
        );
    }
}
