//! One governed call, start to end.
//!
//! Order: authenticate -> parse -> route to an upstream -> guardians on the request (redact in
//! place, or block) -> count prompt tokens -> reserve limits -> policy `llm.request` ->
//! (escalate: answer with the thread, or hold until resolved) -> queue the request's ledger
//! record -> forward -> while the provider works, the record is written and synced -> release
//! the response (sync: once the record is durable; batched: once it is sequenced) with the
//! record's hash in `X-Warden-Record-Hash` -> scan the response (streams chunk by chunk) and
//! judge proposed tool calls -> settle the token reservation with the provider's usage ->
//! inscribe the outcome.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracing::Instrument;
use warden_config::{Durability, EscalationMode, FailMode};
use warden_governance::{GovError, Principal};
use warden_ledger::{Appending, Entry};
use warden_policy::{Evaluation, Input, Outcome};

use super::error::OpenAiError;
use super::inspect::{self, Findings, Route};
use super::limits::{LimitError, Reservation, Snapshot, Subject, DEFAULT_COMPLETION_RESERVE};
use super::record::{Check, Ending, RequestRecord, ResponseRecord, Usage};
use super::upstream::Upstream;
use super::{signals, stream, tokens, tools, trace, Plane};

/// Largest non-streamed upstream response read into memory for inspection.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What the end of a call needs to know about its start.
pub(crate) struct CallEnd {
    pub plane: Arc<Plane>,
    pub tenant: String,
    pub decision_id: String,
    pub request_index: Option<u64>,
    pub started: Instant,
    pub reservation: Option<Reservation>,
    pub agent: String,
    pub model: String,
    pub route: Route,
    /// The call's span, kept open until the call ends (a stream outlives the handler).
    pub span: tracing::Span,
}

impl CallEnd {
    /// Ends a call the upstream answered with an error (or a redirect): nothing to scan.
    fn upstream_error(self, status: u16) {
        self.finish(
            status,
            Ending::UpstreamError,
            None,
            &Findings::default(),
            &[],
        );
    }

    /// Settles the token reservation and inscribes how the call ended (not waited for: the
    /// response is already on its way).
    pub fn finish(
        mut self,
        status: u16,
        ending: Ending,
        usage: Option<Usage>,
        findings: &Findings,
        tool_calls: &[Value],
    ) {
        if let Some(u) = usage {
            signals::tokens(&self.plane, &self.tenant, &self.model, u);
            self.span.record("gen_ai.usage.input_tokens", u.prompt);
            self.span.record("gen_ai.usage.output_tokens", u.completion);
        }
        signals::guardians_fired(
            &self.plane,
            &self.tenant,
            &self.decision_id,
            &self.agent,
            "response",
            findings,
        );
        if let Some(r) = self.reservation.take() {
            match (usage, ending) {
                (Some(u), _) => r.settle(u.total()),
                (None, Ending::UpstreamError | Ending::UpstreamTimeout) => r.release(),
                // No usage reported: keep what was reserved.
                (None, _) => drop(r),
            }
        }
        let record = ResponseRecord {
            decision_id: &self.decision_id,
            request_index: self.request_index,
            status,
            ending,
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            usage,
            findings,
            tool_calls,
        };
        let entry = Entry::new("llm.response", self.tenant.clone(), record.payload());
        if let Err(e) = self.plane.inscribe(entry) {
            tracing::error!(error = %e, decision_id = %self.decision_id, "outcome not inscribed");
        }
    }
}

pub async fn govern(p: Arc<Plane>, route: Route, headers: HeaderMap, body: Bytes) -> Response {
    let principal = match p.auth.principal(&headers).await {
        Ok(pr) => pr,
        Err(e) => return e.into_response(),
    };
    govern_as(p, principal, route, headers, body).await
}

/// A call made for an already authenticated caller: Warden's own callers (Gloxi) go through
/// the same path as an agent's call, from the guardians to the ledger.
pub(crate) async fn govern_as(
    p: Arc<Plane>,
    principal: Principal,
    route: Route,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = trace::call_span(route, &headers);
    let resp = match govern_inner(p, principal, route, headers, body)
        .instrument(span.clone())
        .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let status = resp.status();
    span.record("http.response.status_code", status.as_u16());
    if let Some(v) = resp
        .headers()
        .get("x-warden-verdict")
        .and_then(|v| v.to_str().ok())
    {
        span.record("warden.verdict", v);
    }
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    resp
}

fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the operating system's random source is available");
    format!("{prefix}_{}", hex::encode(b))
}

fn gov_error(e: GovError) -> OpenAiError {
    match e {
        GovError::NotFound { what, id } => OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "not_found",
            format!("{what} {id} not found"),
        ),
        GovError::Invalid { field, message } => OpenAiError::invalid(field, message),
        GovError::Forbidden(s) => OpenAiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "forbidden",
            format!("this key lacks the {s} scope"),
        ),
        other => {
            tracing::error!(error = %other, "governance store failed");
            OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "store_unavailable",
                "the governance store is unavailable; retry",
            )
        }
    }
}

/// The agent: the key's binding, else `X-Warden-Agent`, else `default`.
fn agent_of(principal: &Principal, headers: &HeaderMap) -> Result<String, OpenAiError> {
    if let Some(a) = &principal.agent {
        return Ok(a.clone());
    }
    match headers.get("x-warden-agent").map(|v| v.to_str()) {
        None => Ok("default".to_owned()),
        Some(Ok(a))
            if (1..=128).contains(&a.len())
                && !a.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            Ok(a.to_owned())
        }
        Some(_) => Err(OpenAiError::invalid(
            "X-Warden-Agent",
            "X-Warden-Agent must be 1 to 128 characters without spaces",
        )),
    }
}

struct Judged {
    evaluation: Option<Evaluation>,
    verdict: Outcome,
    reasons: Vec<String>,
    check: Check,
}

fn judge(
    p: &Plane,
    agent: &str,
    context: Value,
    findings: &Findings,
) -> Result<Judged, OpenAiError> {
    let input = Input {
        decision_type: "llm.request".into(),
        action: Some("llm.request".into()),
        agent_id: Some(agent.to_owned()),
        tool: None,
        context,
    };
    let (evaluation, check) = match p.policies.evaluate(&input) {
        Ok(e) => (Some(e), Check::Ran),
        Err(e) => {
            tracing::warn!(error = %e, "llm.request policy could not run");
            match p.config.fail_mode {
                FailMode::Closed => {
                    return Err(OpenAiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "api_error",
                        "policy_unavailable",
                        format!("the policy check could not run ({e}); the call was not made"),
                    ))
                }
                FailMode::Open => (None, Check::FailedOpen),
            }
        }
    };
    let mut verdict = evaluation.as_ref().map_or(Outcome::Allow, |e| e.verdict);
    let mut reasons = evaluation
        .as_ref()
        .map(|e| e.reason_codes.clone())
        .unwrap_or_default();
    if findings.blocked {
        verdict = Outcome::Block;
        reasons = findings.reasons.clone();
    }
    Ok(Judged {
        evaluation,
        verdict,
        reasons,
        check,
    })
}

/// Waits for the request record as `ledger.durability` says; `None` when the ledger failed
/// and `fail_mode: open` lets the call through anyway.
async fn ledger_wait(
    p: &Plane,
    appending: Result<Appending, warden_ledger::LedgerError>,
) -> Result<Option<(u64, String)>, OpenAiError> {
    let result = match appending {
        Err(e) => Err(e),
        Ok(a) => a.settle(p.durability == Durability::Sync).await,
    };
    match result {
        Ok(s) => Ok(Some((s.index, s.record_hash.to_hex()))),
        Err(e) => {
            tracing::error!(error = %e, "the ledger could not record a call");
            match p.config.fail_mode {
                FailMode::Closed => Err(OpenAiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "ledger_unavailable",
                    "the call could not be recorded in the ledger; its response is withheld",
                )),
                FailMode::Open => Ok(None),
            }
        }
    }
}

/// The headers every governed answer carries.
fn warden_headers(
    h: &mut HeaderMap,
    decision_id: &str,
    verdict: Outcome,
    recorded: Option<&(u64, String)>,
    limits: &Snapshot,
) {
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-warden-decision-id", decision_id);
    put("x-warden-verdict", verdict.as_str());
    match recorded {
        Some((index, hash)) => {
            put("x-warden-record-hash", hash);
            put("x-warden-ledger-index", &index.to_string());
        }
        None => put("x-warden-ledger", "unavailable"),
    }
    for (name, value) in limits.headers() {
        put(name, &value);
    }
}

fn blocked_error(
    decision_id: &str,
    code: &'static str,
    message: String,
    reasons: &[String],
) -> OpenAiError {
    OpenAiError::new(
        StatusCode::FORBIDDEN,
        "warden_policy_violation",
        code,
        message,
    )
    .with_extra(json!({"reason_codes": reasons, "decision_id": decision_id}))
}

async fn govern_inner(
    p: Arc<Plane>,
    principal: Principal,
    route: Route,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let mut body: Value = serde_json::from_slice(&raw)
        .map_err(|e| OpenAiError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(OpenAiError::invalid(
            "body",
            "the body must be a JSON object",
        ));
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(OpenAiError::invalid(
                "model",
                "`model` is required: a model name",
            ))
        }
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(OpenAiError::invalid("stream", "`stream` must be a boolean")),
    };
    match route {
        Route::Chat => match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => {}
            _ => {
                return Err(OpenAiError::invalid(
                    "messages",
                    "`messages` is required: a non-empty array of messages",
                ))
            }
        },
        Route::Embeddings if body.get("input").is_none() => {
            return Err(OpenAiError::invalid("input", "`input` is required"));
        }
        _ => {}
    }
    let Some(upstream) = super::upstream::route(&p.upstreams, &model) else {
        return Err(if p.upstreams.is_empty() {
            OpenAiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "no_upstream",
                "no upstream is configured: add one under `upstreams:` in warden.yaml",
            )
        } else {
            OpenAiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("no upstream serves the model `{model}`"),
            )
            .with_extra(json!({"param": "model"}))
        });
    };
    let agent = agent_of(&principal, &headers)?;
    let span = tracing::Span::current();
    trace::name_call(&span, route, &model);
    span.record("warden.agent", agent.as_str());
    span.record("warden.upstream", upstream.name.as_str());
    let intent_id = match headers.get("x-warden-intent").map(|v| v.to_str()) {
        Some(Ok(id)) => {
            p.api
                .decisions
                .check_intent(&principal, id)
                .map_err(|e| match e {
                    GovError::NotFound { .. } => OpenAiError::invalid(
                        "X-Warden-Intent",
                        format!("intent {id} is not one of this tenant's intents"),
                    ),
                    other => gov_error(other),
                })?;
            Some(id.to_owned())
        }
        Some(Err(_)) => {
            return Err(OpenAiError::invalid(
                "X-Warden-Intent",
                "not a valid header value",
            ))
        }
        None => p
            .intents
            .get(&(principal.tenant.clone(), agent.clone()))
            .cloned(),
    };

    // The guardians, on everything the model will read.
    let body_sha256 = hex::encode(Sha256::digest(&raw));
    let findings = trace::step("guardians").in_scope(|| {
        let f = inspect::request(&p.guardians, route, &mut body);
        tracing::Span::current().record("warden.outcome", f.action.map_or("none", |a| a.as_str()));
        f
    });
    let (texts, messages) = inspect::prompt_texts(route, &body);
    let (prompt_tokens, counted) = p.tokenizers.count(&model, &texts, messages);
    let max_tokens = tokens::max_output(&body);
    let tools = inspect::tool_names(&body);
    let decision_id = new_id("dec");
    span.record("warden.decision_id", decision_id.as_str());
    if let Some(m) = max_tokens {
        span.record("gen_ai.request.max_tokens", m);
    }
    signals::guardians_fired(
        &p,
        &principal.tenant,
        &decision_id,
        &agent,
        "request",
        &findings,
    );

    // Limits: the prompt plus the completion budget, reserved before anything else happens.
    let reserve = prompt_tokens
        + match route {
            Route::Embeddings => 0,
            _ => max_tokens.unwrap_or(DEFAULT_COMPLETION_RESERVE),
        };
    let reservation = if p.limits.is_empty() {
        None
    } else {
        let who = Subject {
            key: &principal.key_id,
            agent: &agent,
            tenant: &principal.tenant,
            model: &model,
        };
        match p.limits.reserve(&who, reserve).await {
            Ok(r) => Some(r),
            Err(LimitError::Unavailable) => {
                return Err(OpenAiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "limits_unavailable",
                    "the shared rate limits cannot be checked right now (limits.fail_mode is reject); retry",
                )
                .with_header("x-warden-decision-id", &decision_id)
                .with_header("retry-after", "1"));
            }
            Err(LimitError::Exceeded(refusal)) => {
                signals::rate_limited(&p, &principal.tenant, &agent, &refusal.scope, refusal.what);
                let message = match refusal.retry_after {
                    Some(_) => format!(
                        "rate limit for {} reached on {}: limit {} per minute, this call needs {}",
                        refusal.what, refusal.scope, refusal.limit, refusal.asked
                    ),
                    None => format!(
                        "this call needs {} {} but {} allows only {} per minute; lower max_tokens or the prompt",
                        refusal.asked, refusal.what, refusal.scope, refusal.limit
                    ),
                };
                let mut e = OpenAiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    if refusal.what == "tokens" {
                        "tokens"
                    } else {
                        "requests"
                    },
                    "rate_limit_exceeded",
                    message,
                )
                .with_header("x-warden-decision-id", &decision_id);
                if let Some(after) = refusal.retry_after {
                    e = e.with_header(
                        "retry-after",
                        after.as_secs_f64().ceil().max(1.0).to_string(),
                    );
                }
                for (name, value) in refusal.snapshot.headers() {
                    e = e.with_header(name, value);
                }
                let _ = p.inscribe(Entry::new(
                    "llm.rate_limited",
                    principal.tenant.clone(),
                    json!({"decision_id": decision_id, "model": model, "agent_id": agent,
                        "key_id": principal.key_id, "limit": refusal.what,
                        "scope": refusal.scope, "asked": refusal.asked}),
                ));
                return Err(e);
            }
        }
    };
    let snapshot = reservation
        .as_ref()
        .map(|r| r.snapshot.clone())
        .unwrap_or_default();

    // Policy.
    let context = json!({
        "model": model,
        "upstream": upstream.name,
        "route": route.name(),
        "stream": stream,
        "prompt_tokens": prompt_tokens,
        "max_tokens": max_tokens,
        "tools": tools,
        "tool_count": tools.len(),
        "findings": findings.policy_view(),
        "intent_id": intent_id,
        "tenant": principal.tenant,
        "agent": agent,
    });
    let judged = trace::step("policy").in_scope(|| {
        let j = judge(&p, &agent, context, &findings);
        if let Ok(j) = &j {
            tracing::Span::current().record("warden.outcome", j.verdict.as_str());
        }
        j
    });
    let judged = match judged {
        Ok(j) => j,
        Err(e) => {
            if let Some(r) = reservation {
                r.release();
            }
            return Err(e.with_header("x-warden-decision-id", &decision_id));
        }
    };
    let asked = Asked {
        decision_id: &decision_id,
        route,
        model: &model,
        upstream: &upstream.name,
        agent: &agent,
        principal: &principal,
        intent_id: intent_id.as_deref(),
        body_sha256: &body_sha256,
        prompt_tokens,
        counted,
        max_tokens,
        stream,
        tools: &tools,
        findings: &findings,
        judged: &judged,
    };
    let mut escalation_thread: Option<String> = None;
    if judged.verdict == Outcome::Escalate {
        let evaluation = judged
            .evaluation
            .as_ref()
            .expect("escalate comes from a policy");
        // The Decision Desk: open the thread and, in hold mode, wait for it. A store failure
        // here gives the reserved tokens back, as any refusal does.
        let desk = async {
            let intent = match &intent_id {
                Some(i) => i.clone(),
                None => p
                    .api
                    .decisions
                    .ensure_agent_intent(&principal.tenant, &agent, None)?,
            };
            let summary = json!({
                "decision_id": decision_id, "model": model, "route": route.name(),
                "prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "tools": tools,
                "findings": findings.policy_view(), "body_sha256": body_sha256,
            });
            let (_, thread) = p.api.decisions.escalate_call(
                &principal,
                &intent,
                &agent,
                "llm.request",
                &summary,
                evaluation,
            )?;
            let status = if p.config.escalation == EscalationMode::Hold {
                p.api
                    .decisions
                    .wait_escalation(&principal, &thread, p.config.escalation_timeout)
                    .await?
                    .status
            } else {
                "OPEN".to_owned()
            };
            Ok::<_, GovError>((thread, status))
        }
        .await;
        let (thread, status) = match desk {
            Ok(x) => x,
            Err(e) => {
                if let Some(r) = reservation {
                    r.release();
                }
                return Err(gov_error(e));
            }
        };
        escalation_thread = Some(thread.clone());
        if status == "REJECT" {
            let mut reasons = judged.reasons.clone();
            reasons.push("ESCALATION_REJECTED".into());
            if let Some(r) = reservation {
                r.release();
            }
            let rec = inscribe_refusal(&p, &asked, "block", &reasons, Some(&thread)).await?;
            let mut e = blocked_error(
                &decision_id,
                "escalation_rejected",
                format!("a reviewer rejected this call (thread {thread})"),
                &reasons,
            );
            warden_headers(
                &mut e.headers,
                &decision_id,
                Outcome::Block,
                rec.as_ref(),
                &snapshot,
            );
            return Err(e);
        }
        // Approved (hold mode) goes on to forward; still open is answered with the thread.
        if status != "APPROVE" {
            if let Some(r) = reservation {
                r.release();
            }
            let rec =
                inscribe_refusal(&p, &asked, "escalate", &judged.reasons, Some(&thread)).await?;
            let mut e = OpenAiError::new(
                StatusCode::CONFLICT,
                "warden_escalation",
                "escalation_required",
                format!(
                    "this call needs a human's approval: Decision Desk thread {thread}; retry once it is approved"
                ),
            )
            .with_extra(json!({"reason_codes": judged.reasons, "decision_id": decision_id,
                "escalation_thread_id": thread}));
            warden_headers(
                &mut e.headers,
                &decision_id,
                Outcome::Escalate,
                rec.as_ref(),
                &snapshot,
            );
            return Err(e);
        }
    }
    if judged.verdict == Outcome::Block {
        if let Some(r) = reservation {
            r.release();
        }
        let rec = inscribe_refusal(&p, &asked, "block", &judged.reasons, None).await?;
        signals::blocked(
            &p,
            &principal.tenant,
            &decision_id,
            &agent,
            &model,
            &judged.reasons,
            judged.evaluation.as_ref().map(|e| e.utilization),
        );
        let what = if findings.blocked {
            "the guardians blocked this request"
        } else {
            "policy blocks this request"
        };
        let mut e = blocked_error(
            &decision_id,
            "request_blocked",
            format!("{what}: {}", judged.reasons.join(", ")),
            &judged.reasons,
        );
        warden_headers(
            &mut e.headers,
            &decision_id,
            Outcome::Block,
            rec.as_ref(),
            &snapshot,
        );
        return Err(e);
    }

    // Forward, with the request's record written meanwhile.
    let verdict = judged.verdict;
    let wants_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ask_usage = stream && matches!(route, Route::Chat | Route::Completions) && !wants_usage;
    if ask_usage {
        match body
            .get_mut("stream_options")
            .and_then(Value::as_object_mut)
        {
            Some(o) => {
                o.insert("include_usage".into(), Value::Bool(true));
            }
            None => body["stream_options"] = json!({"include_usage": true}),
        }
    }
    let out = if findings.redacted > 0 || ask_usage {
        Bytes::from(serde_json::to_vec(&body).expect("a JSON value serializes"))
    } else {
        raw
    };
    let appending = p.inscribe(asked.entry(
        verdict.as_str(),
        &judged.reasons,
        escalation_thread.as_deref(),
    ));
    let sent = send(&p, upstream, route, &headers, out, stream)
        .instrument(trace::upstream_span(&upstream.name, &upstream.address))
        .await;
    let recorded = match ledger_wait(&p, appending)
        .instrument(trace::step("ledger.append"))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            if let Some(r) = reservation {
                r.release();
            }
            return Err(e.with_header("x-warden-decision-id", &decision_id));
        }
    };
    let end = CallEnd {
        plane: p.clone(),
        tenant: principal.tenant.clone(),
        decision_id: decision_id.clone(),
        request_index: recorded.as_ref().map(|r| r.0),
        started,
        reservation,
        agent: agent.clone(),
        model: model.clone(),
        route,
        span: span.clone(),
    };
    let mut response = match sent {
        Err(e) => {
            let (status, ending, err) = upstream_failure(upstream, &e);
            end.finish(status.as_u16(), ending, None, &Findings::default(), &[]);
            err.into_response()
        }
        Ok(resp) if resp.status().is_redirection() => {
            let status = resp.status();
            end.upstream_error(status.as_u16());
            // Not passed on: an agent that followed it would bypass Warden.
            OpenAiError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_redirect",
                format!(
                    "upstream {} answered {status}, a redirect; Warden does not follow redirects: set the upstream's base_url to the address it redirects to",
                    upstream.name
                ),
            )
            .into_response()
        }
        Ok(resp) if !resp.status().is_success() => {
            let status = resp.status();
            let upstream_headers = resp.headers().clone();
            let bytes = resp.bytes().await.unwrap_or_default();
            end.upstream_error(status.as_u16());
            let mut r = if serde_json::from_slice::<Value>(&bytes)
                .is_ok_and(|v| v.get("error").is_some())
            {
                (status, bytes).into_response()
            } else {
                OpenAiError::new(
                    status,
                    "api_error",
                    "upstream_error",
                    format!("upstream {} answered {status}", upstream.name),
                )
                .into_response()
            };
            copy_headers(&upstream_headers, r.headers_mut());
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Ok(resp) if stream && is_event_stream(resp.headers()) => {
            stream::relay(end, resp, wants_usage || !ask_usage)
        }
        Ok(resp) => complete(end, resp).await,
    };
    warden_headers(
        response.headers_mut(),
        &decision_id,
        verdict,
        recorded.as_ref(),
        &snapshot,
    );
    Ok(response)
}

/// The facts of a call that each of its request records repeats.
struct Asked<'a> {
    decision_id: &'a str,
    route: Route,
    model: &'a str,
    upstream: &'a str,
    agent: &'a str,
    principal: &'a Principal,
    intent_id: Option<&'a str>,
    body_sha256: &'a str,
    prompt_tokens: u64,
    counted: super::Counted,
    max_tokens: Option<u64>,
    stream: bool,
    tools: &'a [String],
    findings: &'a Findings,
    judged: &'a Judged,
}

impl Asked<'_> {
    /// The `llm.request` entry with this verdict.
    fn entry(&self, verdict: &str, reasons: &[String], thread: Option<&str>) -> Entry {
        let record = RequestRecord {
            decision_id: self.decision_id,
            route: self.route.name(),
            model: self.model,
            upstream: self.upstream,
            agent: self.agent,
            key_id: &self.principal.key_id,
            intent_id: self.intent_id,
            body_sha256: self.body_sha256,
            prompt_tokens: self.prompt_tokens,
            counted: self.counted,
            max_tokens: self.max_tokens,
            stream: self.stream,
            tools: self.tools,
            findings: self.findings,
            evaluation: self.judged.evaluation.as_ref(),
            verdict,
            reason_codes: reasons,
            policy_check: self.judged.check,
            escalation_thread_id: thread,
        };
        Entry::new(
            "llm.request",
            self.principal.tenant.clone(),
            record.payload(),
        )
    }
}

/// Records a call that is not forwarded, and waits for the record as for any other.
async fn inscribe_refusal(
    p: &Plane,
    asked: &Asked<'_>,
    verdict: &str,
    reasons: &[String],
    thread: Option<&str>,
) -> Result<Option<(u64, String)>, OpenAiError> {
    ledger_wait(p, p.inscribe(asked.entry(verdict, reasons, thread))).await
}

fn is_event_stream(h: &reqwest::header::HeaderMap) -> bool {
    h.get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Headers the agent may see from the provider: not hop-by-hop ones, not the length or
/// encoding of a body Warden may rewrite, not the provider's own rate-limit view.
pub(crate) fn copy_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        if matches!(
            n,
            "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "content-length"
                | "content-encoding"
                | "upgrade"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "set-cookie"
        ) || n.starts_with("x-ratelimit-")
            || n.starts_with("x-warden-")
        {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            to.insert(k, v);
        }
    }
}

async fn send(
    p: &Plane,
    upstream: &Upstream,
    route: Route,
    headers: &HeaderMap,
    body: Bytes,
    stream: bool,
) -> Result<reqwest::Response, reqwest::Error> {
    let post = match upstream.endpoint(route) {
        Some(url) => p.client.post(url.clone()),
        None => p
            .client
            .post(format!("{}{}", upstream.base_url, route.path())),
    };
    let mut req = post
        .timeout(upstream.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        // Warden must read what it relays: no compressed bodies.
        .header(reqwest::header::ACCEPT_ENCODING, "identity")
        .body(body);
    if stream {
        req = req.header(reqwest::header::ACCEPT, "text/event-stream");
    }
    if let Some(auth) = &upstream.authorization {
        req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
    }
    let context = trace::outgoing_context();
    let passed: &[&str] = if context.is_some() {
        &["openai-beta", "x-request-id"]
    } else {
        &["traceparent", "tracestate", "openai-beta", "x-request-id"]
    };
    for name in passed {
        if let Some(v) = headers.get(*name) {
            req = req.header(*name, v.as_bytes());
        }
    }
    for (name, value) in context.iter().flatten() {
        req = req.header(name.as_str(), value.as_bytes());
    }
    let sent = req.send().await;
    if let Ok(r) = &sent {
        tracing::Span::current().record("http.response.status_code", r.status().as_u16());
    }
    sent
}

fn upstream_failure(upstream: &Upstream, e: &reqwest::Error) -> (StatusCode, Ending, OpenAiError) {
    if e.is_timeout() {
        let s = StatusCode::GATEWAY_TIMEOUT;
        (
            s,
            Ending::UpstreamTimeout,
            OpenAiError::new(
                s,
                "api_error",
                "upstream_timeout",
                format!(
                    "upstream {} did not answer within {}",
                    upstream.name,
                    humanize(upstream.timeout)
                ),
            ),
        )
    } else {
        let s = StatusCode::BAD_GATEWAY;
        tracing::warn!(upstream = %upstream.name, error = %e, "upstream call failed");
        (
            s,
            Ending::UpstreamError,
            OpenAiError::new(
                s,
                "api_error",
                "upstream_unreachable",
                format!("upstream {} could not be reached", upstream.name),
            ),
        )
    }
}

fn humanize(d: std::time::Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A non-streamed response: read, scanned, its tool calls judged, settled, inscribed.
async fn complete(end: CallEnd, resp: reqwest::Response) -> Response {
    let status = resp.status();
    let upstream_headers = resp.headers().clone();
    let bytes = match read_limited(resp).await {
        Ok(b) => b,
        Err(e) => {
            let (status, ending, err) = match e {
                ReadError::TooLarge => (
                    StatusCode::BAD_GATEWAY,
                    Ending::UpstreamError,
                    OpenAiError::new(
                        StatusCode::BAD_GATEWAY,
                        "api_error",
                        "upstream_response_too_large",
                        "the upstream response exceeds 64 MiB",
                    ),
                ),
                ReadError::Http(e) => {
                    let (s, ending, err) = upstream_failure(
                        &Upstream::new(
                            "upstream".into(),
                            String::new(),
                            None,
                            Vec::new(),
                            std::time::Duration::ZERO,
                        ),
                        &e,
                    );
                    (s, ending, err)
                }
            };
            end.finish(status.as_u16(), ending, None, &Findings::default(), &[]);
            return err.into_response();
        }
    };
    let Ok(mut body) = serde_json::from_slice::<Value>(&bytes) else {
        end.finish(
            status.as_u16(),
            Ending::UpstreamError,
            None,
            &Findings::default(),
            &[],
        );
        return OpenAiError::new(
            StatusCode::BAD_GATEWAY,
            "api_error",
            "upstream_invalid_response",
            "the upstream answered with something that is not JSON",
        )
        .into_response();
    };
    let p = end.plane.clone();
    let mut findings = inspect::response_texts(&p.guardians, end.route, &mut body);
    let mut tool_calls = Vec::new();
    judge_tool_calls(
        &p,
        &end.agent,
        &end.model,
        end.route,
        &mut body,
        &mut findings,
        &mut tool_calls,
    );
    let usage = body.get("usage").and_then(Usage::from_json);
    if findings.blocked {
        let reasons = findings.reasons.clone();
        let decision_id = end.decision_id.clone();
        end.finish(
            status.as_u16(),
            Ending::Blocked,
            usage,
            &findings,
            &tool_calls,
        );
        return blocked_error(
            &decision_id,
            "response_blocked",
            format!("the guardians blocked the response: {}", reasons.join(", ")),
            &reasons,
        )
        .into_response();
    }
    end.finish(
        status.as_u16(),
        Ending::Completed,
        usage,
        &findings,
        &tool_calls,
    );
    let mut r = (
        status,
        Body::from(serde_json::to_vec(&body).expect("serializes")),
    )
        .into_response();
    copy_headers(&upstream_headers, r.headers_mut());
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Judges the tool calls of a non-streamed response; withheld ones are removed.
fn judge_tool_calls(
    p: &Plane,
    agent: &str,
    model: &str,
    route: Route,
    body: &mut Value,
    findings: &mut Findings,
    summaries: &mut Vec<Value>,
) {
    match route {
        Route::Chat => {
            let Some(Value::Array(choices)) = body.get_mut("choices") else {
                return;
            };
            for c in choices {
                let Some(Value::Array(calls)) = c.pointer_mut("/message/tool_calls") else {
                    continue;
                };
                let before = calls.len();
                calls.retain_mut(|call| {
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let args = call
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let v = tools::judge(p, agent, model, &name, &args);
                    findings.merge(&v.findings);
                    summaries.push(v.summary);
                    if v.allowed {
                        call["function"]["arguments"] = Value::String(v.arguments);
                    }
                    v.allowed
                });
                if calls.is_empty() && before > 0 {
                    if let Some(m) = c.get_mut("message").and_then(Value::as_object_mut) {
                        m.remove("tool_calls");
                    }
                    c["finish_reason"] = json!("content_filter");
                }
            }
        }
        Route::Responses => {
            let Some(Value::Array(output)) = body.get_mut("output") else {
                return;
            };
            output.retain_mut(|item| {
                if item.get("type").and_then(Value::as_str) != Some("function_call") {
                    return true;
                }
                let name = item["name"].as_str().unwrap_or_default().to_owned();
                let args = item["arguments"].as_str().unwrap_or_default().to_owned();
                let v = tools::judge(p, agent, model, &name, &args);
                findings.merge(&v.findings);
                summaries.push(v.summary);
                if v.allowed {
                    item["arguments"] = Value::String(v.arguments);
                }
                v.allowed
            });
        }
        _ => {}
    }
    // A withheld call's findings do not block the whole response.
    findings.blocked = findings.blocked
        && findings.spots.iter().any(|s| {
            s.action == warden_guardians::Action::Block && !s.at.starts_with("/arguments")
        });
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `GET /v1/models`: the models of every upstream, as each lists them, limited to those the
/// upstream is configured to serve.
pub async fn models(
    axum::extract::State(p): axum::extract::State<Arc<Plane>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = p.auth.principal(&headers).await {
        return e.into_response();
    }
    let mut data: Vec<Value> = Vec::new();
    for u in &p.upstreams {
        let mut req = p
            .client
            .get(format!("{}/models", u.base_url))
            .timeout(u.timeout.min(std::time::Duration::from_secs(10)));
        if let Some(a) = &u.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        let listed = match req.send().await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            _ => None,
        };
        match listed.and_then(|v| v.get("data").and_then(Value::as_array).cloned()) {
            Some(models) => {
                for m in models {
                    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
                    if u.serves(id) && !data.iter().any(|d| d["id"] == m["id"]) {
                        data.push(m);
                    }
                }
            }
            None => {
                // The upstream does not list its models: show the configured exact names.
                for name in u.models.iter().filter(|m| !m.contains(['*', '?'])) {
                    if !data.iter().any(|d| d["id"] == name.as_str()) {
                        data.push(json!({"id": name, "object": "model", "created": 0, "owned_by": u.name}));
                    }
                }
            }
        }
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// A path Warden does not govern, forwarded unchanged to the first upstream (by config),
/// still authenticated, and inscribed.
pub async fn passthrough(
    p: Arc<Plane>,
    method: Method,
    rest: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match p.auth.principal(&headers).await {
        Ok(pr) => pr,
        Err(e) => return e.into_response(),
    };
    let Some(upstream) = p.upstreams.first() else {
        return OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "no_upstream",
            "no upstream is configured",
        )
        .into_response();
    };
    let started = Instant::now();
    let method =
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = p
        .client
        .request(method.clone(), format!("{}/{rest}", upstream.base_url))
        .timeout(upstream.timeout)
        .header(reqwest::header::ACCEPT_ENCODING, "identity")
        .body(body.clone());
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        req = req.header(reqwest::header::CONTENT_TYPE, ct.as_bytes());
    }
    if let Some(a) = &upstream.authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a.clone());
    }
    let result = req.send().await;
    let status = result.as_ref().map(|r| r.status().as_u16()).unwrap_or(502);
    let _ = p.inscribe(Entry::new(
        "llm.passthrough",
        principal.tenant.clone(),
        json!({"method": method.as_str(), "path": format!("/v1/{rest}"), "upstream": upstream.name,
            "key_id": principal.key_id, "status": status,
            "body_sha256": hex::encode(Sha256::digest(&body)),
            "latency_ms": started.elapsed().as_secs_f64() * 1000.0}),
    ));
    match result {
        Err(e) => upstream_failure(upstream, &e).2.into_response(),
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let h = resp.headers().clone();
            let mut r = (status, Body::from_stream(resp.bytes_stream())).into_response();
            copy_headers(&h, r.headers_mut());
            r
        }
    }
}
