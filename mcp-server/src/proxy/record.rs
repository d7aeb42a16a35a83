//! What the ledger and the event stream learn of a proxied `tools/call`.
//!
//! A call that is forwarded leaves two records, as an LLM call through the data plane does:
//! `mcp.tool_call` (who called what, the arguments' hash and findings, the verdict) is enqueued
//! before the call is forwarded, so its durable write runs while the upstream works, and the
//! answer waits for it; `mcp.tool_result` (how the call ended, the result's hash and findings,
//! a cancellation) follows with the same `call_id` and the first record's `request_index`,
//! without holding the answer. A call refused before forwarding has only the first record, with
//! its outcome, and the refusal waits for it. Records hold hashes and finding locations, never
//! the content.

use rmcp::model::CallToolResult;
use serde_json::{json, Value};
use warden_governance::{Decisions, NewEvent, Principal};
use warden_guardians::{Action, JsonFinding};
use warden_ledger::{Appending, LedgerError};

use super::SEPARATOR;
use crate::error::ToolError;

/// Where a record landed: its ledger index and record hash.
pub(super) type Place = (u64, String);

/// Waits for a record as `ledger.durability` says: until durable, or until it has its place.
pub(super) async fn settled(
    appending: Result<Appending, LedgerError>,
    durable: bool,
) -> Result<Place, LedgerError> {
    let s = appending?.settle(durable).await?;
    Ok((s.index, s.record_hash.to_hex()))
}

/// The answer with its record's place in `_meta["warden/ledger"]`. A call whose record could
/// not be written is not answered as if it had been: its answer is withheld
/// (`ledger_unavailable`), or under `fail_mode: open` given with `"recorded": false` in place
/// of the record's place.
pub(super) fn attach(
    place: Result<Place, LedgerError>,
    mut result: CallToolResult,
    fail_open: bool,
) -> CallToolResult {
    let note = match place {
        Ok((index, hash)) => json!({"ledger_index": index, "record_hash": hash}),
        Err(e) => {
            tracing::error!(error = %e, "the ledger could not record an MCP tool call");
            // A refusal stays a refusal: nothing happened that the ledger missed.
            if !fail_open && result.is_error != Some(true) {
                return ToolError::new(
                    "ledger_unavailable",
                    "the call could not be recorded in the ledger; its answer is withheld",
                )
                .into_result();
            }
            json!({"recorded": false, "error": "ledger_unavailable"})
        }
    };
    let mut meta = result.meta.take().unwrap_or_default();
    meta.insert("warden/ledger".into(), note);
    result.meta = Some(meta);
    result
}

/// Writes a refusal's code (and a block's reason codes) into a record; `outcome` is the code.
pub(super) fn refusal(record: &mut Value, e: &ToolError) {
    record["outcome"] = json!(e.code);
    record["error_code"] = json!(e.code);
    if e.code == "blocked" {
        record["reason_codes"] = json!(e.reason_codes);
    }
}

/// A call's id: unique per call, and no clue to its content.
pub(super) fn call_id(server: &str, tool: &str, key_id: &str) -> String {
    format!(
        "mcp_{}",
        &hash(&json!([server, tool, key_id, now_nanos()]))[7..31]
    )
}

/// The ledger's account of a call the client cancelled: at which stage, and for a forwarded
/// call, the upstream's request id and whether `notifications/cancelled` reached the upstream's
/// transport.
pub(super) fn cancellation(stage: &str, upstream: Option<(rmcp::model::RequestId, bool)>) -> Value {
    let mut c = json!({"by": "client", "stage": stage});
    if let Some((id, notified)) = upstream {
        c["upstream_request_id"] = json!(id);
        c["upstream_notified"] = json!(notified);
    }
    c
}

pub(super) fn hash(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(
            warden_ledger::canonical::to_string(v).as_bytes()
        ))
    )
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The events of a proxied tool call (its `mcp.tool_call` record, and its `mcp.tool_result`
/// record if it was forwarded): what the guardians found, and a refusal by policy or the
/// guardians. Written off the call's path, like the LLM proxy's.
pub(super) fn announce(d: &Decisions, p: &Principal, call: &Value, result: Option<&Value>) {
    let call_id = call["call_id"].as_str().unwrap_or_default();
    let mut found: Vec<&Value> = Vec::new();
    found.extend(call["argument_findings"].as_array().into_iter().flatten());
    if let Some(r) = result {
        found.extend(r["result_findings"].as_array().into_iter().flatten());
    }
    for f in &found {
        metrics::counter!("warden_guardian_triggers_total",
            "detector" => f["detector"].as_str().unwrap_or("unknown").to_owned(),
            "action" => f["action"].as_str().unwrap_or("flag").to_owned())
        .increment(1);
    }
    let tool = format!(
        "{}{SEPARATOR}{}",
        call["server"].as_str().unwrap_or_default(),
        call["tool"].as_str().unwrap_or_default()
    );
    if !found.is_empty() {
        let kinds: Vec<String> = found
            .iter()
            .map(|f| {
                format!(
                    "{}:{}",
                    f["detector"].as_str().unwrap_or_default(),
                    f["entity_type"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let result_findings = result.map_or(json!([]), |r| r["result_findings"].clone());
        d.events().emit_detached(
            &p.tenant,
            NewEvent::of(
                "guardian.trigger.fired",
                "mcp_calls",
                call_id,
                format!("{tool}: {}", kinds.join(", ")),
                json!({"tool": tool, "agent_id": call["agent_id"],
                       "argument_findings": call["argument_findings"],
                       "result_findings": result_findings}),
            ),
        );
    }
    let ended = result.unwrap_or(call);
    if ended["error_code"] == "blocked" {
        let reasons = ended["reason_codes"].clone();
        d.events().emit_detached(
            &p.tenant,
            NewEvent::of(
                "policy.violation.detected",
                "mcp_calls",
                call_id,
                format!("{tool} blocked: {}", reasons),
                json!({"decision_type": "mcp.tool_call", "tool": tool,
                       "agent_id": call["agent_id"], "verdict": "BLOCK",
                       "reason_codes": reasons}),
            ),
        );
    }
}

/// Where and what was found, never the text itself.
pub(super) fn findings(found: &[JsonFinding]) -> Value {
    Value::Array(
        found
            .iter()
            .map(|f| {
                json!({"pointer": f.pointer, "detector": f.finding.detector,
                    "entity_type": f.finding.entity_type, "rule": f.finding.rule,
                    "action": f.finding.action})
            })
            .collect(),
    )
}

/// `GUARDIAN_<ENTITY>` for each blocking finding, e.g. `GUARDIAN_INSTRUCTION_OVERRIDE`.
pub(super) fn guardian_reasons(found: &[JsonFinding]) -> Vec<String> {
    let mut r: Vec<String> = found
        .iter()
        .filter(|f| f.finding.action == Action::Block)
        .map(|f| format!("GUARDIAN_{}", f.finding.entity_type.to_ascii_uppercase()))
        .collect();
    r.sort();
    r.dedup();
    if r.is_empty() {
        r.push("GUARDIAN_BLOCK".into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    fn answer() -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text("42")])
    }

    fn code(r: &CallToolResult) -> Value {
        match &r.content[0] {
            ContentBlock::Text(t) => {
                serde_json::from_str::<Value>(&t.text).unwrap()["code"].clone()
            }
            other => panic!("not text: {other:?}"),
        }
    }

    fn ledger_note(r: &CallToolResult) -> Value {
        r.meta.as_ref().unwrap()["warden/ledger"].clone()
    }

    #[test]
    fn a_recorded_answer_names_its_record() {
        let r = attach(Ok((7, "ab".into())), answer(), false);
        assert_eq!(r.is_error, Some(false));
        assert_eq!(
            ledger_note(&r),
            json!({"ledger_index": 7, "record_hash": "ab"})
        );
    }

    #[test]
    fn an_unrecorded_answer_is_withheld_unless_fail_open() {
        let closed = attach(Err(LedgerError::Closed), answer(), false);
        assert_eq!(closed.is_error, Some(true));
        assert_eq!(code(&closed), "ledger_unavailable", "{closed:?}");
        assert!(!format!("{closed:?}").contains("42"), "{closed:?}");

        let open = attach(Err(LedgerError::Closed), answer(), true);
        assert_eq!(open.is_error, Some(false));
        assert_eq!(open.content, answer().content);
        assert_eq!(
            ledger_note(&open),
            json!({"recorded": false, "error": "ledger_unavailable"})
        );
    }

    #[test]
    fn an_unrecorded_refusal_stays_the_refusal() {
        let refusal = ToolError::new("blocked", "no").into_result();
        let r = attach(Err(LedgerError::Closed), refusal, false);
        assert_eq!(code(&r), "blocked");
        assert_eq!(ledger_note(&r)["recorded"], false);
    }
}
