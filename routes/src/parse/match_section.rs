//! The `match:` section.

use regex::Regex;

use crate::marks::{Kind, Node};
use crate::matcher::{
    anchored_literal_prefix, parse_path, parse_prefix, Compiled, HostRule, PathRule,
};
use crate::reader::Reader;
use crate::spec::MatchSpec;
use crate::validate;

const MATCH_KEYS: &[&str] = &[
    "path",
    "pathPrefix",
    "pathRegex",
    "host",
    "method",
    "headers",
    "query",
];

pub(super) fn parse_match(r: &mut Reader<'_>, node: Option<&Node>) -> (MatchSpec, Compiled) {
    let mut spec = MatchSpec::default();
    let mut compiled = Compiled::default();
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return (spec, compiled);
    };
    let Some(f) = r.fields(node, "match", MATCH_KEYS) else {
        return (spec, compiled);
    };
    if let (Some((path_key, _)), Some((prefix_key, _))) = (f.entry("path"), f.entry("pathPrefix")) {
        r.error(
            path_key.pos.max(prefix_key.pos),
            "match takes \"path\" or \"pathPrefix\", not both",
        );
    } else if let Some(v) = f.get("path") {
        if let Some(path) = absolute_path(r, v, "match.path") {
            match parse_path(path) {
                Ok((segments, params)) => {
                    compiled.path = PathRule::Exact(segments);
                    compiled.params = params;
                    spec.path = Some(path.to_owned());
                }
                Err(why) => r.error(v.pos, format!("match.path: {why}")),
            }
        }
    } else if let Some(v) = f.get("pathPrefix") {
        if let Some(prefix) = absolute_path(r, v, "match.pathPrefix") {
            if prefix.contains(['{', '}']) {
                r.error(
                    v.pos,
                    format!("match.pathPrefix {prefix:?} cannot capture {{params}}; use path"),
                );
            } else {
                compiled.path = PathRule::Prefix(parse_prefix(prefix));
                spec.path_prefix = Some(prefix.to_owned());
            }
        }
    }
    if let Some(v) = f.get("pathRegex") {
        if let Some(re) = r.string(v, "match.pathRegex") {
            match Regex::new(re) {
                Ok(compiled_re) => {
                    compiled.regex = Some(compiled_re);
                    compiled.regex_prefix = anchored_literal_prefix(re);
                    spec.path_regex = Some(re.to_owned());
                    compiled.conditions += 1;
                }
                Err(e) => r.error(
                    v.pos,
                    format!(
                        "match.pathRegex {re:?} is not a valid regex: {}",
                        regex_reason(&e)
                    ),
                ),
            }
        }
    }
    if let Some(v) = f.get("host") {
        if let Some(host) = r.string(v, "match.host") {
            match validate::check_host(host) {
                Ok(host) => {
                    compiled.host = Some(match host.strip_prefix('*') {
                        Some(suffix) => HostRule::Suffix(suffix.to_owned()),
                        None => HostRule::Exact(host.clone()),
                    });
                    spec.host = Some(host);
                    compiled.conditions += 1;
                }
                Err(why) => r.error(v.pos, format!("match.host: {why}")),
            }
        }
    }
    if let Some(v) = f.get("method") {
        let items = match &v.kind {
            Kind::Seq(items) => items.as_slice(),
            _ => std::slice::from_ref(v),
        };
        if items.is_empty() {
            r.error(v.pos, "match.method must name at least one method");
        }
        for item in items {
            if let Some(m) = r.string(item, "match.method") {
                match validate::check_method(m) {
                    Ok(()) => spec.methods.push(m.to_owned()),
                    Err(why) => r.error(item.pos, format!("match.method: {why}")),
                }
            }
        }
        if !spec.methods.is_empty() {
            compiled.conditions += 1;
        }
    }
    if let Some(v) = f.get("headers") {
        if let Some(headers) = r.entries(v, "match.headers") {
            for &(name, key, value) in headers.iter() {
                let lower = name.to_ascii_lowercase();
                if !validate::is_token(name) {
                    r.error(key.pos, format!("match.headers: bad header name {name:?}"));
                } else if spec.headers.iter().any(|(n, _)| *n == lower) {
                    r.error(
                        key.pos,
                        format!("match.headers: header {name:?} appears twice (names ignore case)"),
                    );
                } else if let Some(value) = r.string(value, &format!("match.headers.{name}")) {
                    spec.headers.push((lower, value.to_owned()));
                }
            }
            compiled.conditions += spec.headers.len();
        }
    }
    if let Some(v) = f.get("query") {
        if let Some(query) = r.entries(v, "match.query") {
            for &(name, _, value) in query.iter() {
                if let Some(value) = r.string(value, &format!("match.query.{name}")) {
                    spec.query.push((name.to_owned(), value.to_owned()));
                }
            }
            compiled.conditions += spec.query.len();
        }
    }
    (spec, compiled)
}

fn absolute_path<'n>(r: &mut Reader<'_>, node: &'n Node, what: &str) -> Option<&'n str> {
    let path = r.string(node, what)?;
    if !path.starts_with('/') {
        r.error(
            node.pos,
            format!("{what} must start with \"/\", got {path:?}"),
        );
        return None;
    }
    Some(path)
}

/// The regex crate's message spans several lines (pattern, caret, reason);
/// errors are one per line, so keep the reason.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().last().unwrap_or_default())
        .to_owned()
}
