//! YAML with positions: saphyr's marked tree turned into a small tree of our own that keeps the
//! line and column of every node and key, plus the helpers the pack and cases validators share.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, Marker, ScalarOwned, YamlDataOwned};

use crate::error::Problem;

/// A YAML node with its 1-based position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order: (key, key's node (for its position), value).
    Map(Vec<(String, Node, Node)>),
}

impl Node {
    /// `string`, `number`, ... as used in messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.kind {
            Kind::Int(i) => Some(i as f64),
            Kind::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The node as JSON; `Err` for a float that JSON cannot hold (`.nan`, `.inf`).
    pub fn to_json(&self) -> Result<serde_json::Value, &Node> {
        use serde_json::Value;
        Ok(match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or(self)?,
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(Node::to_json)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Kind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, _, v) in entries {
                    map.insert(k.clone(), v.to_json()?);
                }
                Value::Object(map)
            }
        })
    }
}

/// Collects problems for one source.
pub(crate) struct Problems {
    pub source: String,
    pub list: Vec<Problem>,
}

impl Problems {
    pub fn new(source: &str) -> Self {
        Problems {
            source: source.to_owned(),
            list: Vec::new(),
        }
    }

    pub fn at(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.at_pos(node.line, node.column, path, message);
    }

    pub fn at_pos(&mut self, line: usize, column: usize, path: &str, message: impl Into<String>) {
        self.list.push(Problem {
            source: self.source.clone(),
            line,
            column,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed`; reports each unknown key.
    /// Returns the mapping's fields, or `None` (after reporting) if it is not a mapping.
    pub fn fields<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a>> {
        let Kind::Map(entries) = &node.kind else {
            self.at(
                node,
                path,
                format!("expected a mapping, found {}", node.describe()),
            );
            return None;
        };
        for (key, key_node, _) in entries {
            if !allowed.contains(&key.as_str()) {
                let expected = allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.at(
                    key_node,
                    &join(path, key),
                    format!("unknown key {key:?}, expected one of {expected}"),
                );
            }
        }
        Some(Fields { node, entries })
    }

    /// A required string field; reports it missing or of the wrong type.
    pub fn req_str(&mut self, fields: &Fields<'_>, key: &str, path: &str) -> Option<String> {
        match fields.get(key) {
            None => {
                self.at(fields.node, path, format!("missing required key {key:?}"));
                None
            }
            Some(v) => self.string(v, &join(path, key)),
        }
    }

    /// An optional string field.
    pub fn opt_str(&mut self, fields: &Fields<'_>, key: &str, path: &str) -> Option<String> {
        fields
            .get(key)
            .and_then(|v| self.string(v, &join(path, key)))
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.at(
                    node,
                    path,
                    format!("expected a string, found {}", node.describe()),
                );
                None
            }
        }
    }
}

/// The entries of a mapping.
pub(crate) struct Fields<'a> {
    pub node: &'a Node,
    entries: &'a [(String, Node, Node)],
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v)
    }
}

/// `path.key`, or `key` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Parses a single YAML document. An empty document is `Ok(None)`.
pub(crate) fn parse(text: &str, problems: &mut Problems) -> Option<Node> {
    let docs = match MarkedYamlOwned::load_from_str(text) {
        Ok(docs) => docs,
        Err(e) => {
            let (line, column) = pos(e.marker());
            problems.at_pos(line, column, "", format!("invalid YAML: {}", e.info()));
            return None;
        }
    };
    if let Some(extra) = docs.get(1) {
        let (line, column) = pos(&extra.span.start);
        problems.at_pos(
            line,
            column,
            "",
            format!(
                "expected a single YAML document, found {} documents",
                docs.len()
            ),
        );
    }
    let doc = docs.into_iter().next()?;
    let before = problems.list.len();
    let node = convert(doc, "", problems);
    (problems.list.len() == before).then_some(node)
}

fn pos(marker: &Marker) -> (usize, usize) {
    (marker.line().max(1), marker.col() + 1)
}

fn convert(y: MarkedYamlOwned, path: &str, problems: &mut Problems) -> Node {
    let (line, column) = pos(&y.span.start);
    let kind = match y.data {
        YamlDataOwned::Value(s) => match s {
            ScalarOwned::Null => Kind::Null,
            ScalarOwned::Boolean(b) => Kind::Bool(b),
            ScalarOwned::Integer(i) => Kind::Int(i),
            ScalarOwned::FloatingPoint(f) => Kind::Float(f.into_inner()),
            ScalarOwned::String(s) => Kind::Str(s),
        },
        YamlDataOwned::Representation(s, _, _) => Kind::Str(s),
        YamlDataOwned::Sequence(items) => Kind::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, &format!("{path}[{i}]"), problems))
                .collect(),
        ),
        YamlDataOwned::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = convert(k, path, problems);
                let name = match &key.kind {
                    Kind::Str(s) => s.clone(),
                    _ => {
                        problems.at(
                            &key,
                            path,
                            format!("expected a string key, found {}", key.describe()),
                        );
                        continue;
                    }
                };
                let value = convert(v, &join(path, &name), problems);
                entries.push((name, key, value));
            }
            Kind::Map(entries)
        }
        YamlDataOwned::Tagged(tag, _) => {
            problems.at_pos(
                line,
                column,
                path,
                format!("YAML tags are not supported (found `!{}`)", tag.suffix),
            );
            Kind::Null
        }
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
            problems.at_pos(line, column, path, "unsupported YAML node");
            Kind::Null
        }
    };
    Node { kind, line, column }
}
