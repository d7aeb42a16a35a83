//! Scanning JSON values (tool arguments, tool results): every string leaf, with its JSON pointer.
//!
//! Object keys are not scanned (redacting them would change the document's shape); numbers are
//! not scanned (a card number sent as a JSON number is missed). Values nested deeper than
//! [`MAX_DEPTH`] are scanned as their serialized text and, if anything in them must be redacted,
//! replaced by the redacted serialization.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::finding::{self, Action, Channel, DetectorAction, Finding, InjectionVerdict};
use crate::Guardians;

/// Nesting depth scanned structurally.
pub const MAX_DEPTH: usize = 64;

/// A finding in a JSON value: offsets are within the string at `pointer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonFinding {
    /// RFC 6901 pointer to the string leaf.
    pub pointer: String,
    /// The finding, with offsets into that string.
    #[serde(flatten)]
    pub finding: Finding,
}

/// The result of [`Guardians::scan_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonScanReport {
    /// The channel scanned as.
    pub channel: Channel,
    /// All findings, in document order.
    pub findings: Vec<JsonFinding>,
    /// The highest injection score of any leaf, and the evidence of all leaves.
    pub injection: InjectionVerdict,
    /// Per detector: its strongest action.
    pub actions: Vec<DetectorAction>,
    /// The strongest action overall.
    pub action: Option<Action>,
    /// Whether the value must not be forwarded.
    pub blocked: bool,
    /// The value with redacted string leaves.
    pub redacted: Value,
}

struct Walk<'a> {
    g: &'a Guardians,
    channel: Channel,
    findings: Vec<JsonFinding>,
    injection: InjectionVerdict,
}

fn escape(token: &str, out: &mut String) {
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

impl Walk<'_> {
    fn leaf(&mut self, s: &str, pointer: &str) -> Option<String> {
        let r = self.g.scan_text(s, self.channel);
        if r.injection.score > self.injection.score {
            self.injection.score = r.injection.score;
        }
        for e in r.injection.evidence {
            if !self.injection.evidence.contains(&e) {
                self.injection.evidence.push(e);
            }
        }
        let changed = r.redacted != s;
        self.findings
            .extend(r.findings.into_iter().map(|f| JsonFinding {
                pointer: pointer.to_string(),
                finding: f,
            }));
        changed.then_some(r.redacted)
    }

    fn value(&mut self, v: &Value, pointer: &mut String, depth: usize) -> Option<Value> {
        match v {
            Value::String(s) => self.leaf(s, pointer).map(Value::String),
            Value::Array(items) if depth < MAX_DEPTH => {
                let mut changed: Option<Vec<Value>> = None;
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    let new = self.value(item, pointer, depth + 1);
                    pointer.truncate(len);
                    if let Some(n) = new {
                        changed.get_or_insert_with(|| items.clone())[i] = n;
                    }
                }
                changed.map(Value::Array)
            }
            Value::Object(map) if depth < MAX_DEPTH => {
                let mut changed: Option<serde_json::Map<String, Value>> = None;
                for (k, item) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    escape(k, pointer);
                    let new = self.value(item, pointer, depth + 1);
                    pointer.truncate(len);
                    if let Some(n) = new {
                        changed
                            .get_or_insert_with(|| map.clone())
                            .insert(k.clone(), n);
                    }
                }
                changed.map(Value::Object)
            }
            Value::Array(_) | Value::Object(_) => {
                let text = v.to_string();
                self.leaf(&text, pointer).map(Value::String)
            }
            _ => None,
        }
    }
}

pub(crate) fn scan(g: &Guardians, value: &Value, channel: Channel) -> JsonScanReport {
    let mut w = Walk {
        g,
        channel,
        findings: Vec::new(),
        injection: InjectionVerdict {
            score: 0.0,
            evidence: Vec::<Cow<'static, str>>::new(),
        },
    };
    let mut pointer = String::new();
    let redacted = w
        .value(value, &mut pointer, 0)
        .unwrap_or_else(|| value.clone());
    let plain: Vec<Finding> = w.findings.iter().map(|f| f.finding.clone()).collect();
    let (actions, action) = finding::summarize(&plain);
    JsonScanReport {
        channel,
        findings: w.findings,
        injection: w.injection,
        actions,
        action,
        blocked: action == Some(Action::Block),
        redacted,
    }
}
