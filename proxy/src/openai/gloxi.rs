//! Gloxi's LLM calls, made through the data plane in process.
//!
//! Gloxi asks the configured model as agent `gloxi`, on behalf of (and in the tenant of) the
//! key that asked the question, through the same [`call::govern_as`] path as an agent's
//! `POST /v1/chat/completions`: guardians on the prompt, token limits (per key, agent `gloxi`,
//! tenant, model), policy `llm.request`, the ledger records of request and outcome, guardians
//! on the response. Calling in process rather than over loopback HTTP avoids a second
//! listener hop and a key Warden would have to mint and keep for itself; what is skipped is only
//! the authentication the caller already passed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use warden_governance::gloxi::{Generate, GenerateError, GenerateFuture, Message};
use warden_governance::Principal;

use super::inspect::Route;
use super::{call, Plane};

/// The agent Gloxi's calls are attributed to.
pub const AGENT: &str = "gloxi";

/// Largest completion body read back.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The governed LLM behind Gloxi.
pub struct GovernedLlm {
    plane: Arc<Plane>,
    model: String,
    max_tokens: u32,
}

impl GovernedLlm {
    pub fn new(plane: Arc<Plane>, model: String, max_tokens: u32) -> GovernedLlm {
        GovernedLlm {
            plane,
            model,
            max_tokens,
        }
    }
}

impl Generate for GovernedLlm {
    fn generate<'a>(&'a self, caller: &'a Principal, messages: Vec<Message>) -> GenerateFuture<'a> {
        Box::pin(async move {
            let principal = Principal {
                agent: Some(AGENT.to_owned()),
                ..caller.clone()
            };
            let messages: Vec<Value> = messages
                .into_iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect();
            let body = json!({"model": self.model, "messages": messages,
                "max_tokens": self.max_tokens, "temperature": 0});
            let resp = call::govern_as(
                self.plane.clone(),
                principal,
                Route::Chat,
                HeaderMap::new(),
                Bytes::from(body.to_string()),
            )
            .await;
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), MAX_BODY)
                .await
                .map_err(|e| GenerateError::Failed(format!("reading the answer: {e}")))?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|_| GenerateError::Failed("the answer is not JSON".into()))?;
            if !status.is_success() {
                let code = v["error"]["code"].as_str().unwrap_or("unknown").to_owned();
                return Err(if status.is_client_error() {
                    GenerateError::Refused {
                        status: status.as_u16(),
                        code,
                    }
                } else {
                    GenerateError::Failed(format!("{} {code}", status.as_u16()))
                });
            }
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| GenerateError::Failed("the answer has no message content".into()))
        })
    }
}
