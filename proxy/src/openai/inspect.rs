//! The guardians over an OpenAI request or response body: every message, tool definition, tool
//! result and tool-call argument is scanned on the channel it belongs to (a tool result is
//! untrusted text, a system prompt is not), redacted in place, and summarised for policy and the
//! ledger without its raw text.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use warden_guardians::{Action, Channel, Guardians};

/// The OpenAI routes Warden governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Chat,
    Completions,
    Embeddings,
    Responses,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::Chat => "/chat/completions",
            Route::Completions => "/completions",
            Route::Embeddings => "/embeddings",
            Route::Responses => "/responses",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Chat => "chat.completions",
            Route::Completions => "completions",
            Route::Embeddings => "embeddings",
            Route::Responses => "responses",
        }
    }
}

/// One finding as policy and the ledger see it: where, what, how sure; never the text.
#[derive(Clone, Debug, Serialize)]
pub struct Spot {
    /// JSON pointer of the string in the body.
    pub at: String,
    pub detector: &'static str,
    pub entity_type: String,
    pub rule: String,
    pub score: f32,
    pub action: Action,
}

/// What the guardians found in one direction of a call.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Findings {
    /// `detector:ENTITY` -> count.
    pub counts: BTreeMap<String, u32>,
    /// The highest prompt-injection score of any scanned string.
    pub injection_score: f32,
    /// The strongest action of any finding.
    pub action: Option<Action>,
    pub blocked: bool,
    /// Strings rewritten by redaction.
    pub redacted: u32,
    /// The first findings, located (at most [`MAX_SPOTS`]).
    pub spots: Vec<Spot>,
    /// The detectors whose findings blocked, as reason codes (`GUARDIAN_SECRETS`...).
    pub reasons: Vec<String>,
    /// Strings scanned.
    pub scanned: u32,
}

const MAX_SPOTS: usize = 32;

impl Findings {
    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }

    /// Scans `text` on `channel`; rewrites it when a finding redacts.
    pub fn scan(&mut self, g: &Guardians, at: &str, text: &mut String, channel: Channel) {
        if text.is_empty() {
            return;
        }
        self.scanned += 1;
        let report = g.scan_text(text, channel);
        self.injection_score = self.injection_score.max(report.injection.score);
        if report.findings.is_empty() {
            return;
        }
        self.record(at, &report.findings);
        if report.blocked {
            self.blocked = true;
        }
        if report.redacted != *text {
            self.redacted += 1;
            *text = report.redacted;
        }
    }

    /// Counts findings made elsewhere (a stream scanner's).
    pub fn record(&mut self, at: &str, found: &[warden_guardians::Finding]) {
        for f in found {
            metrics::counter!("warden_guardian_triggers_total", "detector" => f.detector.as_str(), "action" => f.action.as_str())
                .increment(1);
            self.action = self.action.max(Some(f.action));
            *self
                .counts
                .entry(format!("{}:{}", f.detector.as_str(), f.entity_type))
                .or_default() += 1;
            if self.spots.len() < MAX_SPOTS {
                self.spots.push(Spot {
                    at: at.to_owned(),
                    detector: f.detector.as_str(),
                    entity_type: f.entity_type.to_string(),
                    rule: f.rule.to_string(),
                    score: f.score,
                    action: f.action,
                });
            }
            if f.action == Action::Block {
                let reason = format!("GUARDIAN_{}", f.detector.as_str().to_ascii_uppercase());
                if !self.reasons.contains(&reason) {
                    self.reasons.push(reason);
                }
            }
        }
    }

    /// Merges the findings of another direction or piece.
    pub fn merge(&mut self, other: &Findings) {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
        self.injection_score = self.injection_score.max(other.injection_score);
        self.action = self.action.max(other.action);
        self.blocked |= other.blocked;
        self.redacted += other.redacted;
        self.scanned += other.scanned;
        for s in &other.spots {
            if self.spots.len() < MAX_SPOTS {
                self.spots.push(s.clone());
            }
        }
        for r in &other.reasons {
            if !self.reasons.contains(r) {
                self.reasons.push(r.clone());
            }
        }
    }

    /// The summary policy conditions can test (`findings.count`, `findings.injection_score`...).
    pub fn policy_view(&self) -> Value {
        json!({
            "count": self.total(),
            "by_type": self.counts,
            "injection_score": self.injection_score,
            "action": self.action,
            "blocked": self.blocked,
            "redacted": self.redacted,
        })
    }
}

fn role_channel(role: Option<&str>) -> Channel {
    match role {
        Some("tool" | "function") => Channel::ToolOutput,
        Some("assistant") => Channel::Response,
        _ => Channel::UserInput,
    }
}

/// Scans every string leaf under `v` (tool definitions, say).
pub fn scan_all(g: &Guardians, f: &mut Findings, at: &mut String, v: &mut Value, ch: Channel) {
    match v {
        Value::String(s) => f.scan(g, at, s, ch),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                scan_all(g, f, at, item, ch);
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                scan_all(g, f, at, item, ch);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// `content` as OpenAI sends it: a string, or parts with `text`.
fn scan_content(g: &Guardians, f: &mut Findings, at: &str, content: &mut Value, ch: Channel) {
    match content {
        Value::String(s) => f.scan(g, &format!("{at}/content"), s, ch),
        Value::Array(parts) => {
            for (j, part) in parts.iter_mut().enumerate() {
                if let Some(Value::String(s)) = part.get_mut("text") {
                    f.scan(g, &format!("{at}/content/{j}/text"), s, ch);
                }
                // Responses-API tool output parts.
                if let Some(Value::String(s)) = part.get_mut("output") {
                    f.scan(g, &format!("{at}/content/{j}/output"), s, ch);
                }
            }
        }
        _ => {}
    }
}

/// Scans (and redacts) a request body. Also returns the texts to count tokens of and the
/// number of chat messages.
pub fn request(g: &Guardians, route: Route, body: &mut Value) -> Findings {
    let mut f = Findings::default();
    match route {
        Route::Chat => {
            if let Some(Value::Array(messages)) = body.get_mut("messages") {
                for (i, m) in messages.iter_mut().enumerate() {
                    let ch = role_channel(m.get("role").and_then(Value::as_str));
                    let at = format!("/messages/{i}");
                    if let Some(content) = m.get_mut("content") {
                        scan_content(g, &mut f, &at, content, ch);
                    }
                    if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
                        for (j, c) in calls.iter_mut().enumerate() {
                            if let Some(Value::String(args)) = c.pointer_mut("/function/arguments")
                            {
                                let at = format!("{at}/tool_calls/{j}/function/arguments");
                                f.scan(g, &at, args, Channel::ToolArgs);
                            }
                        }
                    }
                }
            }
        }
        Route::Completions => {
            for key in ["prompt", "suffix"] {
                if let Some(v) = body.get_mut(key) {
                    scan_all(g, &mut f, &mut format!("/{key}"), v, Channel::UserInput);
                }
            }
        }
        Route::Embeddings => {
            if let Some(v) = body.get_mut("input") {
                scan_all(g, &mut f, &mut "/input".to_owned(), v, Channel::UserInput);
            }
        }
        Route::Responses => {
            if let Some(Value::String(s)) = body.get_mut("instructions") {
                f.scan(g, "/instructions", s, Channel::UserInput);
            }
            match body.get_mut("input") {
                Some(Value::String(s)) => f.scan(g, "/input", s, Channel::UserInput),
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        let at = format!("/input/{i}");
                        match item.get("type").and_then(Value::as_str) {
                            Some("function_call_output") => {
                                if let Some(v) = item.get_mut("output") {
                                    scan_all(
                                        g,
                                        &mut f,
                                        &mut format!("{at}/output"),
                                        v,
                                        Channel::ToolOutput,
                                    );
                                }
                            }
                            Some("function_call") => {
                                if let Some(Value::String(a)) = item.get_mut("arguments") {
                                    f.scan(g, &format!("{at}/arguments"), a, Channel::ToolArgs);
                                }
                            }
                            _ => {
                                let ch = role_channel(item.get("role").and_then(Value::as_str));
                                if let Some(content) = item.get_mut("content") {
                                    scan_content(g, &mut f, &at, content, ch);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(tools) = body.get_mut("tools") {
        scan_all(
            g,
            &mut f,
            &mut "/tools".to_owned(),
            tools,
            Channel::UserInput,
        );
    }
    f
}

/// The texts of a request a tokenizer should count, and how many chat messages frame them.
pub fn prompt_texts(route: Route, body: &Value) -> (Vec<&str>, usize) {
    let mut texts = Vec::new();
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(m) => m.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut messages = 0;
    match route {
        Route::Chat => {
            if let Some(Value::Array(ms)) = body.get("messages") {
                messages = ms.len();
                for m in ms {
                    strings(m, &mut texts);
                }
            }
        }
        Route::Completions => {
            if let Some(p) = body.get("prompt") {
                strings(p, &mut texts);
            }
        }
        Route::Embeddings => {
            if let Some(p) = body.get("input") {
                strings(p, &mut texts);
            }
        }
        Route::Responses => {
            for k in ["instructions", "input"] {
                if let Some(p) = body.get(k) {
                    strings(p, &mut texts);
                }
            }
        }
    }
    if let Some(t) = body.get("tools") {
        strings(t, &mut texts);
    }
    (texts, messages)
}

/// The names of the tools a request offers the model.
pub fn tool_names(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// Scans (and redacts) the model's text in a non-streamed response.
pub fn response_texts(g: &Guardians, route: Route, body: &mut Value) -> Findings {
    let mut f = Findings::default();
    match route {
        Route::Chat => {
            if let Some(Value::Array(choices)) = body.get_mut("choices") {
                for (i, c) in choices.iter_mut().enumerate() {
                    if let Some(Value::String(s)) = c.pointer_mut("/message/content") {
                        f.scan(
                            g,
                            &format!("/choices/{i}/message/content"),
                            s,
                            Channel::Response,
                        );
                    }
                    if let Some(Value::String(s)) = c.pointer_mut("/message/refusal") {
                        f.scan(
                            g,
                            &format!("/choices/{i}/message/refusal"),
                            s,
                            Channel::Response,
                        );
                    }
                }
            }
        }
        Route::Completions => {
            if let Some(Value::Array(choices)) = body.get_mut("choices") {
                for (i, c) in choices.iter_mut().enumerate() {
                    if let Some(Value::String(s)) = c.get_mut("text") {
                        f.scan(g, &format!("/choices/{i}/text"), s, Channel::Response);
                    }
                }
            }
        }
        Route::Embeddings => {}
        Route::Responses => {
            if let Some(Value::Array(output)) = body.get_mut("output") {
                for (i, item) in output.iter_mut().enumerate() {
                    if item.get("type").and_then(Value::as_str) == Some("message") {
                        if let Some(content) = item.get_mut("content") {
                            scan_all(
                                g,
                                &mut f,
                                &mut format!("/output/{i}/content"),
                                content,
                                Channel::Response,
                            );
                        }
                    }
                }
            }
            if let Some(Value::String(s)) = body.get_mut("output_text") {
                f.scan(g, "/output_text", s, Channel::Response);
            }
        }
    }
    f
}
