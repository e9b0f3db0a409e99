//! Route matching over a table of 1,000 realistic routes: exact paths with
//! parameters, prefixes, hosts and a few regexes. Goal: <= 500 ns per `find`.
use std::fmt::Write;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use ringress_routes::{RequestParts, RouteTable};

struct Req<'a> {
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(&'a str, &'a str)],
    peer: Option<IpAddr>,
}

impl RequestParts for Req<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn host(&self) -> Option<&str> {
        self.host
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == lowercase_name)
            .map(|(_, v)| *v)
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// 1,000 routes: per service (100 of them) four exact routes with params,
/// two of them host-bound, plus a method-bound one; 300 team prefixes,
/// 80 wildcard-host catch-alls and 20 regex routes.
fn route_file() -> String {
    let mut y = String::from("routes:\n");
    let backend = "    backend: {endpoints: [http://10.0.0.1:8080, http://10.0.0.2:8080]}\n";
    let route = |y: &mut String, name: String, matcher: String, key: Option<&str>| {
        let _ = writeln!(y, "  - name: {name}\n    match: {{{matcher}}}");
        if let Some(key) = key {
            let _ = writeln!(y, "    filters: [{{consistentHashKey: \"{key}\"}}]");
        }
        y.push_str(backend);
    };
    for s in 0..100 {
        route(
            &mut y,
            format!("svc{s}-product"),
            format!("path: \"/svc{s}/products/{{id}}\", host: svc{s}.example.com"),
            Some("${id}"),
        );
        route(
            &mut y,
            format!("svc{s}-reviews"),
            format!(
                "path: \"/svc{s}/products/{{id}}/reviews/{{review}}\", host: svc{s}.example.com"
            ),
            Some("${id}"),
        );
        route(
            &mut y,
            format!("svc{s}-order"),
            format!("path: \"/svc{s}/orders/{{order}}\", method: [GET, HEAD]"),
            Some("${order}"),
        );
        route(
            &mut y,
            format!("svc{s}-order-new"),
            format!("path: \"/svc{s}/orders/new\", method: POST"),
            None,
        );
        route(&mut y, format!("svc{s}-user"), format!("path: \"/svc{s}/users/{{user}}/carts/{{cart}}/items/{{item}}\", headers: {{X-Tenant: t{s}}}"), Some("${user}-${cart}"));
        route(
            &mut y,
            format!("svc{s}-health"),
            format!("path: /svc{s}/health"),
            None,
        );
    }
    for t in 0..300 {
        route(
            &mut y,
            format!("team{t}-static"),
            format!("pathPrefix: /static/team{t}/"),
            None,
        );
    }
    route(
        &mut y,
        "static-root".into(),
        "pathPrefix: /static/".into(),
        None,
    );
    for h in 0..79 {
        route(
            &mut y,
            format!("tenant{h}"),
            format!("host: \"*.tenant{h}.example.org\""),
            None,
        );
    }
    for r in 0..20 {
        route(
            &mut y,
            format!("legacy{r}"),
            format!("pathRegex: \"^/legacy{r}/[0-9]+$\""),
            None,
        );
    }
    y
}

fn find(c: &mut Criterion) {
    let table = RouteTable::parse("bench.yaml", &route_file()).expect("bench table compiles");
    assert_eq!(table.len(), 1000);
    let headers = [("x-tenant", "t99"), ("x-forwarded-for", "203.0.113.9")];
    let req = |host: &'static str, path: &'static str| Req {
        method: "GET",
        host: Some(host),
        path,
        query: Some("utm=1&page=2"),
        headers: &headers,
        peer: None,
    };
    let cases = [
        (
            "exact_param_host",
            req("svc97.example.com:443", "/svc97/products/123456"),
            "svc97-product",
        ),
        (
            "exact_two_params",
            req("svc98.example.com", "/svc98/products/42/reviews/7"),
            "svc98-reviews",
        ),
        (
            "exact_three_params_header",
            req("api.example.com", "/svc99/users/u1/carts/c2/items/i3"),
            "svc99-user",
        ),
        (
            "prefix_deep",
            req("cdn.example.com", "/static/team299/js/app.min.js"),
            "team299-static",
        ),
        (
            "wildcard_host",
            req("a.tenant78.example.org", "/anything/here"),
            "tenant78",
        ),
        (
            "regex_last",
            req("old.example.com", "/legacy19/12345"),
            "legacy19",
        ),
    ];
    let mut group = c.benchmark_group("routes/find");
    for (name, request, want) in &cases {
        assert_eq!(
            table.find(request).map(|m| m.route.name.as_str()),
            Some(*want)
        );
        group.bench_function(*name, |b| {
            b.iter(|| black_box(table.find(black_box(request)).is_some()))
        });
    }
    let miss = req("nowhere.example.net", "/svc50/unknown/path/deep");
    assert!(table.find(&miss).is_none());
    group.bench_function("miss", |b| {
        b.iter(|| black_box(table.find(black_box(&miss)).is_some()))
    });
    group.finish();

    let request = &cases[0].1;
    let mut key = String::with_capacity(64);
    c.bench_function("routes/find_and_hash_key", |b| {
        b.iter(|| {
            let m = table.find(black_box(request)).unwrap();
            m.route.hash_key(&m, request, &mut key);
            black_box(key.len())
        })
    });
}

fn parse(c: &mut Criterion) {
    let text = route_file();
    c.bench_function("routes/parse_1000", |b| {
        b.iter(|| {
            RouteTable::parse("bench.yaml", black_box(&text))
                .unwrap()
                .len()
        })
    });
}

criterion_group!(benches, find, parse);
criterion_main!(benches);
