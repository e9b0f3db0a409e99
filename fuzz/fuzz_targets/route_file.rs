//! Arbitrary text as a route file, the way the binary loads it.
//!
//! Invariants: `RouteTable::parse` never panics; every error names the
//! file, sits at a line and column inside the text, is one line, and errors
//! come in file order; an accepted table serialises for the admin page, and
//! for every route without a regex, a request built to meet all of its
//! conditions matches a route at least as specific (exact > prefix > none),
//! with well-formed captures and a resolvable hash key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringress_fuzz::{segments, Request, ORIGIN};
use ringress_routes::{Route, RouteErrors, RouteTable};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match RouteTable::parse(ORIGIN, &text) {
        Ok(table) => check_table(&table),
        Err(errors) => check_errors(&text, &errors),
    }
});

/// Characters per line, lines ending at `\r\n`, `\r` or `\n` as in YAML.
fn line_lengths(text: &str) -> Vec<usize> {
    let mut lines = vec![0];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(0);
            }
            '\n' => lines.push(0),
            _ => *lines.last_mut().unwrap() += 1,
        }
    }
    lines
}

fn check_errors(text: &str, errors: &RouteErrors) {
    assert!(!errors.is_empty(), "an error result without errors");
    let lines = line_lengths(text);
    let mut previous = (0, 0);
    for e in errors {
        assert_eq!(e.file, ORIGIN);
        assert!(
            e.line >= 1 && e.line <= lines.len(),
            "line {} outside 1..={}: {e}",
            e.line,
            lines.len()
        );
        let width = lines[e.line - 1];
        assert!(
            e.column >= 1 && e.column <= width + 1,
            "column {} outside 1..={} on line {}: {e}",
            e.column,
            width + 1,
            e.line
        );
        assert!(!e.message.is_empty(), "empty message at {e}");
        assert!(
            !e.message.contains(['\n', '\r']),
            "errors are one line each: {e:?}"
        );
        let shown = e.to_string();
        let want = format!("{ORIGIN}:{}:{}: ", e.line, e.column);
        assert!(shown.starts_with(&want), "{shown:?} lacks {want:?}");
        assert!(
            (e.line, e.column) >= previous,
            "errors out of order: {errors}"
        );
        previous = (e.line, e.column);
    }
}

/// 2 for an exact `path`, 1 for a `pathPrefix`, 0 for neither.
fn class(route: &Route) -> u8 {
    if route.matcher.path.is_some() {
        2
    } else if route.matcher.path_prefix.is_some() {
        1
    } else {
        0
    }
}

/// A request meeting every condition of `route`, when one can be written
/// down without solving a regex.
fn request_for(route: &Route) -> Option<Request> {
    let m = &route.matcher;
    if m.path_regex.is_some() {
        return None;
    }
    let mut req = Request {
        method: m.methods.first().cloned().unwrap_or_else(|| "GET".into()),
        // `{id}` is itself a non-empty segment, so a parameter captures it.
        path: m
            .path
            .clone()
            .or_else(|| m.path_prefix.clone())
            .unwrap_or_else(|| "/".into()),
        host: m.host.as_ref().map(|h| match h.strip_prefix('*') {
            Some(suffix) => format!("x{suffix}"),
            None => h.clone(),
        }),
        ..Request::default()
    };
    for (name, value) in &m.headers {
        req.add_header(name, value);
    }
    if !m.query.is_empty() {
        let mut query = String::new();
        for (name, value) in &m.query {
            // A name with `=` or `&`, or a value with `&`, has no request
            // that carries it.
            if name.contains(['=', '&']) || value.contains('&') {
                return None;
            }
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(name);
            query.push('=');
            query.push_str(value);
        }
        req.query = Some(query);
    }
    Some(req)
}

fn check_table(table: &RouteTable) {
    serde_json::to_string(table).expect("tables serialise for /routes");
    let mut key = String::new();
    for route in table.routes() {
        let found = table.get(&route.name).expect("every route by its name");
        assert!(std::sync::Arc::ptr_eq(found, route), "names are unique");
        let Some(req) = request_for(route) else {
            continue;
        };
        let Some(m) = table.find(&req) else {
            panic!("{:?} meets route {:?} but matches nothing", req, route.name)
        };
        assert!(
            class(m.route) >= class(route),
            "{req:?}: {:?} lost to the less specific {:?}",
            route.name,
            m.route.name
        );
        let request_segments = segments(&req.path);
        if let Some(path) = &m.route.matcher.path {
            assert_eq!(segments(path).len(), request_segments.len());
        }
        let names = m.route.param_names();
        assert_eq!(m.params().count(), names.len(), "{m:?}");
        for (name, value) in m.params() {
            assert!(!value.is_empty() && !value.contains('/'), "{m:?}");
            assert!(request_segments.contains(&value), "{m:?}");
            assert_eq!(m.param(name), Some(value));
        }
        m.route.hash_key(&m, &req, &mut key);
    }
}
