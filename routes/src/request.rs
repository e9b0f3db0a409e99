//! The view of a request that matching and key resolution need, and the
//! allocation-free lookups on it.

use std::fmt::Write;
use std::net::IpAddr;

/// What the route table reads from a request. The proxy implements it over
/// its own request header; tests implement it over plain fields.
pub trait RequestParts {
    fn method(&self) -> &str;
    /// The Host header (or the authority); may carry a `:port`.
    fn host(&self) -> Option<&str>;
    /// The path only, without the query.
    fn path(&self) -> &str;
    /// The raw query string, without the `?`.
    fn query(&self) -> Option<&str>;
    /// The first value of the header, looked up by its lowercase name.
    fn header(&self, lowercase_name: &str) -> Option<&str>;
    fn peer_ip(&self) -> Option<IpAddr>;
}

/// The raw value of the first occurrence of `name` in a query string
/// (`a=1&b=2`). Names and values are compared and returned as written, not
/// percent-decoded: route files name plain ASCII parameters, and decoding
/// would cost an allocation per request. A parameter without `=` has the
/// empty value.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
pub fn cookie<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// The request's host in lowercase-insensitive form: without a `:port`
/// suffix, and IPv6 literals keep their brackets.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Appends the client address: the first `X-Forwarded-For` element
/// (trimmed), else the peer IP. Appends nothing when neither is known.
pub fn write_client_address<R: RequestParts + ?Sized>(req: &R, out: &mut String) {
    let forwarded = req
        .header("x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (forwarded, req.peer_ip()) {
        (Some(first), _) => out.push_str(first),
        (None, Some(ip)) => {
            // Writing into a String cannot fail.
            let _ = write!(out, "{ip}");
        }
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_takes_the_first_occurrence_raw() {
        let q = "a=1&debug=1&debug=2&flag&x=%20";
        assert_eq!(query_param(q, "debug"), Some("1"));
        assert_eq!(query_param(q, "flag"), Some(""));
        assert_eq!(query_param(q, "x"), Some("%20"));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param("", "a"), None);
    }

    #[test]
    fn cookies_are_split_and_trimmed() {
        let h = "session=abc; theme = dark;broken; last=";
        assert_eq!(cookie(h, "session"), Some("abc"));
        assert_eq!(cookie(h, "theme"), Some("dark"));
        assert_eq!(cookie(h, "last"), Some(""));
        assert_eq!(cookie(h, "broken"), None);
        assert_eq!(cookie(h, "sess"), None);
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(host_without_port("a.example.com:8080"), "a.example.com");
        assert_eq!(host_without_port("a.example.com"), "a.example.com");
        assert_eq!(host_without_port("[::1]:443"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("weird:"), "weird");
    }
}
