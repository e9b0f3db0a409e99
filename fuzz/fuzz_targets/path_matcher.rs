//! The matcher against a linear reference of the documented precedence.
//!
//! `arbitrary` builds a route file (exact paths with `{param}` segments,
//! prefixes, regexes, hosts, methods, headers, query) from small alphabets
//! so that routes and requests collide, plus requests (some aimed at a
//! route, some raw). Invariants: the file parses; `find` picks what a
//! linear scan picks ("exact `path` beats `pathPrefix` beats the rest; a
//! longer prefix beats a shorter one; a literal segment beats a `{param}`
//! at the same position; then more conditions; then file order"), with the
//! same captures; a regex's literal-prefix shortcut never rejects a path
//! the regex matches; a key template over all params renders them.
#![no_main]

use std::cmp::Ordering;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use regex::Regex;
use ringress_fuzz::{first_query_value, segments, yaml_quote, Request, ORIGIN};
use ringress_routes::{host_without_port, RouteTable, MAX_PARAMS};

const LITERALS: &[&str] = &[
    "", "a", "b", "ab", "api", "v2", "products", "7", "x.y", "%20", "é", "A", "a b", "*",
];
const HOSTS: &[&str] = &[
    "a.example.com",
    "example.com",
    "b.a.example.com",
    "x_y.org",
    "com",
];
const METHODS: &[&str] = &["GET", "POST", "HEAD"];
const HEADER_NAMES: &[&str] = &["X-A", "x-b", "X-Tenant"];
const VALUES: &[&str] = &["1", "", "acme", "a=b", "2"];
const QUERY_NAMES: &[&str] = &["a", "debug", "x y", "q="];
const MAX_HOST_LEN: usize = 253;

fn pick<'a>(set: &[&'a str], i: u8) -> &'a str {
    set[i as usize % set.len()]
}

#[derive(Debug, Arbitrary)]
enum PathIn {
    Any,
    Exact(Vec<Option<u8>>),
    Prefix(Vec<u8>, bool),
}

#[derive(Debug, Arbitrary)]
enum RegexTok {
    Lit(u8),
    Slash,
    Dot,
    Star,
    Plus,
    Question,
    Digits,
    Alt,
    Open,
    Close,
    Dollar,
    Caret,
    Repeat(u8),
    Range(u8, u8),
    EscapedDot,
    Digit,
    Flag(u8),
    Space,
    Hash,
    Newline,
    CloseBrace,
}

#[derive(Debug, Arbitrary)]
struct RouteIn {
    path: PathIn,
    regex: Option<(bool, Vec<RegexTok>)>,
    host: Option<(bool, u8)>,
    methods: Option<Vec<u8>>,
    headers: Vec<(u8, u8)>,
    query: Vec<(u8, u8)>,
}

#[derive(Debug, Arbitrary)]
enum PathReq {
    /// Route `i`'s path, `{param}`s filled with literals, plus extra segments.
    Route(u8, Vec<u8>, Vec<u8>),
    Segments(bool, Vec<u8>),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum HostReq {
    Known {
        host: u8,
        sub: Option<u8>,
        port: Option<u16>,
        upper: bool,
    },
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct RequestIn {
    path: PathReq,
    host: Option<HostReq>,
    method: u8,
    headers: Vec<(u8, u8)>,
    query: Option<Vec<(u8, u8)>>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    routes: Vec<RouteIn>,
    requests: Vec<RequestIn>,
}

enum Rule {
    Any,
    /// `None` for a `{param}`.
    Exact(Vec<Option<String>>),
    Prefix(Vec<String>),
}

/// A route as the reference sees it.
struct Model {
    name: String,
    path_text: Option<String>,
    rule: Rule,
    regex: Option<Regex>,
    host: Option<String>,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    conditions: usize,
}

fn regex_text(anchored: bool, toks: &[RegexTok]) -> String {
    let mut s = String::from(if anchored { "^" } else { "" });
    for t in toks.iter().take(16) {
        match t {
            RegexTok::Lit(i) => s.push_str(pick(LITERALS, *i)),
            RegexTok::Slash => s.push('/'),
            RegexTok::Dot => s.push('.'),
            RegexTok::Star => s.push('*'),
            RegexTok::Plus => s.push('+'),
            RegexTok::Question => s.push('?'),
            RegexTok::Digits => s.push_str("[0-9]"),
            RegexTok::Alt => s.push('|'),
            RegexTok::Open => s.push('('),
            RegexTok::Close => s.push(')'),
            RegexTok::Dollar => s.push('$'),
            RegexTok::Caret => s.push('^'),
            RegexTok::Repeat(n) => s.push_str(&format!("{{{}}}", n % 4)),
            RegexTok::Range(a, b) => s.push_str(&format!("{{{},{}}}", a % 3, a % 3 + b % 3)),
            RegexTok::EscapedDot => s.push_str("\\."),
            RegexTok::Digit => s.push_str("\\d"),
            RegexTok::Flag(f) => s.push_str(pick(&["(?i)", "(?x)", "(?m)", "(?s)", "(?-u)"], *f)),
            RegexTok::Space => s.push(' '),
            RegexTok::Hash => s.push('#'),
            RegexTok::Newline => s.push('\n'),
            RegexTok::CloseBrace => s.push('}'),
        }
    }
    s
}

/// The route's YAML and its model.
fn route(i: usize, r: &RouteIn) -> (String, Model) {
    let name = format!("r{i}");
    let mut fields: Vec<String> = Vec::new();
    let mut params = Vec::new();
    let (rule, path_text) = match &r.path {
        PathIn::Any => (Rule::Any, None),
        PathIn::Exact(segs) => {
            let mut text = String::new();
            for seg in segs.iter().take(10) {
                text.push('/');
                match seg {
                    Some(l) => text.push_str(pick(LITERALS, *l)),
                    None if params.len() < MAX_PARAMS => {
                        let p = format!("p{}", params.len());
                        text.push_str(&format!("{{{p}}}"));
                        params.push(p);
                    }
                    None => text.push_str("overflow"),
                }
            }
            if text.is_empty() {
                text.push('/');
            }
            fields.push(format!("path: {}", yaml_quote(&text)));
            // The README's reading of a path, from the text.
            let rule = Rule::Exact(
                segments(&text)
                    .into_iter()
                    .map(|s| {
                        let param = s.len() > 2 && s.starts_with('{') && s.ends_with('}');
                        (!param).then(|| s.to_owned())
                    })
                    .collect(),
            );
            (rule, Some(text))
        }
        PathIn::Prefix(segs, slash) => {
            let mut text = String::new();
            for l in segs.iter().take(10) {
                text.push('/');
                text.push_str(pick(LITERALS, *l));
            }
            if *slash || text.is_empty() {
                text.push('/');
            }
            fields.push(format!("pathPrefix: {}", yaml_quote(&text)));
            let trimmed = text.trim_end_matches('/');
            let rule = Rule::Prefix(segments(trimmed).into_iter().map(str::to_owned).collect());
            (rule, Some(text))
        }
    };
    let mut conditions = 0;
    let regex = r.regex.as_ref().and_then(|(anchored, toks)| {
        let text = regex_text(*anchored, toks);
        let re = Regex::new(&text).ok()?;
        fields.push(format!("pathRegex: {}", yaml_quote(&text)));
        conditions += 1;
        Some(re)
    });
    let host = r.host.map(|(wild, h)| {
        let h = pick(HOSTS, h);
        let text = if wild { format!("*.{h}") } else { h.to_owned() };
        fields.push(format!("host: {}", yaml_quote(&text)));
        conditions += 1;
        text
    });
    let mut methods: Vec<String> = Vec::new();
    if let Some(ms) = &r.methods {
        for m in ms.iter().take(3) {
            let m = pick(METHODS, *m).to_owned();
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        if !methods.is_empty() {
            let list: Vec<String> = methods.iter().map(|m| yaml_quote(m)).collect();
            fields.push(format!("method: [{}]", list.join(", ")));
            conditions += 1;
        }
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for &(n, v) in r.headers.iter().take(3) {
        let n = pick(HEADER_NAMES, n);
        if headers.iter().all(|(m, _)| !m.eq_ignore_ascii_case(n)) {
            headers.push((n.to_ascii_lowercase(), pick(VALUES, v).to_owned()));
        }
    }
    if !headers.is_empty() {
        let map: Vec<String> = headers
            .iter()
            .map(|(n, v)| format!("{}: {}", yaml_quote(n), yaml_quote(v)))
            .collect();
        fields.push(format!("headers: {{{}}}", map.join(", ")));
        conditions += headers.len();
    }
    let mut query: Vec<(String, String)> = Vec::new();
    for &(n, v) in r.query.iter().take(3) {
        let n = pick(QUERY_NAMES, n);
        if query.iter().all(|(m, _)| m != n) {
            query.push((n.to_owned(), pick(VALUES, v).to_owned()));
        }
    }
    if !query.is_empty() {
        let map: Vec<String> = query
            .iter()
            .map(|(n, v)| format!("{}: {}", yaml_quote(n), yaml_quote(v)))
            .collect();
        fields.push(format!("query: {{{}}}", map.join(", ")));
        conditions += query.len();
    }
    let mut yaml = format!("  - name: {name}\n    match: {{{}}}\n", fields.join(", "));
    if !params.is_empty() {
        let key: Vec<String> = params.iter().map(|p| format!("${{{p}}}")).collect();
        yaml.push_str(&format!(
            "    filters: [{{consistentHashKey: {}}}]\n",
            yaml_quote(&key.join("|"))
        ));
    }
    yaml.push_str("    backend: {status: 404}\n");
    let model = Model {
        name,
        path_text,
        rule,
        regex,
        host,
        methods,
        headers,
        query,
        conditions,
    };
    (yaml, model)
}

fn request(r: &RequestIn, models: &[Model]) -> Request {
    let path = match &r.path {
        PathReq::Route(i, fill, extra) if !models.is_empty() => {
            let m = &models[*i as usize % models.len()];
            let mut path = String::new();
            let mut fill = fill.iter();
            for seg in segments(m.path_text.as_deref().unwrap_or("/")) {
                path.push('/');
                if seg.starts_with('{') {
                    path.push_str(pick(LITERALS, fill.next().copied().unwrap_or(1)));
                } else {
                    path.push_str(seg);
                }
            }
            for l in extra.iter().take(4) {
                path.push('/');
                path.push_str(pick(LITERALS, *l));
            }
            if path.is_empty() {
                path.push('/');
            }
            path
        }
        PathReq::Route(..) => "/".to_owned(),
        PathReq::Segments(slash, segs) => {
            let mut path = String::from(if *slash { "/" } else { "" });
            let segs: Vec<&str> = segs.iter().take(12).map(|l| pick(LITERALS, *l)).collect();
            path.push_str(&segs.join("/"));
            path
        }
        PathReq::Raw(s) => s.clone(),
    };
    let host = r.host.as_ref().map(|h| match h {
        HostReq::Known {
            host,
            sub,
            port,
            upper,
        } => {
            let mut s = String::new();
            if let Some(sub) = sub {
                s.push_str(pick(&["x", "a", "b.a", ""], *sub));
                s.push('.');
            }
            s.push_str(pick(HOSTS, *host));
            if *upper {
                s = s.to_ascii_uppercase();
            }
            if let Some(port) = port {
                s.push_str(&format!(":{port}"));
            }
            s
        }
        HostReq::Raw(s) => s.clone(),
    });
    let mut req = Request {
        method: pick(METHODS, r.method).to_owned(),
        host,
        path,
        ..Request::default()
    };
    for &(n, v) in r.headers.iter().take(4) {
        req.add_header(pick(HEADER_NAMES, n), pick(VALUES, v));
    }
    req.query = r.query.as_ref().map(|pairs| {
        let pairs: Vec<String> = pairs
            .iter()
            .take(4)
            .map(|&(n, v)| format!("{}={}", pick(QUERY_NAMES, n), pick(VALUES, v)))
            .collect();
        pairs.join("&")
    });
    req
}

/// Every condition but the path rule.
fn holds(m: &Model, req: &Request) -> bool {
    if let Some(rule) = &m.host {
        let Some(host) = req.host.as_deref() else {
            return false;
        };
        let host = host_without_port(host).to_ascii_lowercase();
        if host.len() > MAX_HOST_LEN {
            return false;
        }
        let ok = match rule.strip_prefix('*') {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => host == *rule,
        };
        if !ok {
            return false;
        }
    }
    if !m.methods.is_empty() && !m.methods.contains(&req.method) {
        return false;
    }
    for (n, v) in &m.headers {
        let got = req.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        if got != Some(v) {
            return false;
        }
    }
    for (n, v) in &m.query {
        if first_query_value(req.query.as_deref().unwrap_or(""), n) != Some(v.as_str()) {
            return false;
        }
    }
    m.regex.as_ref().is_none_or(|re| re.is_match(&req.path))
}

/// A linear scan by the documented precedence: the winner's index and
/// captures.
fn reference<'r>(models: &[Model], req: &'r Request) -> Option<(usize, Vec<&'r str>)> {
    let segs = segments(&req.path);
    // Ties between routes at the same place: more conditions, then file order.
    let rank = |i: usize| (std::cmp::Reverse(models[i].conditions), i);
    let mut exact: Option<(usize, Vec<bool>, Vec<&str>)> = None;
    let mut prefix: Option<(usize, usize)> = None;
    let mut rest: Option<usize> = None;
    for (i, m) in models.iter().enumerate() {
        if !holds(m, req) {
            continue;
        }
        match &m.rule {
            Rule::Exact(pattern) => {
                if pattern.len() != segs.len() {
                    continue;
                }
                let mut literal = Vec::new();
                let mut captures = Vec::new();
                let fits = pattern.iter().zip(&segs).all(|(p, s)| match p {
                    Some(lit) => {
                        literal.push(true);
                        lit == s
                    }
                    None => {
                        literal.push(false);
                        captures.push(*s);
                        !s.is_empty()
                    }
                });
                if !fits {
                    continue;
                }
                let better = match &exact {
                    None => true,
                    // A literal segment beats a param at the first position
                    // they differ.
                    Some((j, best, _)) => match literal.cmp(best) {
                        Ordering::Greater => true,
                        Ordering::Less => false,
                        Ordering::Equal => rank(i) < rank(*j),
                    },
                };
                if better {
                    exact = Some((i, literal, captures));
                }
            }
            Rule::Prefix(p) => {
                if segs.len() < p.len() || p.iter().zip(&segs).any(|(a, b)| a != b) {
                    continue;
                }
                let better = prefix
                    .is_none_or(|(j, len)| p.len() > len || (p.len() == len && rank(i) < rank(j)));
                if better {
                    prefix = Some((i, p.len()));
                }
            }
            Rule::Any => {
                if rest.is_none_or(|j| rank(i) < rank(j)) {
                    rest = Some(i);
                }
            }
        }
    }
    if let Some((i, _, captures)) = exact {
        return Some((i, captures));
    }
    prefix.map(|(i, _)| i).or(rest).map(|i| (i, Vec::new()))
}

fuzz_target!(|input: Input| {
    let mut yaml = String::from("routes:\n");
    let mut models = Vec::new();
    for (i, r) in input.routes.iter().take(24).enumerate() {
        let (text, model) = route(i, r);
        yaml.push_str(&text);
        models.push(model);
    }
    if models.is_empty() {
        yaml.push_str("  []\n");
    }
    let table = match RouteTable::parse(ORIGIN, &yaml) {
        Ok(t) => t,
        Err(e) => panic!("a valid file refused:\n{e}\n{yaml}"),
    };
    assert_eq!(table.len(), models.len());
    let mut key = String::new();
    for r in input.requests.iter().take(16) {
        let req = request(r, &models);
        let got = table.find(&req);
        let want = reference(&models, &req);
        match (&got, &want) {
            (None, None) => {}
            (Some(m), Some((i, captures))) => {
                assert_eq!(
                    m.route.name, models[*i].name,
                    "{req:?} in\n{yaml}\ncaptures {m:?}"
                );
                let params: Vec<&str> = m.params().map(|(_, v)| v).collect();
                assert_eq!(&params, captures, "{req:?} in\n{yaml}");
                assert!(params.len() <= MAX_PARAMS);
                if !params.is_empty() {
                    m.route.hash_key(m, &req, &mut key);
                    assert_eq!(key, params.join("|"));
                }
            }
            _ => panic!(
                "{req:?}: matcher {:?}, reference {:?} in\n{yaml}",
                got.map(|m| m.route.name.clone()),
                want.map(|(i, _)| &models[i].name)
            ),
        }
    }
});
