//! Shared parts of the fuzz targets: a plain request, YAML quoting, and
//! small reference implementations of the documented behaviour that the
//! targets compare the crate against.

use std::net::IpAddr;

use ringress_routes::RequestParts;

/// The name route files have in errors.
pub const ORIGIN: &str = "fuzz.yaml";

/// A request over plain fields. Header names are stored lowercase, as
/// [`RequestParts::header`] expects to look them up.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub peer: Option<IpAddr>,
}

impl Request {
    pub fn add_header(&mut self, name: &str, value: &str) {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
    }
}

impl RequestParts for Request {
    fn method(&self) -> &str {
        &self.method
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == lowercase_name)
            .map(|(_, v)| v.as_str())
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// A YAML double-quoted scalar holding exactly `s`: everything outside
/// printable ASCII is escaped, since YAML refuses some characters raw.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Path segments as the README describes them: one leading `/` is dropped,
/// `/` has none, `/a/` has `a` and an empty one.
pub fn segments(path: &str) -> Vec<&str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    }
}

/// The first value of query parameter `name`, raw; `name` alone is empty.
pub fn first_query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    for pair in query.split('&') {
        let (k, v) = match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        if k == name {
            return Some(v);
        }
    }
    None
}

/// Cookie `name` from a `Cookie` header, names and values trimmed.
pub fn cookie_value<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    for pair in header.split(';') {
        if let Some(i) = pair.find('=') {
            if pair[..i].trim() == name {
                return Some(pair[i + 1..].trim());
            }
        }
    }
    None
}

/// The client address: the first `X-Forwarded-For` element, else the peer.
pub fn client_address(req: &Request) -> String {
    if let Some(xff) = req.header("x-forwarded-for") {
        let first = xff.split(',').next().unwrap_or("").trim();
        if !first.is_empty() {
            return first.to_owned();
        }
    }
    req.peer.map(|ip| ip.to_string()).unwrap_or_default()
}

/// `[A-Za-z_][A-Za-z0-9_]*`: path parameter names.
pub fn is_param_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}
