//! Streamed responses: the provider's SSE events are parsed, every piece of model text goes
//! through a streaming scanner per choice (or output item) that releases only scanned,
//! redacted text, and a block ends the stream with an OpenAI-format error event. Tool calls
//! the model proposes are assembled from their fragments and held until judged; a withheld
//! call never reaches the agent. The usage chunk Warden asked for on the agent's behalf is
//! taken for the token limits and not relayed.
//!
//! The relay runs in its own task feeding the response body through a small channel: when the
//! agent disconnects, the channel closes, the task stops reading, and dropping the provider's
//! response cancels the upstream call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};
use warden_guardians::{Channel, Guardians, StreamScanner};

use super::call::{copy_headers, CallEnd};
use super::error::OpenAiError;
use super::inspect::{self, Findings, Route};
use super::record::{Ending, Usage};
use super::tools;

/// Starts relaying `resp` and returns the response whose body it feeds.
pub fn relay(end: CallEnd, resp: reqwest::Response, keep_usage: bool) -> Response {
    let status = resp.status();
    let upstream_headers = resp.headers().clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    tokio::spawn(run(end, resp, tx, keep_usage, status.as_u16()));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    let mut r = (
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK),
        body,
    )
        .into_response();
    copy_headers(&upstream_headers, r.headers_mut());
    let h = r.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

/// One SSE frame.
fn frame(event: Option<&str>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 16);
    if let Some(e) = event {
        s.push_str("event: ");
        s.push_str(e);
        s.push('\n');
    }
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

struct Blocked(Vec<String>);

#[derive(Default)]
struct ToolAcc {
    id: Option<String>,
    name: String,
    arguments: String,
}

struct ChoiceState {
    scanner: StreamScanner<Arc<Guardians>>,
    done: bool,
    tools: BTreeMap<u64, ToolAcc>,
}

struct Relay {
    end_agent: String,
    end_model: String,
    plane: Arc<super::Plane>,
    route: Route,
    keep_usage: bool,
    choices: BTreeMap<u64, ChoiceState>,
    /// The last chunk, emptied, to build the chunks Warden adds (flushed text, tool calls).
    template: Option<Value>,
    usage: Option<Usage>,
    findings: Findings,
    tool_calls: Vec<Value>,
    // Responses API.
    texts: HashMap<String, (StreamScanner<Arc<Guardians>>, String)>,
    delta_template: Option<Value>,
    held: HashMap<u64, Vec<(Option<String>, Value)>>,
    withheld_items: HashSet<String>,
}

impl Relay {
    fn scanner(&self) -> StreamScanner<Arc<Guardians>> {
        StreamScanner::new(self.plane.guardians.clone(), Channel::Response)
    }

    fn scan_piece(
        &mut self,
        scanner_out: warden_guardians::StreamOutput,
        at: &str,
    ) -> Result<String, Blocked> {
        self.findings.record(at, &scanner_out.findings);
        self.findings.injection_score = self
            .findings
            .injection_score
            .max(scanner_out.injection_score);
        if scanner_out.blocked {
            self.findings.blocked = true;
            let mut reasons = self.findings.reasons.clone();
            if reasons.is_empty() {
                reasons.push("GUARDIAN_BLOCK".into());
            }
            return Err(Blocked(reasons));
        }
        Ok(scanner_out.text)
    }

    fn text_pointer(&self) -> &'static str {
        match self.route {
            Route::Completions => "/text",
            _ => "/delta/content",
        }
    }

    /// Judges a choice's assembled tool calls; returns the allowed ones as one delta.
    fn judge_tools(&mut self, tools: BTreeMap<u64, ToolAcc>) -> (Vec<Value>, bool) {
        let mut allowed = Vec::new();
        let mut any = false;
        for (_, t) in tools {
            any = true;
            let v = tools::judge(
                &self.plane,
                &self.end_agent,
                &self.end_model,
                &t.name,
                &t.arguments,
            );
            // A withheld call's findings are recorded, but do not cut the stream.
            let mut f = v.findings;
            f.blocked = false;
            self.findings.merge(&f);
            self.tool_calls.push(v.summary);
            if v.allowed {
                allowed.push(json!({
                    "index": allowed.len(),
                    "id": t.id,
                    "type": "function",
                    "function": {"name": t.name, "arguments": v.arguments},
                }));
            }
        }
        (allowed, any)
    }

    /// A chat.completion.chunk or text_completion chunk: the chunks to send in its place.
    fn chat_chunk(&mut self, mut v: Value) -> Result<Vec<Value>, Blocked> {
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Usage::from_json(u);
            if !self.keep_usage {
                let empty = v["choices"].as_array().is_none_or(Vec::is_empty);
                if empty {
                    return Ok(Vec::new());
                }
                if let Some(o) = v.as_object_mut() {
                    o.remove("usage");
                }
            }
        }
        let mut t = v.clone();
        t["choices"] = json!([]);
        if let Some(o) = t.as_object_mut() {
            o.remove("usage");
        }
        self.template = Some(t);
        let pointer = self.text_pointer();
        let Some(Value::Array(choices)) = v.get_mut("choices") else {
            return Ok(vec![v]);
        };
        let mut kept = Vec::with_capacity(choices.len());
        for mut c in std::mem::take(choices) {
            let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            if !self.choices.contains_key(&idx) {
                let scanner = self.scanner();
                self.choices.insert(
                    idx,
                    ChoiceState {
                        scanner,
                        done: false,
                        tools: BTreeMap::new(),
                    },
                );
            }
            let at = format!("/choices/{idx}{pointer}");
            if let Some(Value::String(s)) = c.pointer(pointer).cloned().as_ref() {
                let out = self
                    .choices
                    .get_mut(&idx)
                    .expect("inserted")
                    .scanner
                    .push(s);
                let released = self.scan_piece(out, &at)?;
                if let Some(slot) = c.pointer_mut(pointer) {
                    *slot = Value::String(released);
                }
            }
            if let Some(Value::Array(calls)) = c
                .get_mut("delta")
                .and_then(Value::as_object_mut)
                .and_then(|d| d.remove("tool_calls"))
            {
                let state = self.choices.get_mut(&idx).expect("inserted");
                for call in calls {
                    let ti = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let acc = state.tools.entry(ti).or_default();
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        acc.id = Some(id.to_owned());
                    }
                    if let Some(n) = call.pointer("/function/name").and_then(Value::as_str) {
                        acc.name.push_str(n);
                    }
                    if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                        acc.arguments.push_str(a);
                    }
                }
            }
            let finishing = c.get("finish_reason").is_some_and(|f| !f.is_null());
            if finishing {
                let state = self.choices.get_mut(&idx).expect("inserted");
                state.done = true;
                let out = state.scanner.finish();
                let pending = std::mem::take(&mut state.tools);
                let tail = self.scan_piece(out, &at)?;
                if !tail.is_empty() {
                    let prior = c
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    set_pointer(&mut c, pointer, Value::String(prior + &tail));
                }
                if !pending.is_empty() {
                    let (allowed, _) = self.judge_tools(pending);
                    if allowed.is_empty() {
                        if c["finish_reason"] == "tool_calls" {
                            c["finish_reason"] = json!("content_filter");
                        }
                    } else if let Some(d) = c.get_mut("delta").and_then(Value::as_object_mut) {
                        d.insert("tool_calls".into(), Value::Array(allowed));
                    }
                }
            }
            if carries_something(&c, pointer) {
                kept.push(c);
            }
        }
        let has_usage = v.get("usage").is_some_and(|u| !u.is_null());
        if kept.is_empty() && !has_usage {
            return Ok(Vec::new());
        }
        v["choices"] = Value::Array(kept);
        Ok(vec![v])
    }

    /// At the end of the stream: whatever the scanners still hold, and tool calls that never
    /// saw a finish reason.
    fn flush(&mut self) -> Result<Vec<Value>, Blocked> {
        let mut out = Vec::new();
        let pointer = self.text_pointer();
        let idxs: Vec<u64> = self
            .choices
            .iter()
            .filter(|(_, c)| !c.done)
            .map(|(i, _)| *i)
            .collect();
        for idx in idxs {
            let state = self.choices.get_mut(&idx).expect("listed");
            state.done = true;
            let o = state.scanner.finish();
            let pending = std::mem::take(&mut state.tools);
            let tail = self.scan_piece(o, &format!("/choices/{idx}{pointer}"))?;
            let (allowed, _) = if pending.is_empty() {
                (Vec::new(), false)
            } else {
                self.judge_tools(pending)
            };
            if tail.is_empty() && allowed.is_empty() {
                continue;
            }
            let mut c = json!({"index": idx, "finish_reason": null});
            if self.route == Route::Completions {
                c["text"] = json!(tail);
            } else {
                c["delta"] = json!({"content": tail});
                if !allowed.is_empty() {
                    c["delta"]["tool_calls"] = Value::Array(allowed);
                }
            }
            let mut chunk = self
                .template
                .clone()
                .unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
            chunk["choices"] = json!([c]);
            out.push(chunk);
        }
        Ok(out)
    }

    /// A Responses-API event: the events to send in its place.
    fn responses_event(
        &mut self,
        event: Option<String>,
        mut v: Value,
    ) -> Result<Vec<(Option<String>, Value)>, Blocked> {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let output_index = v.get("output_index").and_then(Value::as_u64);
        // Function calls are held whole until judged.
        if kind == "response.output_item.added"
            && v.pointer("/item/type").and_then(Value::as_str) == Some("function_call")
        {
            if let Some(i) = output_index {
                self.held.insert(i, vec![(event, v)]);
                return Ok(Vec::new());
            }
        }
        if let Some(i) = output_index {
            if self.held.contains_key(&i) {
                if kind == "response.output_item.done" {
                    let mut events = self.held.remove(&i).unwrap_or_default();
                    let name = v
                        .pointer("/item/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let args = v
                        .pointer("/item/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let verdict =
                        tools::judge(&self.plane, &self.end_agent, &self.end_model, &name, &args);
                    let mut f = verdict.findings;
                    f.blocked = false;
                    self.findings.merge(&f);
                    self.tool_calls.push(verdict.summary);
                    if !verdict.allowed {
                        if let Some(id) = v.pointer("/item/id").and_then(Value::as_str) {
                            self.withheld_items.insert(id.to_owned());
                        }
                        return Ok(Vec::new());
                    }
                    // Relay the call with its (possibly redacted) arguments, in one piece.
                    v["item"]["arguments"] = Value::String(verdict.arguments.clone());
                    events.retain(|(_, e)| {
                        !e["type"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("response.function_call_arguments.")
                    });
                    let mut done = json!({"type": "response.function_call_arguments.done", "output_index": i,
                        "item_id": v.pointer("/item/id").cloned().unwrap_or(Value::Null), "arguments": verdict.arguments});
                    if let Some(seq) = v.get("sequence_number") {
                        done["sequence_number"] = seq.clone();
                    }
                    events.push((Some("response.function_call_arguments.done".into()), done));
                    events.push((event, v));
                    return Ok(events);
                }
                self.held.get_mut(&i).expect("checked").push((event, v));
                return Ok(Vec::new());
            }
        }
        let key = format!(
            "{}/{}",
            v.get("item_id").and_then(Value::as_str).unwrap_or_default(),
            v.get("content_index").and_then(Value::as_u64).unwrap_or(0)
        );
        match kind.as_str() {
            "response.output_text.delta" => {
                let delta = v
                    .get("delta")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if !self.texts.contains_key(&key) {
                    let s = self.scanner();
                    self.texts.insert(key.clone(), (s, String::new()));
                }
                let out = self.texts.get_mut(&key).expect("inserted").0.push(&delta);
                let released = self.scan_piece(out, "/output_text")?;
                self.texts
                    .get_mut(&key)
                    .expect("inserted")
                    .1
                    .push_str(&released);
                self.delta_template = Some(v.clone());
                if released.is_empty() {
                    return Ok(Vec::new());
                }
                v["delta"] = Value::String(released);
                Ok(vec![(event, v)])
            }
            "response.output_text.done" => {
                let mut out = Vec::new();
                if let Some((mut scanner, mut total)) = self.texts.remove(&key) {
                    let o = scanner.finish();
                    let tail = self.scan_piece(o, "/output_text")?;
                    if !tail.is_empty() {
                        let mut d = self
                            .delta_template
                            .clone()
                            .unwrap_or_else(|| json!({"type": "response.output_text.delta"}));
                        d["delta"] = Value::String(tail.clone());
                        d["item_id"] = v.get("item_id").cloned().unwrap_or(Value::Null);
                        out.push((Some("response.output_text.delta".to_owned()), d));
                        total.push_str(&tail);
                    }
                    v["text"] = Value::String(total);
                }
                out.push((event, v));
                Ok(out)
            }
            _ => {
                if kind == "response.completed" || kind == "response.incomplete" {
                    if let Some(u) = v.pointer("/response/usage") {
                        self.usage = Usage::from_json(u);
                    }
                    if let Some(Value::Array(output)) = v.pointer_mut("/response/output") {
                        let withheld = &self.withheld_items;
                        output.retain(|item| {
                            item.get("id")
                                .and_then(Value::as_str)
                                .is_none_or(|id| !withheld.contains(id))
                        });
                    }
                }
                if kind.ends_with(".done")
                    || kind == "response.completed"
                    || kind == "response.incomplete"
                {
                    // Whole texts repeated at the end: redact them as the deltas were.
                    let mut scratch = Findings::default();
                    inspect::scan_all(
                        &self.plane.guardians,
                        &mut scratch,
                        &mut String::new(),
                        &mut v,
                        Channel::Response,
                    );
                }
                Ok(vec![(event, v)])
            }
        }
    }
}

fn set_pointer(v: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
        return;
    }
    // `/delta/content` where the delta had no content.
    if let Some(d) = v.get_mut("delta").and_then(Value::as_object_mut) {
        d.insert("content".into(), new);
    } else if pointer == "/text" {
        v["text"] = new;
    }
}

/// Whether a choice still says anything once its text was held back.
fn carries_something(c: &Value, pointer: &str) -> bool {
    if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
        return true;
    }
    if c.pointer(pointer)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return true;
    }
    match c.get("delta").and_then(Value::as_object) {
        Some(d) => d.iter().any(|(k, v)| match k.as_str() {
            "content" => false,
            _ => !v.is_null(),
        }),
        None => pointer == "/delta/content",
    }
}

async fn run(
    end: CallEnd,
    resp: reqwest::Response,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    keep_usage: bool,
    status: u16,
) {
    let mut relay = Relay {
        end_agent: end.agent.clone(),
        end_model: end.model.clone(),
        plane: end.plane.clone(),
        route: end.route,
        keep_usage,
        choices: BTreeMap::new(),
        template: None,
        usage: None,
        findings: Findings::default(),
        tool_calls: Vec::new(),
        texts: HashMap::new(),
        delta_template: None,
        held: HashMap::new(),
        withheld_items: HashSet::new(),
    };
    let mut events = resp.bytes_stream().eventsource();
    let mut ending = Ending::Completed;
    let decision_id = end.decision_id.clone();
    let block = |reasons: Vec<String>| {
        frame(
            None,
            &OpenAiError::new(
                StatusCode::FORBIDDEN,
                "warden_policy_violation",
                "response_blocked",
                format!("the guardians stopped the response: {}", reasons.join(", ")),
            )
            .with_extra(json!({"reason_codes": reasons, "decision_id": decision_id}))
            .body()
            .to_string(),
        )
    };
    'relay: loop {
        let next = tokio::select! {
            ev = events.next() => ev,
            _ = tx.closed() => { ending = Ending::ClientDisconnected; break }
        };
        let mut out: Vec<Bytes> = Vec::new();
        match next {
            None => {
                // The provider closed the stream without [DONE].
                match relay.flush() {
                    Ok(chunks) => out.extend(chunks.iter().map(|c| frame(None, &c.to_string()))),
                    Err(Blocked(r)) => {
                        out.push(block(r));
                        ending = Ending::Blocked;
                    }
                }
                for b in out {
                    let _ = tx.send(b).await;
                }
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "upstream stream failed");
                ending = Ending::UpstreamError;
                let err = OpenAiError::new(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    "upstream_stream_error",
                    "the upstream stream broke off",
                );
                let _ = tx.send(frame(None, &err.body().to_string())).await;
                break;
            }
            Some(Ok(ev)) => {
                let event_name =
                    (!ev.event.is_empty() && ev.event != "message").then(|| ev.event.clone());
                if ev.data.trim() == "[DONE]" {
                    match relay.flush() {
                        Ok(chunks) => {
                            out.extend(chunks.iter().map(|c| frame(None, &c.to_string())));
                            out.push(frame(None, "[DONE]"));
                        }
                        Err(Blocked(r)) => {
                            out.push(block(r));
                            ending = Ending::Blocked;
                        }
                    }
                    for b in out {
                        let _ = tx.send(b).await;
                    }
                    break;
                }
                let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                    // Not JSON: nothing Warden could scan is relayed.
                    tracing::warn!("dropped a non-JSON event from the upstream stream");
                    continue;
                };
                if v.get("error").is_some_and(|e| !e.is_null()) {
                    let _ = tx.send(frame(event_name.as_deref(), &v.to_string())).await;
                    ending = Ending::UpstreamError;
                    break;
                }
                let result = match relay.route {
                    Route::Responses => relay.responses_event(event_name, v).map(|evs| {
                        evs.into_iter()
                            .map(|(e, v)| frame(e.as_deref(), &v.to_string()))
                            .collect::<Vec<_>>()
                    }),
                    _ => relay
                        .chat_chunk(v)
                        .map(|cs| cs.iter().map(|c| frame(None, &c.to_string())).collect()),
                };
                match result {
                    Ok(frames) => out = frames,
                    Err(Blocked(r)) => {
                        let _ = tx.send(block(r)).await;
                        ending = Ending::Blocked;
                        break 'relay;
                    }
                }
                for b in out {
                    if tx.send(b).await.is_err() {
                        ending = Ending::ClientDisconnected;
                        break 'relay;
                    }
                }
            }
        }
    }
    drop(events);
    let findings = std::mem::take(&mut relay.findings);
    let calls = std::mem::take(&mut relay.tool_calls);
    end.finish(status, ending, relay.usage, &findings, &calls);
}
