//! A plain request for tests, and helpers to compile route files.
#![allow(dead_code)]

use std::net::IpAddr;

use ringress_routes::{RequestParts, RouteErrors, RouteTable};

#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub peer: Option<IpAddr>,
}

impl Req {
    /// A GET for `target`, which may carry a `?query`.
    pub fn get(target: &str) -> Req {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        Req {
            method: "GET".into(),
            path: path.into(),
            query,
            ..Req::default()
        }
    }

    pub fn method(mut self, m: &str) -> Req {
        self.method = m.into();
        self
    }

    pub fn host(mut self, h: &str) -> Req {
        self.host = Some(h.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn peer(mut self, ip: &str) -> Req {
        self.peer = Some(ip.parse().unwrap());
        self
    }
}

impl RequestParts for Req {
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

pub fn table(yaml: &str) -> RouteTable {
    match RouteTable::parse("routes.yaml", yaml) {
        Ok(t) => t,
        Err(e) => panic!("route file should compile:\n{e}"),
    }
}

pub fn errors(yaml: &str) -> RouteErrors {
    match RouteTable::parse("routes.yaml", yaml) {
        Ok(_) => panic!("route file should fail:\n{yaml}"),
        Err(e) => e,
    }
}

/// The errors' display, one per line, for exact comparisons.
pub fn error_lines(yaml: &str) -> Vec<String> {
    errors(yaml).iter().map(ToString::to_string).collect()
}

/// The name of the route `req` matches.
pub fn winner(t: &RouteTable, req: &Req) -> Option<String> {
    t.find(req).map(|m| m.route.name.clone())
}
