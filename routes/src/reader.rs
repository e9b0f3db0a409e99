//! Typed reads from the marked YAML tree that record every problem at the
//! node's position instead of stopping at the first one.

use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::RouteError;
use crate::marks::{Kind, Node, Pos, Scalar};

/// Collects errors for one file; `route` names the route being read.
pub(crate) struct Reader<'f> {
    file: &'f str,
    pub route: Option<String>,
    pub errors: Vec<RouteError>,
}

/// A map's entries: key text, key node, value node.
pub(crate) struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.entry(name).map(|(_, value)| value)
    }

    /// The key node and the value node.
    pub fn entry(&self, name: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|&(_, key, value)| (key, value))
    }

    pub fn iter(&self) -> impl Iterator<Item = &(&'n str, &'n Node, &'n Node)> {
        self.entries.iter()
    }
}

impl<'f> Reader<'f> {
    pub fn new(file: &'f str) -> Self {
        Reader {
            file,
            route: None,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(RouteError {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            route: self.route.clone(),
            message: message.into(),
        });
    }

    /// A map with arbitrary scalar keys; duplicate keys are errors.
    pub fn entries<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        let Kind::Map(pairs) = &node.kind else {
            self.error(
                node.pos,
                format!("{what} must be a map, got {}", node.describe()),
            );
            return None;
        };
        let mut entries: Vec<(&str, &Node, &Node)> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Kind::Scalar { text, .. } = &key.kind else {
                self.error(key.pos, format!("keys in {what} must be plain text"));
                continue;
            };
            if entries.iter().any(|(k, _, _)| k == text) {
                self.error(key.pos, format!("duplicate key {text:?} in {what}"));
                continue;
            }
            entries.push((text, key, value));
        }
        Some(Fields { entries })
    }

    /// A map whose keys must be among `allowed`; unknown keys are errors at
    /// the key.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let mut fields = self.entries(node, what)?;
        fields.entries.retain(|&(key, key_node, _)| {
            let known = allowed.contains(&key);
            if !known {
                self.error(
                    key_node.pos,
                    format!(
                        "unknown key {key:?} in {what} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
            known
        });
        Some(fields)
    }

    pub fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match node.scalar() {
            Some(Scalar::Str(s)) => Some(s),
            _ => {
                let hint = match node.scalar() {
                    Some(Scalar::Int(_) | Scalar::Float(_) | Scalar::Bool(_)) => {
                        " (quote it to make it text)"
                    }
                    _ => "",
                };
                self.error(
                    node.pos,
                    format!("{what} must be a string, got {}{hint}", node.describe()),
                );
                None
            }
        }
    }

    pub fn integer(&mut self, node: &Node, what: &str) -> Option<i64> {
        match node.scalar() {
            Some(Scalar::Int(i)) => Some(i),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be an integer, got {}", node.describe()),
                );
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn integer_in(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let i = self.integer(node, what)?;
        if i < min {
            self.error(node.pos, format!("{what} must be >= {min}, got {i}"));
            return None;
        }
        if i > max {
            self.error(node.pos, format!("{what} must be <= {max}, got {i}"));
            return None;
        }
        Some(i)
    }

    pub fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        match node.scalar() {
            Some(Scalar::Int(i)) => Some(i as f64),
            Some(Scalar::Float(f)) => Some(f),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a number, got {}", node.describe()),
                );
                None
            }
        }
    }

    /// A Go-style duration greater than zero.
    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match (&node.kind, node.scalar()) {
            (_, Some(Scalar::Null | Scalar::Bool(_))) | (_, None) => {
                self.error(
                    node.pos,
                    format!(
                        "{what} must be a duration like \"10s\", got {}",
                        node.describe()
                    ),
                );
                return None;
            }
            (Kind::Scalar { text, .. }, _) => text,
            _ => unreachable!("non-scalars have no scalar value"),
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(
                    node.pos,
                    format!("{what} must be greater than 0, got {text:?}"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                self.error(node.pos, format!("{what}: {why}"));
                None
            }
        }
    }

    /// The value of a required key, or an error at the map.
    pub fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        map: &Node,
        what: &str,
        key: &str,
    ) -> Option<&'n Node> {
        let value = fields.get(key);
        if value.is_none() {
            self.error(map.pos, format!("{what} is missing \"{key}\""));
        }
        value
    }

    /// A list's items; `what` names it in the error for anything else.
    pub fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a list, got {}", node.describe()),
                );
                None
            }
        }
    }
}
