//! `consistentHashKey` templates: text mixed with `${...}` placeholders.

use std::fmt;

use crate::request::{cookie, query_param, write_client_address, RequestParts};
use crate::table::Match;

/// A parsed template. It keeps its source text for display and JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A `{param}` captured by the route's `path`.
    Param(String),
    Path,
    Host,
    Method,
    Query(String),
    /// Lowercase, as [`RequestParts::header`] expects.
    Header(String),
    Cookie(String),
    Source,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated \"${{\" in template {source:?}"))?;
            parts.push(placeholder(&after[..end], source)?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The path parameters the template names, for checking them against
    /// the route's `path`.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Clears `out` and writes the resolved key. False, with `out` in an
    /// unspecified state, when some placeholder is empty or missing.
    pub fn resolve<R: RequestParts + ?Sized>(
        &self,
        m: &Match<'_, '_>,
        req: &R,
        out: &mut String,
    ) -> bool {
        out.clear();
        for part in &self.parts {
            let before = out.len();
            let value = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::Param(name) => m.param(name),
                Part::Path => Some(req.path()),
                Part::Host => req.host(),
                Part::Method => Some(req.method()),
                Part::Query(name) => req.query().and_then(|q| query_param(q, name)),
                Part::Header(name) => req.header(name),
                Part::Cookie(name) => req.header("cookie").and_then(|h| cookie(h, name)),
                Part::Source => {
                    write_client_address(req, out);
                    if out.len() == before {
                        return false;
                    }
                    continue;
                }
            };
            match value {
                Some(v) if !v.is_empty() => out.push_str(v),
                _ => return false,
            }
        }
        true
    }
}

fn placeholder(inner: &str, source: &str) -> Result<Part, String> {
    let bad = |why: String| Err(format!("{why} in template {source:?}"));
    if inner.is_empty() {
        return bad("empty placeholder \"${}\"".to_owned());
    }
    let Some(field) = inner.strip_prefix("request.") else {
        return if is_param_name(inner) {
            Ok(Part::Param(inner.to_owned()))
        } else {
            bad(format!(
                "bad placeholder \"${{{inner}}}\": expected a path parameter name or request.FIELD"
            ))
        };
    };
    let named = |prefix: &str| {
        field
            .strip_prefix(prefix)
            .map(|name| (!name.is_empty()).then(|| name.to_owned()))
    };
    let part = match field {
        "path" => Part::Path,
        "host" => Part::Host,
        "method" => Part::Method,
        "source" => Part::Source,
        _ => match (named("query."), named("header."), named("cookie.")) {
            (Some(Some(n)), _, _) => Part::Query(n),
            (_, Some(Some(n)), _) => Part::Header(n.to_ascii_lowercase()),
            (_, _, Some(Some(n))) => Part::Cookie(n),
            (Some(None), _, _) | (_, Some(None), _) | (_, _, Some(None)) => {
                return bad(format!("empty name in \"${{{inner}}}\""));
            }
            _ => {
                return bad(format!(
                    "unknown field \"{field}\" in \"${{{inner}}}\" (expected one of: path, host, \
                     method, source, query.NAME, header.NAME, cookie.NAME)"
                ))
            }
        },
    };
    Ok(part)
}

/// Names of `{param}` path segments and `${param}` placeholders.
pub(crate) fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_placeholders() {
        let t = Template::parse("sku-${id}/${request.header.X-Tenant}$x").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("sku-".into()),
                Part::Param("id".into()),
                Part::Text("/".into()),
                Part::Header("x-tenant".into()),
                Part::Text("$x".into()),
            ]
        );
        assert_eq!(t.params().collect::<Vec<_>>(), ["id"]);
        assert_eq!(t.as_str(), "sku-${id}/${request.header.X-Tenant}$x");
    }

    #[test]
    fn every_request_field_parses() {
        for f in [
            "path", "host", "method", "source", "query.q", "header.h", "cookie.c",
        ] {
            Template::parse(&format!("${{request.{f}}}")).unwrap();
        }
    }

    #[test]
    fn refuses_bad_templates() {
        let cases = [
            ("${id", "unterminated \"${\" in template \"${id\""),
            ("a${}", "empty placeholder \"${}\" in template \"a${}\""),
            (
                "${request.query.}",
                "empty name in \"${request.query.}\" in template \"${request.query.}\"",
            ),
            ("${request.nope}", "unknown field \"nope\""),
            ("${a-b}", "bad placeholder \"${a-b}\""),
        ];
        for (text, want) in cases {
            let err = Template::parse(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }
}
