//! `consistentHashKey` templates: arbitrary template text, resolved against
//! arbitrary requests.
//!
//! Input: the template's bytes up to the first 0xFF (never in UTF-8), then
//! the request, read by `arbitrary`. Invariants: `Template::parse` accepts
//! exactly the documented grammar and names the template in its errors;
//! an accepted template round-trips through a route file whose path
//! captures its parameters; the request finds that route with the
//! parameters it carries; `resolve` and `hash_key` agree with a reference
//! rendering written from the README.
#![no_main]

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ringress_fuzz::{
    client_address, cookie_value, first_query_value, is_param_name, yaml_quote, Request, ORIGIN,
};
use ringress_routes::{Filter, RouteTable, Template, MAX_PARAMS};

#[derive(Debug, Arbitrary)]
enum Name {
    /// One of the names the template's placeholders use.
    Pool(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct RequestData {
    method: String,
    host: Option<String>,
    /// The path when the template captures no parameters.
    path: String,
    /// Parameter values, in the order the template first names them.
    params: Vec<String>,
    query: Option<Vec<(Name, Option<String>)>>,
    cookies: Option<Vec<(Name, String)>>,
    headers: Vec<(Name, String)>,
    forwarded_for: Option<String>,
    peer: Option<Peer>,
}

#[derive(Debug, Arbitrary)]
enum Peer {
    V4([u8; 4]),
    V6([u16; 8]),
}

/// What one placeholder reads.
#[derive(Debug)]
enum Field {
    Param(String),
    Path,
    Host,
    Method,
    Source,
    Query(String),
    Header(String),
    Cookie(String),
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Field(Field),
}

/// The template grammar of the README, written independently of the crate.
fn reference_parse(source: &str) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let inner = &after[..end];
        rest = &after[end + 1..];
        let field = if let Some(f) = inner.strip_prefix("request.") {
            let named = |prefix: &str| f.strip_prefix(prefix).map(str::to_owned);
            match f {
                "path" => Field::Path,
                "host" => Field::Host,
                "method" => Field::Method,
                "source" => Field::Source,
                _ => {
                    if let Some(n) = named("query.") {
                        Field::Query(n)
                    } else if let Some(n) = named("header.") {
                        Field::Header(n.to_ascii_lowercase())
                    } else {
                        Field::Cookie(named("cookie.")?)
                    }
                }
            }
        } else if is_param_name(inner) {
            Field::Param(inner.to_owned())
        } else {
            return None;
        };
        if matches!(&field, Field::Query(n) | Field::Header(n) | Field::Cookie(n) if n.is_empty()) {
            return None;
        }
        pieces.push(Piece::Field(field));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Some(pieces)
}

/// The key, or `None` when a placeholder is missing or empty.
fn reference_render(
    pieces: &[Piece],
    req: &Request,
    params: &[(String, String)],
) -> Option<String> {
    let mut out = String::new();
    for piece in pieces {
        let value = match piece {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Field(f) => match f {
                Field::Param(n) => params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
                Field::Path => Some(req.path.clone()),
                Field::Host => req.host.clone(),
                Field::Method => Some(req.method.clone()),
                Field::Source => Some(client_address(req)),
                Field::Query(n) => req
                    .query
                    .as_deref()
                    .and_then(|q| first_query_value(q, n))
                    .map(str::to_owned),
                Field::Header(n) => header(req, n).map(str::to_owned),
                Field::Cookie(n) => header(req, "cookie")
                    .and_then(|h| cookie_value(h, n))
                    .map(str::to_owned),
            },
        };
        match value {
            Some(v) if !v.is_empty() => out.push_str(&v),
            _ => return None,
        }
    }
    Some(out)
}

fn header<'r>(req: &'r Request, lowercase: &str) -> Option<&'r str> {
    req.headers
        .iter()
        .find(|(n, _)| n == lowercase)
        .map(|(_, v)| v.as_str())
}

fn build_request(
    data: RequestData,
    pieces: &[Piece],
    params: &[String],
) -> (Request, Vec<(String, String)>) {
    let mut pool: Vec<&str> = vec!["x-forwarded-for", "cookie"];
    for piece in pieces {
        if let Piece::Field(Field::Query(n) | Field::Header(n) | Field::Cookie(n)) = piece {
            pool.push(n);
        }
    }
    let name = |n: &Name| match n {
        Name::Pool(i) => pool[*i as usize % pool.len()].to_owned(),
        Name::Raw(s) => s.clone(),
    };
    // Captured values are whole non-empty segments.
    let mut values = data
        .params
        .into_iter()
        .filter(|v| !v.is_empty() && !v.contains('/'));
    let captured: Vec<(String, String)> = params
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), values.next().unwrap_or_else(|| format!("v{i}"))))
        .collect();
    let path = if captured.is_empty() {
        data.path
    } else {
        let mut path = String::new();
        for (_, v) in &captured {
            path.push('/');
            path.push_str(v);
        }
        path
    };
    let mut req = Request {
        method: data.method,
        host: data.host,
        path,
        query: data.query.map(|pairs| {
            let mut q = String::new();
            for (i, (n, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    q.push('&');
                }
                q.push_str(&name(n));
                if let Some(v) = v {
                    q.push('=');
                    q.push_str(v);
                }
            }
            q
        }),
        headers: Vec::new(),
        peer: data.peer.map(|p| match p {
            Peer::V4(o) => IpAddr::from(o),
            Peer::V6(s) => IpAddr::from(s),
        }),
    };
    if let Some(xff) = &data.forwarded_for {
        req.add_header("x-forwarded-for", xff);
    }
    if let Some(cookies) = data.cookies {
        let mut h = String::new();
        for (n, v) in &cookies {
            h.push_str(&format!("{}={v}; ", name(n)));
        }
        req.add_header("cookie", &h);
    }
    for (n, v) in &data.headers {
        req.add_header(&name(n), v);
    }
    (req, captured)
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let source = String::from_utf8_lossy(&data[..split]).into_owned();
    let rest = data.get(split + 1..).unwrap_or_default();

    let reference = reference_parse(&source);
    let template = match Template::parse(&source) {
        Ok(t) => t,
        Err(why) => {
            assert!(reference.is_none(), "{source:?} refused: {why}");
            assert!(
                why.contains(&format!("{source:?}")),
                "{why} names not {source:?}"
            );
            return;
        }
    };
    let Some(pieces) = reference else {
        panic!("{source:?} accepted against the grammar: {template:?}");
    };
    assert_eq!(template.as_str(), source);
    assert_eq!(template.to_string(), source);

    let mut params: Vec<String> = Vec::new();
    for p in template.params() {
        assert!(is_param_name(p), "{p:?}");
        if !params.iter().any(|q| q == p) {
            params.push(p.to_owned());
        }
    }
    let want: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Field(Field::Param(n)) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(template.params().collect::<Vec<_>>(), want);
    if params.len() > MAX_PARAMS {
        return;
    }

    // The template in a route whose path captures its parameters.
    let path_rule = if params.is_empty() {
        "pathPrefix: \"/\"".to_owned()
    } else {
        let path: String = params.iter().map(|p| format!("/{{{p}}}")).collect();
        format!("path: {}", yaml_quote(&path))
    };
    let yaml = format!(
        "routes:\n  - name: r\n    match: {{{path_rule}}}\n    filters:\n      - consistentHashKey: {}\n    backend: {{status: 200}}\n",
        yaml_quote(&source)
    );
    let table = match RouteTable::parse(ORIGIN, &yaml) {
        Ok(t) => t,
        Err(e) => panic!("an accepted template refused in a route file:\n{e}\n{yaml}"),
    };
    let route = &table.routes()[0];
    let Some(Filter::ConsistentHashKey(in_file)) = route.filters.first() else {
        panic!("no key filter: {route:?}");
    };
    assert_eq!(
        in_file.as_str(),
        source,
        "the file round-trips the template"
    );

    let Ok(data) = RequestData::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    let (req, captured) = build_request(data, &pieces, &params);
    let Some(m) = table.find(&req) else {
        panic!("{req:?} misses the route of {source:?}");
    };
    for (name, value) in &captured {
        assert_eq!(m.param(name), Some(value.as_str()), "{req:?}");
    }

    let expected = reference_render(&pieces, &req, &captured);
    let mut out = String::from("stale");
    let resolved = template.resolve(&m, &req, &mut out);
    assert_eq!(
        resolved,
        expected.is_some(),
        "{source:?} {req:?}: {out:?} vs {expected:?}"
    );
    if let Some(want) = &expected {
        assert_eq!(&out, want, "{source:?} {req:?}");
    }
    let mut key = String::from("stale");
    m.route.hash_key(&m, &req, &mut key);
    let want = expected.unwrap_or_else(|| client_address(&req));
    assert_eq!(key, want, "{source:?} {req:?}");
});
