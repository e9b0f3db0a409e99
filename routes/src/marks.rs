//! A YAML node tree in which every node keeps its 1-based line and column,
//! built from yaml-rust2's marked events. serde_yaml reports positions only
//! for syntax errors; validation needs them for every key and value.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column of a node's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn of(m: &Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }

    /// Just past the last character of `text`, lines ending at `\r\n`,
    /// `\r` or `\n` as in YAML.
    fn after(text: &str) -> Pos {
        let mut end = Pos::START;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\r' || c == '\n' {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                end.line += 1;
                end.column = 1;
            } else {
                end.column += 1;
            }
        }
        end
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// `quoted` covers every non-plain style and `!!str`: such text is never
    /// resolved to a number, boolean or null.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// What a scalar is under the YAML 1.2 core schema, for type checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        match &self.kind {
            Kind::Scalar { text, quoted: true } => Some(Scalar::Str(text)),
            Kind::Scalar {
                text,
                quoted: false,
            } => Some(resolve_plain(text)),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.scalar(), Some(Scalar::Null))
    }

    /// What the node is, for "expected X, got Y" messages.
    pub fn describe(&self) -> String {
        match (&self.kind, self.scalar()) {
            (Kind::Seq(_), _) => "a list".to_owned(),
            (Kind::Map(_), _) => "a map".to_owned(),
            (_, Some(Scalar::Null)) => "nothing (null)".to_owned(),
            (_, Some(Scalar::Bool(b))) => format!("the boolean {b}"),
            (_, Some(Scalar::Int(i))) => format!("the integer {i}"),
            (_, Some(Scalar::Float(f))) => format!("the number {f}"),
            (_, Some(Scalar::Str(s))) => format!("the string {s:?}"),
            (Kind::Scalar { .. }, None) => unreachable!("scalars always resolve"),
        }
    }
}

fn resolve_plain(text: &str) -> Scalar<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Scalar::Int(i);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Scalar::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Scalar::Int(i);
        }
    }
    let looks_numeric = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && unsigned.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Scalar::Float(f);
        }
    }
    Scalar::Str(text)
}

/// A syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses the first document of `text`. `Ok(None)` for an empty stream; a
/// second document is an error, since it would otherwise be ignored silently.
pub fn load(text: &str) -> Result<Option<Node>, SyntaxError> {
    // yaml-rust2 puts the end of a stream that lacks a final line break on
    // a line after the text, so errors and empty values there would name a
    // line the file does not have; they point at the text's end instead.
    let end = Pos::after(text);
    // YAML allows no NUL in a stream, and yaml-rust2 takes one for the end
    // of the text, after which its positions no longer match the text.
    if let Some(i) = text.find('\0') {
        return Err(SyntaxError {
            pos: Pos::after(&text[..i]),
            message: "YAML syntax error: a NUL character (U+0000) is not allowed".to_owned(),
        });
    }
    let mut builder = Builder {
        end,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        pos: Pos::of(e.marker()).min(end),
        message: format!("YAML syntax error: {}", e.info()),
    })?;
    if let Some(pos) = builder.over_budget {
        return Err(SyntaxError {
            pos,
            message: format!(
                "YAML aliases here copy more than {MAX_COPIED_NODES} nodes in all; \
                 nested aliases multiply, write the routes out instead"
            ),
        });
    }
    if let Some(pos) = builder.second_document {
        return Err(SyntaxError {
            pos,
            message: "only one YAML document is allowed in a route file".to_owned(),
        });
    }
    Ok(builder.documents.into_iter().next())
}

/// Most nodes that anchors and aliases may copy in one file. Every alias
/// copies its anchored node, and aliases of nodes made of aliases multiply:
/// 400 bytes of eight nested anchors expanded to 10^8 nodes (19 GB, 73 s).
/// Real files alias endpoint lists and header maps: thousands of nodes.
pub const MAX_COPIED_NODES: usize = 100_000;

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
        size: usize,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        size: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes with their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    documents: Vec<Node>,
    second_document: Option<Pos>,
    end: Pos,
    copied: usize,
    /// Where the copies first went over [`MAX_COPIED_NODES`].
    over_budget: Option<Pos>,
}

impl Builder {
    /// Counts `size` more copied nodes; false once over the budget.
    fn copy_allowed(&mut self, size: usize, pos: Pos) -> bool {
        self.copied = self.copied.saturating_add(size);
        if self.copied > MAX_COPIED_NODES {
            self.over_budget.get_or_insert(pos);
        }
        self.over_budget.is_none()
    }

    /// Adds a finished node of `size` nodes to its parent.
    fn complete(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor != 0 && self.copy_allowed(size, node.pos) {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            Some(Frame::Seq {
                items, size: total, ..
            }) => {
                *total += size;
                items.push(node);
            }
            Some(Frame::Map {
                pos,
                entries,
                key,
                size: total,
                ..
            }) => {
                *total += size;
                match key.take() {
                    Some(k) => entries.push((k, node)),
                    None => {
                        // A block mapping's start mark lies after its first
                        // key; the first key is where a reader sees the map
                        // begin.
                        if entries.is_empty() && node.pos < *pos {
                            *pos = node.pos;
                        }
                        *key = Some(node);
                    }
                }
            }
            None if self.documents.is_empty() => self.documents.push(node),
            None => {
                self.second_document.get_or_insert(node.pos);
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let pos = Pos::of(&mark).min(self.end);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.suffix == "str" || t.suffix == "tag:yaml.org,2002:str");
                let quoted = style != TScalarStyle::Plain || is_str_tag;
                let node = Node {
                    pos,
                    kind: Kind::Scalar { text, quoted },
                };
                self.complete(node, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                pos,
                anchor,
                items: Vec::new(),
                size: 1,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                pos,
                anchor,
                entries: Vec::new(),
                key: None,
                size: 1,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, size) = match self.stack.pop() {
                    Some(Frame::Seq {
                        pos,
                        anchor,
                        items,
                        size,
                    }) => (
                        Node {
                            pos,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                        size,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        size,
                        ..
                    }) => (
                        Node {
                            pos,
                            kind: Kind::Map(entries),
                        },
                        anchor,
                        size,
                    ),
                    None => return,
                };
                self.complete(node, anchor, size);
            }
            Event::Alias(id) => {
                // The parser refuses unknown anchors; an anchor over the
                // budget was not kept, and a null stands in so that maps
                // still pair keys with values until `load` reports it.
                let size = self.anchors.get(&id).map_or(0, |(_, size)| *size);
                let kind = match self.copy_allowed(size, pos) {
                    true => self.anchors.get(&id).map(|(node, _)| node.kind.clone()),
                    false => None,
                };
                let (kind, size) = match kind {
                    Some(kind) => (kind, size),
                    None => (
                        Kind::Scalar {
                            text: String::new(),
                            quoted: false,
                        },
                        1,
                    ),
                };
                self.complete(Node { pos, kind }, 0, size);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_entries(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            Kind::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_and_exact() {
        let root = load("a: 1\nb:\n  c: \"x\"\n  d: [1, {e: f}]\n")
            .unwrap()
            .unwrap();
        assert_eq!(root.pos, Pos { line: 1, column: 1 });
        let e = map_entries(&root);
        assert_eq!(e[0].1.pos, Pos { line: 1, column: 4 });
        assert_eq!(
            e[1].1.pos,
            Pos { line: 3, column: 3 },
            "block map at its first key"
        );
        let inner = map_entries(&e[1].1);
        assert_eq!(
            inner[0].1.pos,
            Pos { line: 3, column: 6 },
            "quoted at the quote"
        );
        assert_eq!(inner[1].1.pos, Pos { line: 4, column: 6 });
        let Kind::Seq(items) = &inner[1].1.kind else {
            panic!()
        };
        assert_eq!(
            items[1].pos,
            Pos {
                line: 4,
                column: 10
            },
            "flow map at its brace"
        );
    }

    #[test]
    fn scalars_resolve_like_yaml_core_schema() {
        let cases = [
            ("~", Scalar::Null),
            ("true", Scalar::Bool(true)),
            ("42", Scalar::Int(42)),
            ("-3", Scalar::Int(-3)),
            ("0.5", Scalar::Float(0.5)),
            ("1e3", Scalar::Float(1000.0)),
            ("10s", Scalar::Str("10s")),
            ("yes", Scalar::Str("yes")),
            ("1.2.3", Scalar::Str("1.2.3")),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_plain(text), want, "{text}");
        }
        let quoted = load("\"1\"").unwrap().unwrap();
        assert_eq!(quoted.scalar(), Some(Scalar::Str("1")));
        let tagged = load("!!str 1").unwrap().unwrap();
        assert_eq!(tagged.scalar(), Some(Scalar::Str("1")));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let root = load("a: &x {k: v}\nb: *x\n").unwrap().unwrap();
        let e = map_entries(&root);
        assert_eq!(map_entries(&e[1].1).len(), 1);
        assert_eq!(e[1].1.pos, Pos { line: 2, column: 4 });
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let err = load("a: [1, 2\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax error"), "{err:?}");
        assert_eq!(err.pos.line, 2);
        let err = load("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
    }

    #[test]
    fn empty_text_is_no_document() {
        assert!(load("").unwrap().is_none());
        assert!(load("# only a comment\n").unwrap().is_none());
    }
}
