//! Lists of objects (`upstreams:`, `limits:`, `agents:`, `tokenizers:`): each item is a mapping
//! read against its own small field table, so an item's problems are positioned at the item's
//! field like any other setting's.
//!
//! From the environment a list is one variable holding a YAML or JSON flow value, e.g.
//! `WARDEN_UPSTREAMS='[{name: local, base_url: "http://127.0.0.1:8000/v1"}]'`.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, Marker, ScalarOwned, YamlDataOwned};

use crate::schema::{describe, untag, Value};

/// One problem inside a setting: where (if known), the path below the setting, and what.
#[derive(Debug)]
pub(crate) struct Issue {
    pub at: Option<Marker>,
    pub subpath: String,
    pub message: String,
}

/// The problems of one setting.
#[derive(Debug, Default)]
pub(crate) struct Issues(pub Vec<Issue>);

impl From<String> for Issues {
    fn from(message: String) -> Self {
        Issues(vec![Issue {
            at: None,
            subpath: String::new(),
            message,
        }])
    }
}

/// A field of a list item.
pub(crate) struct ItemField<T> {
    pub name: &'static str,
    pub required: bool,
    pub set: fn(&mut T, Value<'_>) -> Result<(), String>,
}

/// Reads a list of mappings; `check` then looks at each finished item (cross-field rules) and
/// returns a problem for the item as a whole.
pub(crate) fn list<T: Default>(
    v: Value<'_>,
    fields: &[ItemField<T>],
    check: fn(&T) -> Option<String>,
) -> Result<Vec<T>, Issues> {
    match v {
        Value::Env(text) => {
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| {
                Issues::from(format!(
                    "expected a list in YAML or JSON flow syntax: {}",
                    e.info()
                ))
            })?;
            match docs.first() {
                None => Ok(Vec::new()),
                Some(node) => list_node(node, fields, check, false),
            }
        }
        Value::Yaml(node) => list_node(node, fields, check, true),
    }
}

fn list_node<T: Default>(
    node: &MarkedYamlOwned,
    fields: &[ItemField<T>],
    check: fn(&T) -> Option<String>,
    positioned: bool,
) -> Result<Vec<T>, Issues> {
    let at = |m: &Marker| positioned.then_some(*m);
    let items = match &untag(node).data {
        YamlDataOwned::Sequence(items) => items,
        YamlDataOwned::Value(ScalarOwned::Null) => return Ok(Vec::new()),
        _ => {
            return Err(Issues(vec![Issue {
                at: at(&node.span.start),
                subpath: String::new(),
                message: format!("expected a list of mappings, found {}", describe(node)),
            }]))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let mut issues = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let YamlDataOwned::Mapping(map) = &untag(item).data else {
            issues.push(Issue {
                at: at(&item.span.start),
                subpath: format!("[{i}]"),
                message: format!("expected a mapping, found {}", describe(item)),
            });
            continue;
        };
        let mut value = T::default();
        let mut seen = Vec::new();
        let before = issues.len();
        for (key, v) in map {
            let name = match &untag(key).data {
                YamlDataOwned::Value(ScalarOwned::String(s)) => s.as_str(),
                _ => {
                    issues.push(Issue {
                        at: at(&key.span.start),
                        subpath: format!("[{i}]"),
                        message: format!("expected a field name, found {}", describe(key)),
                    });
                    continue;
                }
            };
            match fields.iter().find(|f| f.name == name) {
                Some(f) => {
                    seen.push(f.name);
                    if let Err(message) = (f.set)(&mut value, Value::Yaml(v)) {
                        issues.push(Issue {
                            at: at(&v.span.start),
                            subpath: format!("[{i}].{name}"),
                            message,
                        });
                    }
                }
                None => {
                    let expected: Vec<String> =
                        fields.iter().map(|f| format!("`{}`", f.name)).collect();
                    issues.push(Issue {
                        at: at(&key.span.start),
                        subpath: format!("[{i}].{name}"),
                        message: format!(
                            "unknown field `{name}`, expected one of {}",
                            expected.join(", ")
                        ),
                    });
                }
            }
        }
        for f in fields
            .iter()
            .filter(|f| f.required && !seen.contains(&f.name))
        {
            issues.push(Issue {
                at: at(&item.span.start),
                subpath: format!("[{i}]"),
                message: format!("missing field `{}`", f.name),
            });
        }
        if issues.len() == before {
            if let Some(message) = check(&value) {
                issues.push(Issue {
                    at: at(&item.span.start),
                    subpath: format!("[{i}]"),
                    message,
                });
            }
        }
        out.push(value);
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(Issues(issues))
    }
}

/// A YAML subtree as JSON, for sections whose schema belongs to another crate (`guardians:`)
/// and is checked there with serde.
pub(crate) fn json(v: Value<'_>) -> Result<serde_json::Value, Issues> {
    match v {
        Value::Env(text) => {
            if text.trim().is_empty() {
                return Ok(serde_json::Value::Null);
            }
            let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| {
                Issues::from(format!(
                    "expected a mapping in YAML or JSON flow syntax: {}",
                    e.info()
                ))
            })?;
            docs.first().map_or(Ok(serde_json::Value::Null), to_json)
        }
        Value::Yaml(node) => to_json(node),
    }
}

fn to_json(node: &MarkedYamlOwned) -> Result<serde_json::Value, Issues> {
    use serde_json::Value as J;
    Ok(match &untag(node).data {
        YamlDataOwned::Value(ScalarOwned::Null) => J::Null,
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => J::Bool(*b),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => J::from(*i),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(x)) => {
            serde_json::Number::from_f64(**x).map_or(J::Null, J::Number)
        }
        YamlDataOwned::Value(ScalarOwned::String(s)) => J::String(s.clone()),
        YamlDataOwned::Representation(s, _, _) => J::String(s.clone()),
        YamlDataOwned::Sequence(items) => {
            J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        YamlDataOwned::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match &untag(k).data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                    _ => {
                        return Err(Issues(vec![Issue {
                            at: Some(k.span.start),
                            subpath: String::new(),
                            message: format!("expected a field name, found {}", describe(k)),
                        }]))
                    }
                };
                out.insert(key, to_json(v)?);
            }
            J::Object(out)
        }
        _ => {
            return Err(Issues(vec![Issue {
                at: Some(node.span.start),
                subpath: String::new(),
                message: format!("expected plain YAML data, found {}", describe(node)),
            }]))
        }
    })
}
