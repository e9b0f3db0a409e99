//! Endpoint addresses: literal `IP:PORT`s parse in place; host names in the
//! route file are looked up before a rebuild, outside its lock and off the
//! runtime threads (the route-file watcher reloads in `spawn_blocking`).
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

use ringress_routes::{BackendTarget, RouteTable};

/// An endpoint URL's parts: `http://host:port` or `https://host:port`.
pub struct EndpointTarget<'a> {
    pub tls: bool,
    /// `host:port`, as it is looked up.
    pub authority: &'a str,
    /// The host without brackets or port (TLS server name).
    pub host: &'a str,
}

impl<'a> EndpointTarget<'a> {
    pub fn parse(endpoint: &'a str) -> Self {
        let (tls, rest) = match endpoint.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some((_, rest)) => (false, rest),
            None => (false, endpoint),
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => authority,
        };
        Self {
            tls,
            authority,
            host,
        }
    }
}

/// The addresses of the host names a route table's endpoints use.
#[derive(Debug, Default)]
pub struct Resolved {
    names: HashMap<String, Option<SocketAddr>>,
}

impl Resolved {
    /// Looks up every endpoint name of `table` (blocking). Names `previous`
    /// knew keep their address when a lookup fails now, so a DNS hiccup
    /// during a reload does not take endpoints out.
    pub fn lookup(table: &RouteTable, previous: Option<&Resolved>) -> Self {
        let mut names = HashMap::new();
        for route in table.routes() {
            let BackendTarget::Endpoints(list) = &route.backend.target else {
                continue;
            };
            for endpoint in list {
                let authority = EndpointTarget::parse(endpoint).authority;
                if authority.parse::<SocketAddr>().is_ok() || names.contains_key(authority) {
                    continue;
                }
                let found = authority
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .or_else(|| previous.and_then(|p| p.addr(authority)));
                names.insert(authority.to_string(), found);
            }
        }
        Self { names }
    }

    /// The address of `authority`: parsed when literal, else as looked up.
    pub fn addr(&self, authority: &str) -> Option<SocketAddr> {
        authority
            .parse()
            .ok()
            .or_else(|| self.names.get(authority).copied().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_split_into_scheme_authority_and_host() {
        let t = EndpointTarget::parse("https://[::1]:8443");
        assert!(t.tls);
        assert_eq!((t.authority, t.host), ("[::1]:8443", "::1"));
        let t = EndpointTarget::parse("http://shop.example:80/ignored");
        assert!(!t.tls);
        assert_eq!((t.authority, t.host), ("shop.example:80", "shop.example"));
    }

    #[test]
    fn literal_addresses_need_no_lookup_and_names_come_from_it() {
        let table = RouteTable::parse(
            "t.yaml",
            "routes:\n  - name: a\n    backend:\n      endpoints: [http://localhost:9, http://127.0.0.1:10]\n",
        )
        .unwrap();
        let resolved = Resolved::lookup(&table, None);
        assert_eq!(resolved.names.len(), 1, "only the name is looked up");
        assert_eq!(
            resolved.addr("127.0.0.1:10"),
            Some(([127, 0, 0, 1], 10).into())
        );
        assert!(resolved.addr("localhost:9").is_some());
        assert_eq!(resolved.addr("unknown.invalid:9"), None);
    }
}
