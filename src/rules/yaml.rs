//! A YAML document as a tree of nodes that remember their line and column,
//! so that rules-file errors can point at the offending rule the way
//! Prometheus's `rulefmt` does (it decodes into `yaml.Node`s for that).
//! Only the first document of a stream is read, as Go's decoder does;
//! aliases are expanded; tags other than the core ones are kept as written.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One node and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar {
        value: String,
        /// Plain (unquoted, non-block) scalars are subject to type
        /// resolution: `null`, numbers, booleans.
        plain: bool,
        tag: Option<String>,
    },
    Sequence(Vec<Node>),
    /// Keys and values in document order (duplicates kept; the decoder
    /// rejects them).
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// True for an explicit or implicit null (`~`, `null`, nothing).
    pub fn is_null(&self) -> bool {
        match &self.kind {
            NodeKind::Scalar { value, plain, tag } => match tag.as_deref() {
                Some("!!null") | Some("tag:yaml.org,2002:null") => true,
                Some(_) => false,
                None => *plain && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            },
            _ => false,
        }
    }

    /// Go yaml's short tag of the node's resolved type, for error messages
    /// (`!!str`, `!!int`, `!!seq`, ...).
    pub fn short_tag(&self) -> &'static str {
        match &self.kind {
            NodeKind::Sequence(_) => "!!seq",
            NodeKind::Mapping(_) => "!!map",
            NodeKind::Scalar { .. } if self.is_null() => "!!null",
            NodeKind::Scalar { value, plain, tag } => match tag.as_deref() {
                Some(t) if t.ends_with("str") => "!!str",
                Some(t) if t.ends_with("int") => "!!int",
                Some(t) if t.ends_with("float") => "!!float",
                Some(t) if t.ends_with("bool") => "!!bool",
                Some(_) => "!!str",
                None if !plain => "!!str",
                None if parse_int(value).is_some() => "!!int",
                None if parse_float(value).is_some() => "!!float",
                None if matches!(
                    value.as_str(),
                    "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                ) =>
                {
                    "!!bool"
                }
                None => "!!str",
            },
        }
    }

    /// The scalar's text, if it is a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// A YAML integer as Go's yaml resolves it: decimal with an optional sign,
/// `0x`, `0o` and `0b` prefixes, underscores ignored.
pub fn parse_int(text: &str) -> Option<i64> {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, plain.as_str()),
    };
    if digits.is_empty() {
        return None;
    }
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

/// A YAML float (`1.5`, `1e3`, `.inf`, `.nan`).
pub fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let looks_numeric = plain
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && plain.bytes().any(|b| b.is_ascii_digit());
    if !looks_numeric {
        return None;
    }
    plain.parse().ok()
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses the first document of `text`; `None` for an empty stream.
///
/// # Errors
/// YAML syntax errors, and aliases to unknown anchors.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // yaml-rust2 is third-party code on the input path: a panic inside it
    // becomes an error.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parser.load(&mut builder, false)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(SyntaxError {
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_string(),
            });
        }
        Err(_) => {
            return Err(SyntaxError {
                line: 1,
                column: 1,
                message: "invalid YAML".to_string(),
            });
        }
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root)
}

/// Builds the tree from parser events.
#[derive(Default)]
struct Builder {
    /// Open sequences and mappings, with the key awaiting its value.
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    done: bool,
    error: Option<SyntaxError>,
}

struct Open {
    node: Node,
    anchor: usize,
    pending_key: Option<Node>,
}

impl Builder {
    fn add(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(open) => match &mut open.node.kind {
                NodeKind::Sequence(items) => items.push(node),
                NodeKind::Mapping(pairs) => match open.pending_key.take() {
                    None => {
                        // The parser marks a block mapping's start late; its
                        // first key is where it starts.
                        if pairs.is_empty() {
                            open.node.line = node.line;
                            open.node.column = node.column;
                        }
                        open.pending_key = Some(node);
                    }
                    Some(key) => pairs.push((key, node)),
                },
                NodeKind::Scalar { .. } => {}
            },
        }
    }
}

/// yaml-rust2 reports 0-based columns.
fn position(mark: Marker) -> (usize, usize) {
    (mark.line(), mark.col() + 1)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.done || self.error.is_some() {
            return;
        }
        let (line, column) = position(mark);
        match event {
            Event::DocumentEnd => {
                if self.root.is_some() {
                    self.done = true;
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|t| {
                    if t.handle == "!!" || t.handle == "tag:yaml.org,2002:" {
                        format!("!!{}", t.suffix)
                    } else {
                        format!("{}{}", t.handle, t.suffix)
                    }
                });
                let node = Node {
                    kind: NodeKind::Scalar {
                        value,
                        plain: style == TScalarStyle::Plain,
                        tag,
                    },
                    line,
                    column,
                };
                self.add(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    kind: NodeKind::Sequence(Vec::new()),
                    line,
                    column,
                },
                anchor,
                pending_key: None,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    kind: NodeKind::Mapping(Vec::new()),
                    line,
                    column,
                },
                anchor,
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    self.add(open.node, open.anchor);
                }
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor) {
                Some(node) => {
                    let node = node.clone();
                    self.add(node, 0);
                }
                None => {
                    self.error = Some(SyntaxError {
                        line,
                        column,
                        message: "unknown anchor".to_string(),
                    });
                }
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_positions() {
        let root = parse("groups:\n  - name: a\n    rules: []\n")
            .unwrap()
            .unwrap();
        let NodeKind::Mapping(pairs) = &root.kind else {
            panic!("not a mapping")
        };
        assert_eq!((pairs[0].0.line, pairs[0].0.column), (1, 1));
        let NodeKind::Sequence(groups) = &pairs[0].1.kind else {
            panic!("not a sequence")
        };
        let NodeKind::Mapping(group) = &groups[0].kind else {
            panic!("not a mapping")
        };
        assert_eq!(group[0].1.scalar(), Some("a"));
        assert_eq!((group[0].1.line, group[0].1.column), (2, 11));
    }

    #[test]
    fn empty_streams_and_nulls() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        let root = parse("a: ~\nb:\nc: 'null'\n").unwrap().unwrap();
        let NodeKind::Mapping(pairs) = &root.kind else {
            panic!("not a mapping")
        };
        assert!(pairs[0].1.is_null());
        assert!(pairs[1].1.is_null());
        assert!(!pairs[2].1.is_null());
    }

    #[test]
    fn aliases_expand_and_errors_have_positions() {
        let root = parse("a: &x {k: v}\nb: *x\n").unwrap().unwrap();
        let NodeKind::Mapping(pairs) = &root.kind else {
            panic!("not a mapping")
        };
        assert_eq!(pairs[0].1.kind, pairs[1].1.kind);
        let error = parse("a: [1, 2\n").unwrap_err();
        assert_eq!(error.line, 2);
    }

    #[test]
    fn scalars_resolve_like_go_yaml() {
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("-1_000"), Some(-1000));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_float("1.5"), Some(1.5));
        assert_eq!(parse_float("abc"), None);
    }
}
