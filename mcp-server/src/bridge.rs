//! `warden mcp --connect URL --key KEY`: a stdio MCP server that relays every JSON-RPC message
//! to a running Warden's `/mcp`, so a desktop client (which starts MCP servers as child
//! processes) reaches a sidecar without opening its data directory a second time.
//!
//! The relay is message-level and does not interpret the protocol: each line from stdin is
//! POSTed as is; the answer, a JSON body or an SSE stream (which carries progress
//! notifications while a governed call is held), goes to stdout message by message. Requests
//! run concurrently, as a client may cancel or send more while one waits for a human; the
//! handshake and notifications keep their order. An HTTP failure becomes a JSON-RPC error for
//! the request it concerns, never a silent drop.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::error::McpError;

#[derive(Default)]
struct Session {
    id: Option<String>,
    protocol_version: Option<String>,
}

struct Relay {
    client: reqwest::Client,
    url: String,
    auth: String,
    session: Mutex<Session>,
    out: mpsc::UnboundedSender<String>,
}

/// Relays stdin/stdout to the MCP endpoint at `url` until stdin closes.
pub async fn bridge(url: String, key: String) -> Result<(), McpError> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| McpError::Bridge {
            url: url.clone(),
            message: e.to_string(),
        })?;
    let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    let relay = Arc::new(Relay {
        client,
        url,
        auth: format!("Bearer {key}"),
        session: Mutex::new(Session::default()),
        out,
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                relay.reply_error(Value::Null, -32700, format!("parse error: {e}"));
                continue;
            }
        };
        let is_request = msg.get("id").is_some() && msg.get("method").is_some();
        let is_initialize = msg.get("method").and_then(Value::as_str) == Some("initialize");
        if is_request && !is_initialize {
            let relay = relay.clone();
            inflight.spawn(async move { relay.send(msg).await });
        } else {
            relay.send(msg).await;
        }
    }
    // Let calls in flight finish, then end the session.
    while inflight.join_next().await.is_some() {}
    relay.close().await;
    drop(relay);
    let _ = writer.await;
    Ok(())
}

impl Relay {
    fn reply_error(&self, id: Value, code: i64, message: String) {
        let _ = self.out.send(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
                .to_string(),
        );
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, &self.url)
            .header("authorization", &self.auth)
            .header("accept", "application/json, text/event-stream");
        let s = self.session.lock().expect("not poisoned");
        if let Some(id) = &s.id {
            req = req.header("mcp-session-id", id);
        }
        if let Some(v) = &s.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        req
    }

    async fn send(&self, msg: Value) {
        let id = msg.get("id").cloned();
        let resp = self
            .request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .body(msg.to_string())
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if let Some(id) = id {
                    self.reply_error(id, -32603, format!("Warden is unreachable: {e}"));
                }
                return;
            }
        };
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session.lock().expect("not poisoned").id = Some(sid.to_owned());
        }
        let status = resp.status();
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status == reqwest::StatusCode::ACCEPTED {
            return;
        }
        if !sse {
            let body = resp.text().await.unwrap_or_default();
            match serde_json::from_str::<Value>(&body) {
                Ok(m) if m.get("jsonrpc").is_some() => self.forward(m),
                _ => {
                    if let Some(id) = id {
                        self.reply_error(
                            id,
                            -32603,
                            format!("Warden answered {status}: {}", body.trim()),
                        );
                    }
                }
            }
            return;
        }
        // Server-sent events: `data:` lines, events separated by a blank line.
        let mut buf = String::new();
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    buf.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = buf.find("\n\n") {
                        let event: String = buf.drain(..end + 2).collect();
                        let data: Vec<&str> = event
                            .lines()
                            .filter_map(|l| l.strip_prefix("data:"))
                            .map(str::trim_start)
                            .collect();
                        if data.is_empty() {
                            continue;
                        }
                        if let Ok(m) = serde_json::from_str::<Value>(&data.join("\n")) {
                            self.forward(m);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if let Some(id) = id {
                        self.reply_error(id, -32603, format!("the stream from Warden broke: {e}"));
                    }
                    break;
                }
            }
        }
    }

    fn forward(&self, m: Value) {
        if let Some(v) = m.pointer("/result/protocolVersion").and_then(Value::as_str) {
            self.session.lock().expect("not poisoned").protocol_version = Some(v.to_owned());
        }
        let _ = self.out.send(m.to_string());
    }

    async fn close(&self) {
        if self.session.lock().expect("not poisoned").id.is_some() {
            let _ = self.request(reqwest::Method::DELETE).send().await;
        }
    }
}
