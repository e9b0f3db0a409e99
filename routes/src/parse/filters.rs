//! The `filters:` section: a list of single-key maps in Skipper's names.

use crate::marks::{Kind, Node, Pos};
use crate::reader::Reader;
use crate::spec::{FadeInSpec, Filter, LifoGroupSpec, LifoSpec};
use crate::template::Template;
use crate::validate;

const FILTERS: &[&str] = &[
    "consistentHashKey",
    "consistentHashBalanceFactor",
    "lifo",
    "lifoGroup",
    "setRequestHeader",
    "setResponseHeader",
    "fadeIn",
];

/// Filters in file order, each with the position of its value.
pub(super) fn parse_filters(
    r: &mut Reader<'_>,
    node: &Node,
    params: &[String],
) -> Vec<(Filter, Pos)> {
    let mut out = Vec::new();
    if node.is_null() {
        return out;
    }
    let Some(items) = r.list(node, "filters") else {
        return out;
    };
    for item in items {
        let single = match &item.kind {
            Kind::Map(pairs) if pairs.len() == 1 => Some(&pairs[0]),
            _ => None,
        };
        let Some((key, value)) = single else {
            r.error(
                item.pos,
                format!(
                    "each filter must be a map with a single key, the filter's name \
                     (e.g. \"- lifo: {{maxConcurrency: 10}}\"), got {}",
                    item.describe()
                ),
            );
            continue;
        };
        let Some(name) = r.string(key, "a filter name") else {
            continue;
        };
        if let Some(filter) = parse_filter(r, name, key, value, params) {
            out.push((filter, value.pos));
        }
    }
    out
}

fn parse_filter(
    r: &mut Reader<'_>,
    name: &str,
    key: &Node,
    value: &Node,
    params: &[String],
) -> Option<Filter> {
    Some(match name {
        "consistentHashKey" => {
            let text = r.string(value, "filter consistentHashKey")?;
            let template = match Template::parse(text) {
                Ok(t) => t,
                Err(why) => {
                    r.error(value.pos, format!("filter consistentHashKey: {why}"));
                    return None;
                }
            };
            let uncaptured: Vec<&str> = template
                .params()
                .filter(|p| !params.iter().any(|q| q == p))
                .collect();
            if let Some(p) = uncaptured.first() {
                r.error(
                    value.pos,
                    format!(
                        "filter consistentHashKey: template {text:?} uses ${{{p}}}, but the \
                         route's path captures no {{{p}}}"
                    ),
                );
                return None;
            }
            Filter::ConsistentHashKey(template)
        }
        "consistentHashBalanceFactor" => {
            let f = r.number(value, "filter consistentHashBalanceFactor")?;
            if f.is_nan() || f < 1.0 {
                r.error(
                    value.pos,
                    format!("filter consistentHashBalanceFactor must be >= 1, got {f}"),
                );
                return None;
            }
            Filter::ConsistentHashBalanceFactor(f)
        }
        "lifo" => Filter::Lifo(parse_lifo(r, value, None)?),
        "fadeIn" => Filter::FadeIn(parse_fade_in(r, value)?),
        "lifoGroup" => {
            let mut group_name = None;
            let spec = parse_lifo(r, value, Some(&mut group_name))?;
            Filter::LifoGroup(LifoGroupSpec {
                name: group_name?,
                spec,
            })
        }
        "setRequestHeader" | "setResponseHeader" => {
            let what = format!("filter {name}");
            let f = r.fields(value, &what, &["name", "value"])?;
            let header = r
                .required(&f, value, &what, "name")
                .and_then(|n| r.string(n, &format!("{what} name")));
            let header = header.filter(|h| {
                let pos = f.get("name").map_or(value.pos, |n| n.pos);
                if !validate::is_token(h) {
                    r.error(pos, format!("{what}: bad header name {h:?}"));
                    return false;
                }
                if let Some(why) = validate::unsettable_header(h, name == "setRequestHeader") {
                    r.error(pos, format!("{what}: {h:?} {why}"));
                    return false;
                }
                true
            });
            let text = r
                .required(&f, value, &what, "value")
                .and_then(|v| r.string(v, &format!("{what} value")));
            // As `http::HeaderValue`: no control characters (CR/LF would inject headers).
            let text = text.filter(|t| {
                let ok = !t.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
                if !ok {
                    r.error(
                        f.get("value").map_or(value.pos, |v| v.pos),
                        format!("{what}: header value {t:?} has control characters"),
                    );
                }
                ok
            });
            let (name_text, value_text) = (header?.to_owned(), text?.to_owned());
            if name == "setRequestHeader" {
                Filter::SetRequestHeader {
                    name: name_text,
                    value: value_text,
                }
            } else {
                Filter::SetResponseHeader {
                    name: name_text,
                    value: value_text,
                }
            }
        }
        _ => {
            r.error(
                key.pos,
                format!(
                    "unknown filter {name:?} (expected one of: {})",
                    FILTERS.join(", ")
                ),
            );
            return None;
        }
    })
}

/// `fadeIn: 30s` (exponent 1) or `fadeIn: {duration: 30s, exponent: 1.5}`.
fn parse_fade_in(r: &mut Reader<'_>, node: &Node) -> Option<FadeInSpec> {
    let what = "filter fadeIn";
    if !matches!(node.kind, Kind::Map(_)) {
        let duration = r.duration(node, what)?;
        return Some(FadeInSpec {
            duration,
            exponent: 1.0,
        });
    }
    let f = r.fields(node, what, &["duration", "exponent"])?;
    let duration = r
        .required(&f, node, what, "duration")
        .and_then(|d| r.duration(d, &format!("{what} duration")));
    let exponent = match f.get("exponent") {
        None => Some(1.0),
        Some(e) => r.number(e, &format!("{what} exponent")).filter(|x| {
            // A ramp needs a positive, finite shape; 0 would skip it entirely.
            let ok = x.is_finite() && *x > 0.0;
            if !ok {
                r.error(e.pos, format!("{what} exponent must be > 0, got {x}"));
            }
            ok
        }),
    };
    Some(FadeInSpec {
        duration: duration?,
        exponent: exponent?,
    })
}

/// `lifo` and `lifoGroup` settings; missing fields take Skipper's defaults.
/// With `group`, a `name` is required and written there.
fn parse_lifo(
    r: &mut Reader<'_>,
    node: &Node,
    group: Option<&mut Option<String>>,
) -> Option<LifoSpec> {
    let what = if group.is_some() {
        "filter lifoGroup"
    } else {
        "filter lifo"
    };
    let mut spec = LifoSpec::default();
    if node.is_null() && group.is_none() {
        return Some(spec);
    }
    let keys: &[&str] = if group.is_some() {
        &["name", "maxConcurrency", "maxQueueSize", "timeout"]
    } else {
        &["maxConcurrency", "maxQueueSize", "timeout"]
    };
    let f = r.fields(node, what, keys)?;
    let mut ok = true;
    if let Some(group) = group {
        let name = r.required(&f, node, what, "name").and_then(|n| {
            let name = r.string(n, &format!("{what} name"))?;
            if !validate::is_name(name) {
                r.error(
                    n.pos,
                    format!("{what} name must be letters, digits, '-' and '_', got {name:?}"),
                );
                return None;
            }
            Some(name.to_owned())
        });
        ok &= name.is_some();
        *group = name;
    }
    if let Some(v) = f.get("maxConcurrency") {
        let n = r.integer_in(v, &format!("{what} maxConcurrency"), 1, i64::MAX);
        ok &= n.is_some();
        spec.max_concurrency = n.map_or(0, |n| n as usize);
    }
    if let Some(v) = f.get("maxQueueSize") {
        let n = r.integer_in(v, &format!("{what} maxQueueSize"), 0, i64::MAX);
        ok &= n.is_some();
        spec.max_queue_size = n.map_or(0, |n| n as usize);
    }
    if let Some(v) = f.get("timeout") {
        let d = r.duration(v, &format!("{what} timeout"));
        ok &= d.is_some();
        spec.timeout = d.unwrap_or_default();
    }
    ok.then_some(spec)
}
