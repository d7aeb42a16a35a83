//! The MCP tool `ask_gloxi`: the same question type and answer as `POST /v1/chat`.
//!
//! When the client sends a progress token, the answer streams as progress notifications whose
//! `message` is the next piece of text (the MCP counterpart of REST's `delta` events); the
//! result is always the whole answer with its citations as structured content.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ProgressNotificationParam, Tool, ToolAnnotations};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::Value;
use tokio::sync::mpsc;
use warden_governance::gloxi::{Ask, ChatAnswer, ChatEvent, Gloxi};
use warden_governance::Principal;

use crate::error::ToolError;
use crate::schema;
use crate::tools::parse;

pub const NAME: &str = "ask_gloxi";

pub fn tool() -> Tool {
    let mut tool = Tool::new(
        NAME,
        "Ask Gloxi, Warden's regulatory assistant, a compliance question (EU AI Act, GDPR, \
         DORA, NIS2, Cyber Resilience Act, CSRD, NIST AI RMF, ISO/IEC 42001, HIPAA Security \
         Rule, NAIC AI bulletin, SOC 2). Returns an answer whose every point cites a passage \
         ([1], [2]...), the citations (regulation, article, paragraph, official link, quote) \
         and a conversation_id for follow-up questions. Set jurisdiction (eu, us, \
         international) and context (a sector such as financial_services) to focus it. Send a \
         progress token to receive the answer as it is written.",
        schema::of::<Ask>(),
    );
    tool.title = Some("Ask Gloxi".into());
    tool.output_schema = Some(Arc::new(schema::of::<ChatAnswer>()));
    tool.annotations = Some(
        ToolAnnotations::with_title("Ask Gloxi")
            // It adds a turn to a conversation, nothing else.
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    );
    tool
}

pub async fn call(
    gloxi: &Arc<Gloxi>,
    p: Principal,
    args: Value,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, ToolError> {
    let req: Ask = parse(args)?;
    let prepared = gloxi.prepare(&p, req).await?;
    let answer = match ctx.meta.get_progress_token() {
        None => gloxi.answer(prepared, None).await?,
        Some(token) => {
            let (tx, mut rx) = mpsc::channel::<ChatEvent>(64);
            let peer = ctx.peer.clone();
            let forward = async move {
                let mut n = 0u32;
                while let Some(ev) = rx.recv().await {
                    if let ChatEvent::Delta(text) = ev {
                        n += 1;
                        let _ = peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), f64::from(n))
                                    .with_message(text),
                            )
                            .await;
                    }
                }
            };
            let (answer, ()) = tokio::join!(gloxi.answer(prepared, Some(tx)), forward);
            answer?
        }
    };
    Ok(CallToolResult::structured(
        serde_json::to_value(answer).expect("an answer serializes"),
    ))
}
