//! A mock OpenAI-compatible provider for tests, examples and benchmarks: deterministic answers
//! driven by the last user message, streamed or not, with usage, tool calls, errors and delays
//! on demand. It records every request body it receives (`GET /_received`), so tests can check
//! what Warden forwarded (e.g. that a secret was redacted before it left).
//!
//! The last user message selects the behaviour:
//! - `say:TEXT`: answer TEXT (streamed in 8-byte pieces);
//! - `split:N:TEXT`: answer TEXT, streamed as exactly two pieces split at byte N;
//! - `tool:NAME:ARGS`: propose a call of tool NAME with the JSON ARGS (streamed in fragments);
//! - `leak:`: answer with a (fake) AWS access key in the middle of a longer text, as a model
//!   leaking a credential would;
//! - anything else: answer `echo: <message>`.
//!
//! The model selects failures: `mock-broken` answers 500, `mock-moved` redirects (307) to
//! `/v1/moved/chat/completions`, which answers `moved here`, `mock-slow` answers after 3 s,
//! `mock-20ms` after 20 ms, `mock-trickle` streams one chunk every 100 ms for 30 s (and counts
//! the streams dropped before their end).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the mock has received: request bodies and `Authorization` headers, newest last; and
/// how many streams were dropped before their end (the client went away).
#[derive(Clone, Default)]
pub struct Received(
    Arc<Mutex<Vec<Request>>>,
    Arc<std::sync::atomic::AtomicUsize>,
);

/// One request: its `Authorization` and `traceparent` headers and its body.
type Request = (Option<String>, Option<String>, Value);

impl Received {
    /// The request bodies.
    pub fn all(&self) -> Vec<Value> {
        let g = self.0.lock().expect("not poisoned");
        g.iter().map(|(_, _, b)| b.clone()).collect()
    }

    /// The `Authorization` header of each request (`None` when absent).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        let g = self.0.lock().expect("not poisoned");
        g.iter().map(|(a, _, _)| a.clone()).collect()
    }

    /// The W3C `traceparent` header of each request (`None` when absent).
    pub fn traceparents(&self) -> Vec<Option<String>> {
        let g = self.0.lock().expect("not poisoned");
        g.iter().map(|(_, t, _)| t.clone()).collect()
    }

    /// Streams whose client disconnected before the last event.
    pub fn cancelled_streams(&self) -> usize {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn push(&self, headers: &HeaderMap, v: Value) {
        let header = |name| {
            headers
                .get(name)
                .and_then(|a| a.to_str().ok())
                .map(str::to_owned)
        };
        let mut g = self.0.lock().expect("not poisoned");
        if g.len() >= 1000 {
            g.remove(0);
        }
        g.push((
            header(axum::http::header::AUTHORIZATION.as_str()),
            header("traceparent"),
            v,
        ));
    }
}

/// The mock's routes, recording into `received`.
pub fn router(received: Received) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/moved/chat/completions", post(moved))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route("/v1/models", get(models))
        .route("/v1/files", get(files))
        .route("/_received", get(received_list))
        .with_state(received)
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    axum::serve(listener, router(Received::default()))
        .await
        .expect("the mock upstream serves");
}

/// Starts the mock on a free loopback port in the current runtime; returns its address and
/// what it receives.
pub async fn spawn() -> (std::net::SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let received = Received::default();
    let app = router(received.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, received)
}

async fn received_list(State(r): State<Received>) -> Json<Value> {
    Json(Value::Array(r.all()))
}

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "mock"},
        {"id": "mock-model", "object": "model", "created": 1, "owned_by": "mock"},
    ]}))
}

async fn files() -> Json<Value> {
    Json(json!({"object": "list", "data": []}))
}

fn last_user_text(body: &Value) -> String {
    let content = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| m["content"].clone())
        .unwrap_or(Value::Null);
    match content {
        Value::String(s) => s,
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

enum Script {
    Say(String, Vec<usize>),
    Tool(String, String),
}

fn script(text: &str) -> Script {
    if let Some(rest) = text.strip_prefix("say:") {
        let cuts = (8..rest.len()).step_by(8).collect();
        return Script::Say(rest.to_owned(), cuts);
    }
    if let Some(rest) = text.strip_prefix("split:") {
        if let Some((n, t)) = rest.split_once(':') {
            let n = n.parse::<usize>().unwrap_or(0).min(t.len());
            let n = (0..=n).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
            return Script::Say(t.to_owned(), vec![n]);
        }
    }
    if text.starts_with("leak:") {
        let reply = format!(
            "Sure. {}Then the key AKIAIOSFODNN7EXAMPLZ and more text after it.",
            "Here is a long and harmless preamble, streamed before anything bad. ".repeat(12)
        );
        let cuts = (8..reply.len()).step_by(8).collect();
        return Script::Say(reply, cuts);
    }
    if let Some(rest) = text.strip_prefix("tool:") {
        if let Some((name, args)) = rest.split_once(':') {
            return Script::Tool(name.to_owned(), args.to_owned());
        }
    }
    let reply = format!("echo: {text}");
    let cuts = (8..reply.len()).step_by(8).collect();
    Script::Say(reply, cuts)
}

fn pieces(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let c = (c..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        if c > start {
            out.push(text[start..c].to_owned());
            start = c;
        }
    }
    out.push(text[start..].to_owned());
    out
}

async fn delay_for(model: &str) -> Option<Response> {
    match model {
        "mock-broken" => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(
                    json!({"error": {"message": "the mock is broken", "type": "server_error",
                    "param": null, "code": "mock_broken"}}),
                ),
            )
                .into_response(),
        ),
        "mock-moved" => Some(
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, "/v1/moved/chat/completions")],
            )
                .into_response(),
        ),
        "mock-slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            None
        }
        "mock-20ms" => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            None
        }
        _ => None,
    }
}

fn sse(frames: Vec<String>) -> Response {
    let stream = futures_util::stream::iter(
        frames
            .into_iter()
            .map(|f| Ok::<_, Infallible>(Bytes::from(format!("data: {f}\n\n")))),
    );
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}

const PROMPT_TOKENS: u64 = 11;

/// Counts a stream as cancelled unless it was consumed to its end.
struct Watch(Arc<std::sync::atomic::AtomicUsize>, bool);

impl Watch {
    fn complete(&mut self) {
        self.1 = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn trickle(received: &Received) -> Response {
    let watch = Watch(received.1.clone(), false);
    let stream = futures_util::stream::unfold((0u32, watch), |(i, mut watch)| async move {
        if i >= 300 {
            watch.complete();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let chunk = json!({"id": "chatcmpl-trickle", "object": "chat.completion.chunk", "created": 1,
            "model": "mock-trickle", "choices": [{"index": 0, "delta": {"content": "tick "}, "finish_reason": null}]});
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("data: {chunk}\n\n"))),
            (i + 1, watch),
        ))
    });
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}

/// Where `mock-moved` points: a client that follows the redirect gets `moved here`.
async fn moved() -> Json<Value> {
    Json(json!({
        "id": "chatcmpl-moved", "object": "chat.completion", "created": 1, "model": "mock-moved",
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "moved here"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    }))
}

async fn chat(
    State(received): State<Received>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    received.push(&headers, body.clone());
    let model = body["model"].as_str().unwrap_or("mock-model").to_owned();
    if model == "mock-trickle" {
        return trickle(&received);
    }
    if let Some(r) = delay_for(&model).await {
        return r;
    }
    let text = last_user_text(&body);
    let script = script(&text);
    let stream = body["stream"].as_bool().unwrap_or(false);
    let id = "chatcmpl-mock";
    if !stream {
        let (message, finish, completion) = match &script {
            Script::Say(t, _) => (
                json!({"role": "assistant", "content": t}),
                "stop",
                t.split_whitespace().count() as u64,
            ),
            Script::Tool(name, args) => (
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}
                ]}),
                "tool_calls",
                5,
            ),
        };
        return Json(json!({
            "id": id, "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion,
                "total_tokens": PROMPT_TOKENS + completion},
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
        .to_string()
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let completion = match &script {
        Script::Say(t, cuts) => {
            for p in pieces(t, cuts) {
                frames.push(chunk(json!({"content": p}), Value::Null));
            }
            frames.push(chunk(json!({}), json!("stop")));
            t.split_whitespace().count() as u64
        }
        Script::Tool(name, args) => {
            frames.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            let cuts: Vec<usize> = (5..args.len()).step_by(5).collect();
            for p in pieces(args, &cuts) {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    Value::Null,
                ));
            }
            frames.push(chunk(json!({}), json!("tool_calls")));
            5
        }
    };
    if body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)) {
        frames.push(
            json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": completion, "total_tokens": PROMPT_TOKENS + completion}})
            .to_string(),
        );
    }
    frames.push("[DONE]".to_owned());
    sse(frames)
}

async fn completions(
    State(received): State<Received>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    received.push(&headers, body.clone());
    let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
    let text = prompt
        .strip_prefix("say:")
        .map_or_else(|| format!("echo: {prompt}"), str::to_owned);
    Json(json!({"id": "cmpl-mock", "object": "text_completion", "created": 1,
        "model": body["model"], "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 3, "total_tokens": PROMPT_TOKENS + 3}}))
    .into_response()
}

async fn embeddings(
    State(received): State<Received>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    received.push(&headers, body.clone());
    Json(json!({"object": "list", "model": body["model"],
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
    .into_response()
}

async fn responses(
    State(received): State<Received>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    received.push(&headers, body.clone());
    let input = match &body["input"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = input
        .strip_prefix("say:")
        .map_or_else(|| format!("echo: {input}"), str::to_owned);
    let response = json!({"id": "resp_mock", "object": "response", "created_at": 1, "status": "completed",
        "model": body["model"], "output": [{"type": "message", "id": "msg_1", "status": "completed",
        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 3, "total_tokens": PROMPT_TOKENS + 3}});
    if body["stream"].as_bool() != Some(true) {
        return Json(response).into_response();
    }
    let mut frames = Vec::new();
    for p in pieces(&text, &(8..text.len()).step_by(8).collect::<Vec<_>>()) {
        frames.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_1",
            "output_index": 0, "content_index": 0, "delta": p})
            .to_string(),
        );
    }
    frames.push(
        json!({"type": "response.output_text.done", "item_id": "msg_1",
        "output_index": 0, "content_index": 0, "text": text})
        .to_string(),
    );
    frames.push(json!({"type": "response.completed", "response": response}).to_string());
    sse(frames)
}

/// The Redis for tests that need one: `WARDEN_TEST_REDIS_URL` (which `.ci/run` sets), or `None`
/// after saying on stderr that the test is skipped.
pub fn test_redis_url() -> Option<String> {
    match std::env::var("WARDEN_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: WARDEN_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A Redis key prefix no other test, process or run shares.
pub fn unique_redis_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("test-{test}-{}-{nanos}", std::process::id())
}
