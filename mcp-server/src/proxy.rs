//! The governing MCP proxy: upstream MCP servers (a stdio command, or a streamable-HTTP URL with
//! headers) federated behind Warden's `/mcp`, their tools named `upstream__tool`.
//!
//! Every `tools/call` takes the path of an LLM call through the data plane:
//! guardians on every string of the arguments (JSON-pointer findings; redact or block) ->
//! policy decision `mcp.tool_call` (action = the federated name, tool = the upstream's tool,
//! context = `{server, tool, arguments, caller}`) -> `escalate`: hold the call, with progress
//! notifications, until a human resolves its Decision Desk thread (or fail at once, by
//! configuration); `block`: a tool error with the reason codes -> forward, with a timeout ->
//! the result scanned as untrusted tool output (injection, secrets, PII; redact or block) ->
//! the outcome inscribed in the ledger (hashes and finding locations, never the content): a
//! forwarded call's first record is written while the upstream works (see [`record`]).
//!
//! `tools/list` hides the tools that policy blocks for this caller whatever the arguments.
//!
//! Upstreams are isolated: each connects on its own, one that is down or slow is left out of
//! `tools/list` (which waits at most [`LIST_WAIT`] for one that is connecting, and sends
//! `notifications/tools/list_changed` when it connects later) and its calls
//! fail with `upstream_error`/`upstream_timeout`; the others go on. A broken connection is
//! re-established on the next use, by one attempt however many callers wait (see [`link`]).
//!
//! **Progress.** rmcp puts a progress token of its own on every request Warden sends an
//! upstream; the upstream's `notifications/progress` under that token are routed to the call
//! (by the connection's [`ClientHandler::on_progress`]) and relayed to the client under the
//! client's token, with their total and message, if the client sent a token (else dropped).
//! A held call's ticks come first (1, 2, ...); the upstream's values are then shifted past them
//! so the sequence keeps rising, as MCP requires (its total shifted alike); a value that would
//! not rise is dropped. Progress that arrives with the answer is relayed before it.
//!
//! **Cancellation.** When the client cancels (`notifications/cancelled`, seen as the request's
//! cancellation token), Warden stops waiting and sends `notifications/cancelled` with the
//! upstream's request id to the upstream (over stdio or HTTP alike, through rmcp's
//! `RequestHandle::cancel`); a call that times out is cancelled upstream the same way. The
//! call's outcome is `cancelled` (in its `mcp.tool_result` record if it was forwarded, else in
//! its `mcp.tool_call` record), with a `cancellation` object: `by: client`,
//! the stage (`held` for a call waiting on the Decision Desk, which the upstream never saw;
//! `before_forwarding`; `forwarded`), and for a forwarded call the upstream's request id and
//! whether the notification was handed to the upstream's transport (`upstream_notified`).
//! Whether the upstream then stops is up to the upstream; its late answer is discarded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock,
    ProgressNotificationParam, ProgressToken, ServerResult, Tool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RunningService, ServiceError,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, RoleServer, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::Instrument;
use warden_governance::{Decisions, Principal, Scope};
use warden_guardians::{Action, Channel, Guardians, JsonFinding};
use warden_ledger::{Entry, Ledger};
use warden_policy::{Input, LivePolicySet, Outcome};

use crate::error::{McpError, ToolError};

mod link;
mod record;

pub(crate) use link::Pending;

/// Separates the upstream's name from its tool's in a federated tool name.
pub const SEPARATOR: &str = "__";

/// How to reach one upstream MCP server. `Debug` leaves out the values of `env` and `headers`
/// (credentials, already expanded from the environment).
#[derive(Clone, PartialEq)]
pub enum UpstreamTransport {
    /// A command Warden starts, speaking MCP on its stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// A streamable-HTTP endpoint, with headers sent on every request (e.g. its credentials).
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for UpstreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs
                .iter()
                .map(|(k, _)| format!("{k}: <redacted>"))
                .collect()
        };
        match self {
            UpstreamTransport::Stdio { command, args, env } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &names(env))
                .finish(),
            UpstreamTransport::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field("headers", &names(headers))
                .finish(),
        }
    }
}

/// One upstream MCP server.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamSpec {
    /// Prefix of its tools (`github` -> `github__create_issue`): letters, digits, `-`.
    pub name: String,
    pub transport: UpstreamTransport,
}

/// What an `escalate` verdict does to a tool call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscalationMode {
    /// Refuse at once with the Decision Desk thread id (`escalation_pending`).
    Fail,
    /// Hold the call, notifying progress, until the thread is resolved or this much time passes.
    Hold(Duration),
}

/// The proxy's behaviour.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub escalation: EscalationMode,
    /// How long an upstream may take to connect, list its tools, or answer one call.
    pub call_timeout: Duration,
    /// Wait until the call's ledger record is on stable storage before answering (else until it
    /// has its place and hash).
    pub durable: bool,
    /// When the policy check or the call's ledger record cannot be made: let the call through
    /// and record that the check did not run (`true`), or refuse it (`false`, the default).
    pub fail_open: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            escalation: EscalationMode::Hold(Duration::from_secs(300)),
            call_timeout: Duration::from_secs(60),
            durable: true,
            fail_open: false,
        }
    }
}

type Client = RunningService<RoleClient, UpstreamHandler>;

struct Connected {
    client: Client,
    tools: Vec<Tool>,
    progress: Arc<ProgressRoutes>,
}

/// Warden's side of one upstream connection: it only routes the upstream's progress
/// notifications to the calls in flight.
#[derive(Clone)]
struct UpstreamHandler {
    progress: Arc<ProgressRoutes>,
}

impl ClientHandler for UpstreamHandler {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.progress.deliver(params);
    }
}

/// Progress notifications of one upstream, routed by the progress token rmcp put on each
/// request Warden sent it (one per request, never reused on a connection).
#[derive(Default)]
struct ProgressRoutes(std::sync::Mutex<Routes>);

#[derive(Default)]
struct Routes {
    calls: HashMap<ProgressToken, mpsc::Sender<ProgressNotificationParam>>,
    /// Notifications that found no call: sent before the call started listening (the
    /// upstream answered faster than Warden registered the token), or after it ended. The
    /// latest [`UNROUTED_KEPT`] are kept for the first case.
    unrouted: std::collections::VecDeque<ProgressNotificationParam>,
}

/// Unrouted progress notifications kept per upstream.
const UNROUTED_KEPT: usize = 64;
/// Progress notifications queued per call; more are dropped (progress is advisory).
const PROGRESS_QUEUE: usize = 64;

impl ProgressRoutes {
    fn deliver(&self, params: ProgressNotificationParam) {
        let mut routes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match routes.calls.get(&params.progress_token) {
            Some(tx) => {
                let _ = tx.try_send(params);
            }
            None => {
                if routes.unrouted.len() == UNROUTED_KEPT {
                    routes.unrouted.pop_front();
                }
                routes.unrouted.push_back(params);
            }
        }
    }

    /// Receives the notifications for `token` until the returned listener is dropped.
    fn listen(self: &Arc<Self>, token: &ProgressToken) -> ProgressListener {
        let (tx, rx) = mpsc::channel(PROGRESS_QUEUE);
        let mut routes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (early, rest): (Vec<_>, Vec<_>) = routes
            .unrouted
            .drain(..)
            .partition(|p| &p.progress_token == token);
        routes.unrouted.extend(rest);
        for p in early {
            let _ = tx.try_send(p);
        }
        routes.calls.insert(token.clone(), tx);
        ProgressListener {
            routes: self.clone(),
            token: token.clone(),
            rx,
        }
    }
}

struct ProgressListener {
    routes: Arc<ProgressRoutes>,
    token: ProgressToken,
    rx: mpsc::Receiver<ProgressNotificationParam>,
}

impl Drop for ProgressListener {
    fn drop(&mut self) {
        let mut routes = self.routes.0.lock().unwrap_or_else(|e| e.into_inner());
        routes.calls.remove(&self.token);
    }
}

/// The progress values a call reports to its client under the client's own token: first the
/// ticks of a held call (1, 2, ...), then the upstream's values shifted past them, so the
/// sequence keeps rising as MCP requires. A value that would not rise is dropped.
#[derive(Debug, Default)]
struct ProgressSeq {
    base: f64,
    last: Option<f64>,
}

impl ProgressSeq {
    /// The next tick of a held call.
    fn tick(&mut self) -> f64 {
        let v = self.last.map_or(1.0, |l| l.floor() + 1.0);
        self.base = v;
        self.last = Some(v);
        v
    }

    /// The upstream's `progress` (of `total`) as the client sees it, or `None` to drop it.
    fn upstream(&mut self, progress: f64, total: Option<f64>) -> Option<(f64, Option<f64>)> {
        let v = self.base + progress;
        if !v.is_finite() || self.last.is_some_and(|l| v <= l) {
            return None;
        }
        self.last = Some(v);
        Some((v, total.map(|t| self.base + t)))
    }
}

/// Sends a call's progress to its client, if the client asked for it with a token.
struct ProgressRelay<'a> {
    peer: &'a Peer<RoleServer>,
    token: Option<ProgressToken>,
    seq: ProgressSeq,
}

impl<'a> ProgressRelay<'a> {
    fn new(ctx: &'a RequestContext<RoleServer>) -> Self {
        ProgressRelay {
            peer: &ctx.peer,
            token: ctx.meta.get_progress_token(),
            seq: ProgressSeq::default(),
        }
    }

    async fn hold_tick(&mut self, message: String) {
        let Some(token) = &self.token else { return };
        let v = self.seq.tick();
        let _ = self
            .peer
            .notify_progress(ProgressNotificationParam::new(token.clone(), v).with_message(message))
            .await;
    }

    async fn upstream(&mut self, p: ProgressNotificationParam) {
        let Some(token) = &self.token else { return };
        let Some((v, total)) = self.seq.upstream(p.progress, p.total) else {
            return;
        };
        let mut out = ProgressNotificationParam::new(token.clone(), v);
        out.total = total;
        out.message = p.message;
        let _ = self.peer.notify_progress(out).await;
    }
}

/// How waiting for an upstream's answer ended.
enum Wait {
    Answered(Box<Result<ServerResult, ServiceError>>),
    Cancelled,
    TimedOut,
}

/// A call that passed every check before forwarding: where it goes, what it sends, and how its
/// progress reaches the client.
struct Cleared<'c> {
    conn: Arc<Connected>,
    request: CallToolRequestParams,
    relay: ProgressRelay<'c>,
}

/// How long Warden waits to hand a cancellation to an upstream.
const CANCEL_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest `tools/list` waits for an upstream that is (re)connecting (or `call_timeout`, if
/// shorter). The attempt goes on; a later listing includes the upstream once it has connected.
const LIST_WAIT: Duration = Duration::from_secs(3);

/// The upstream MCP servers behind `/mcp`.
pub struct Federation {
    upstreams: HashMap<String, Arc<link::Upstream>>,
    guardians: Arc<Guardians>,
    policies: Arc<LivePolicySet>,
    ledger: Arc<Ledger>,
    options: ProxyOptions,
}

/// Checks an upstream's name: it becomes part of tool names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.contains(SEPARATOR)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Federation {
    /// The federation of `upstreams`; each connects in the background, now, so the first call
    /// does not pay for it.
    pub fn start(
        upstreams: Vec<UpstreamSpec>,
        guardians: Arc<Guardians>,
        policies: Arc<LivePolicySet>,
        ledger: Arc<Ledger>,
        options: ProxyOptions,
    ) -> Result<Arc<Federation>, McpError> {
        let mut map = HashMap::new();
        for spec in upstreams {
            if !valid_name(&spec.name) {
                return Err(McpError::Upstream {
                    name: spec.name,
                    message: "a name is 1 to 64 of a-z, A-Z, 0-9, '-', '_' without '__'".into(),
                });
            }
            map.insert(spec.name.clone(), link::Upstream::new(spec));
        }
        let f = Arc::new(Federation {
            upstreams: map,
            guardians,
            policies,
            ledger,
            options,
        });
        for name in f.upstreams.keys() {
            let (f, name) = (f.clone(), name.clone());
            tokio::spawn(async move {
                if let Err(e) = f.connection(&name).await {
                    tracing::warn!(upstream = %name, "MCP upstream not reachable yet: {}", e.message);
                }
            });
        }
        Ok(f)
    }

    fn upstream(&self, name: &str) -> Result<&Arc<link::Upstream>, ToolError> {
        self.upstreams
            .get(name)
            .ok_or_else(|| ToolError::new("not_found", format!("no upstream {name}")))
    }

    /// The connection to `name`, (re)connecting if there is none.
    async fn connection(&self, name: &str) -> Result<Arc<Connected>, ToolError> {
        self.upstream(name)?
            .connection(self.options.call_timeout)
            .await
    }

    fn drop_connection(&self, name: &str) {
        if let Some(up) = self.upstreams.get(name) {
            up.closed();
        }
    }

    /// Whether `name` is a federated tool name (`upstream__tool` of a configured upstream).
    pub fn has_tool(&self, name: &str) -> bool {
        name.split_once(SEPARATOR)
            .is_some_and(|(up, _)| self.upstreams.contains_key(up))
    }

    fn input(
        &self,
        server: &str,
        tool: &str,
        arguments: &Value,
        p: &Principal,
        agent: &str,
    ) -> Input {
        Input {
            decision_type: "mcp.tool_call".into(),
            action: Some(format!("{server}{SEPARATOR}{tool}")),
            agent_id: Some(agent.to_owned()),
            tool: Some(tool.to_owned()),
            context: json!({
                "server": server, "tool": tool, "arguments": arguments,
                "caller": {"tenant": p.tenant, "key_id": p.key_id, "agent_id": agent},
            }),
        }
    }

    /// The upstreams' tools this caller may use: those policy does not block outright (judged
    /// with empty arguments). Upstreams are asked together; those that are down are left out,
    /// and the attempts still under way for those that may yet connect are returned with the
    /// tools (see [`notify_when_connected`]).
    pub(crate) async fn visible_tools(
        &self,
        _d: &Decisions,
        p: &Principal,
        agent: &str,
    ) -> (Vec<Tool>, Vec<Pending>) {
        let mut names: Vec<&String> = self.upstreams.keys().collect();
        names.sort();
        let wait = LIST_WAIT.min(self.options.call_timeout);
        let conns = futures_util::future::join_all(names.iter().map(|name| async move {
            self.upstream(name)
                .map_err(|e| (e, None))?
                .connection_or_pending(self.options.call_timeout, wait)
                .await
        }))
        .await;
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for (name, conn) in names.into_iter().zip(conns) {
            let conn = match conn {
                Ok(c) => c,
                Err((e, still)) => {
                    tracing::warn!(upstream = %name, "left out of tools/list: {}", e.message);
                    pending.extend(still);
                    continue;
                }
            };
            for t in &conn.tools {
                let input = self.input(name, &t.name, &json!({}), p, agent);
                if matches!(self.policies.evaluate(&input), Ok(e) if e.verdict == Outcome::Block) {
                    continue;
                }
                let mut t = t.clone();
                t.name = format!("{name}{SEPARATOR}{}", t.name).into();
                let description = t.description.clone().unwrap_or_default();
                t.description = Some(
                    format!("[via Warden, upstream {name}; governed and recorded] {description}")
                        .into(),
                );
                out.push(t);
            }
        }
        (out, pending)
    }

    /// One governed call; failures the agent should see are tool errors.
    /// Queues a record of a proxied call. When answers do not wait for durability, nobody
    /// waits for its fsync, so it may share one with the rest of `ledger.batched_window`.
    fn inscribe(
        &self,
        entry: Entry,
    ) -> Result<warden_ledger::Appending, warden_ledger::LedgerError> {
        if self.options.durable {
            self.ledger.enqueue(entry)
        } else {
            self.ledger.enqueue_lazy(entry)
        }
    }

    pub async fn call(
        &self,
        d: &Decisions,
        p: &Principal,
        agent: &str,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (server, tool) = request
            .name
            .split_once(SEPARATOR)
            .map(|(s, t)| (s.to_owned(), t.to_owned()))
            .unwrap_or_default();
        let span = tracing::info_span!("mcp.proxy", upstream = %server, tool = %tool, tenant = %p.tenant, key = %p.key_id);
        self.call_as(d, p, agent, server, tool, request, ctx)
            .instrument(span)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_as(
        &self,
        d: &Decisions,
        p: &Principal,
        agent: &str,
        server: String,
        tool: String,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let call_id = record::call_id(&server, &tool, &p.key_id);
        let mut call = json!({
            "call_id": call_id, "server": server, "tool": tool, "agent_id": agent,
            "key_id": p.key_id,
        });
        let cleared = match self
            .clear(d, p, agent, &server, &tool, request, ctx, &mut call)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                record::refusal(&mut call, &e);
                record::announce(d, p, &call, None);
                let entry = Entry::new("mcp.tool_call", p.tenant.clone(), call);
                let place = record::settled(self.inscribe(entry), self.options.durable);
                return record::attach(place.await, e.into_result(), self.options.fail_open);
            }
        };

        call["outcome"] = json!("forwarded");
        let entry = Entry::new("mcp.tool_call", p.tenant.clone(), call.clone());
        let place = record::settled(self.inscribe(entry), self.options.durable);
        let mut ended = json!({"call_id": call_id, "server": server, "tool": tool});
        let started = std::time::Instant::now();
        let (answer, place) = tokio::join!(
            self.forward_and_inspect(&server, cleared, ctx, &mut ended),
            place
        );
        ended["latency_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
        let result = match answer {
            Ok(r) => {
                ended["outcome"] = json!("answered");
                r
            }
            Err(e) => {
                record::refusal(&mut ended, &e);
                e.into_result()
            }
        };
        if let Ok((index, _)) = &place {
            ended["request_index"] = json!(index);
        }
        record::announce(d, p, &call, Some(&ended));
        if let Err(e) = self.inscribe(Entry::new("mcp.tool_result", p.tenant.clone(), ended)) {
            tracing::error!(error = %e, call_id = %call_id, "the call's result was not inscribed");
        }
        record::attach(place, result, self.options.fail_open)
    }

    /// Everything before forwarding: scope, guardians on the arguments, policy, a hold for a
    /// human, the upstream and its tool. Fills the call's record as it goes.
    #[allow(clippy::too_many_arguments)]
    async fn clear<'c>(
        &self,
        d: &Decisions,
        p: &Principal,
        agent: &str,
        server: &str,
        tool: &str,
        mut request: CallToolRequestParams,
        ctx: &'c RequestContext<RoleServer>,
        record: &mut Value,
    ) -> Result<Cleared<'c>, ToolError> {
        if !p.allows(&Scope::Mcp) {
            return Err(ToolError::new("forbidden", "this key lacks the mcp scope"));
        }
        let arguments = Value::Object(request.arguments.take().unwrap_or_default());
        record["arguments_hash"] = json!(record::hash(&arguments));

        // Guardians over every string of the arguments.
        let scan = self.guardians.scan_json(&arguments, Channel::ToolArgs);
        record["checks"] = json!({"guardians": "ran"});
        record["argument_findings"] = record::findings(&scan.findings);
        if scan.blocked {
            return Err(ToolError::new(
                "blocked",
                "the arguments were blocked by Warden's guardians",
            )
            .with_reasons(record::guardian_reasons(&scan.findings)));
        }
        let arguments = scan.redacted;

        // Policy.
        let mut relay = ProgressRelay::new(ctx);
        let input = self.input(server, tool, &arguments, p, agent);
        let evaluation = match self.policies.evaluate(&input) {
            Ok(e) => {
                record["checks"]["policy"] = json!("ran");
                record["policy_hash"] = json!(e.policy_hash);
                Some(e)
            }
            Err(e) if self.options.fail_open => {
                tracing::warn!(error = %e, "mcp.tool_call policy could not run; fail_mode open lets the call through");
                record["checks"]["policy"] = json!("failed_open");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "mcp.tool_call policy could not run");
                record["checks"]["policy"] = json!("failed_closed");
                return Err(ToolError::new(
                    "policy_unavailable",
                    format!("the policy check could not run ({e}); the call was not made"),
                ));
            }
        };
        let verdict = evaluation.as_ref().map_or(Outcome::Allow, |e| e.verdict);
        record["verdict"] = json!(verdict.as_str());
        if let Some(evaluation) = &evaluation {
            record["reason_codes"] = json!(evaluation.reason_codes);
            match evaluation.verdict {
                Outcome::Allow | Outcome::Warn => {}
                Outcome::Block => {
                    return Err(ToolError::new(
                        "blocked",
                        format!("policy blocks {server}{SEPARATOR}{tool}"),
                    )
                    .with_reasons(evaluation.reason_codes.clone()))
                }
                Outcome::Escalate => {
                    let thread = self
                        .escalate(d, p, agent, &input, evaluation, ctx, &mut relay)
                        .await;
                    if let Err(e) = &thread {
                        if e.code == "cancelled" {
                            record["cancellation"] = record::cancellation("held", None);
                        }
                    }
                    let thread = thread?;
                    record["escalation_thread_id"] = json!(thread.0);
                    record["resolution"] = json!(thread.1);
                }
            }
        }

        let conn = self.connection(server).await?;
        if !conn.tools.iter().any(|t| t.name == tool) {
            return Err(ToolError::new(
                "not_found",
                format!("upstream {server} has no tool {tool}"),
            ));
        }
        if let Value::Object(o) = arguments {
            request.arguments = Some(o);
        }
        request.name = tool.to_owned().into();
        if ctx.ct.is_cancelled() {
            record["cancellation"] = record::cancellation("before_forwarding", None);
            return Err(cancelled_error());
        }
        Ok(Cleared {
            conn,
            request,
            relay,
        })
    }

    /// Forwards a cleared call and scans its result as untrusted text. Fills the result's
    /// record as it goes.
    async fn forward_and_inspect(
        &self,
        server: &str,
        cleared: Cleared<'_>,
        ctx: &RequestContext<RoleServer>,
        record: &mut Value,
    ) -> Result<CallToolResult, ToolError> {
        let Cleared {
            conn,
            request,
            mut relay,
        } = cleared;
        let mut result = self
            .forward(server, &conn, request, ctx, &mut relay, record)
            .await?;

        let mut found = Vec::new();
        let mut blocked = false;
        for block in &mut result.content {
            if let ContentBlock::Text(t) = block {
                let r = self.guardians.scan_text(&t.text, Channel::ToolOutput);
                blocked |= r.blocked;
                found.extend(r.findings.iter().map(|f| JsonFinding {
                    pointer: String::new(),
                    finding: f.clone(),
                }));
                if r.action == Some(Action::Redact) {
                    t.text = r.redacted;
                }
            }
        }
        if let Some(s) = result.structured_content.take() {
            let r = self.guardians.scan_json(&s, Channel::ToolOutput);
            blocked |= r.blocked;
            found.extend(r.findings);
            result.structured_content = Some(r.redacted);
        }
        record["result_findings"] = record::findings(&found);
        record["result_hash"] = json!(record::hash(
            &serde_json::to_value(&result.content).unwrap_or_default()
        ));
        if blocked {
            return Err(ToolError::new(
                "blocked",
                "the tool's result was blocked by Warden's guardians (untrusted tool output)",
            )
            .with_reasons(record::guardian_reasons(&found)));
        }
        if found.iter().any(|f| f.finding.action == Action::Redact) {
            record["redacted"] = json!(true);
        }
        Ok(result)
    }

    /// Opens a Decision Desk thread, then holds the call until it is resolved (or refuses at once,
    /// by configuration). Returns the thread and its resolution; `Err` unless approved.
    #[allow(clippy::too_many_arguments)]
    async fn escalate(
        &self,
        d: &Decisions,
        p: &Principal,
        agent: &str,
        input: &Input,
        evaluation: &warden_policy::Evaluation,
        ctx: &RequestContext<RoleServer>,
        relay: &mut ProgressRelay<'_>,
    ) -> Result<(String, String), ToolError> {
        let intent = d.ensure_agent_intent(&p.tenant, agent, None)?;
        let summary = json!({"action": input.action, "tool": input.tool, "context": input.context});
        let (_node, thread) =
            d.escalate_call(p, &intent, agent, "mcp.tool_call", &summary, evaluation)?;
        tracing::info!(thread = %thread, "tool call escalated to the Decision Desk");
        let pending = |thread: &str| {
            ToolError::new(
                "escalation_pending",
                format!("a human must approve this call on the Decision Desk: thread {thread}"),
            )
            .with_reasons(evaluation.reason_codes.clone())
        };
        let limit = match self.options.escalation {
            EscalationMode::Fail => return Err(pending(&thread)),
            EscalationMode::Hold(limit) => limit,
        };
        // The thread is read as the call's own tenant; the caller may hold only the mcp scope.
        let reader = Principal {
            tenant: p.tenant.clone(),
            key_id: p.key_id.clone(),
            scopes: vec![Scope::Read],
            agent: p.agent.clone(),
        };
        let started = tokio::time::Instant::now();
        loop {
            // Short waits, so a resolution made by another process is seen too.
            let slice = Duration::from_secs(1).min(limit.saturating_sub(started.elapsed()));
            let e = tokio::select! {
                e = d.wait_escalation(&reader, &thread, slice) => e?,
                _ = ctx.ct.cancelled() => return Err(cancelled_error()),
            };
            match e.status.as_str() {
                "APPROVE" => return Ok((thread, e.status)),
                "REJECT" => {
                    return Err(ToolError::new(
                        "rejected",
                        format!(
                            "a human rejected this call on the Decision Desk (thread {thread})"
                        ),
                    )
                    .with_reasons(evaluation.reason_codes.clone()))
                }
                _ => {}
            }
            if started.elapsed() >= limit {
                return Err(pending(&thread));
            }
            relay
                .hold_tick(format!(
                    "waiting for a human on the Decision Desk (thread {thread})"
                ))
                .await;
        }
    }

    /// Sends the call to the upstream and waits for its answer, relaying its progress to the
    /// client; if the client cancels or the call times out, tells the upstream to stop.
    async fn forward(
        &self,
        server: &str,
        conn: &Connected,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
        relay: &mut ProgressRelay<'_>,
        record: &mut Value,
    ) -> Result<CallToolResult, ToolError> {
        let upstream_error =
            |e: ServiceError| ToolError::new("upstream_error", format!("upstream {server}: {e}"));
        let mut handle = match conn
            .client
            .send_cancellable_request(
                ClientRequest::CallToolRequest(CallToolRequest::new(request)),
                PeerRequestOptions::no_options(),
            )
            .await
        {
            Ok(h) => h,
            Err(e) => {
                if conn.client.is_closed() {
                    self.drop_connection(server);
                }
                return Err(upstream_error(e));
            }
        };
        let mut progress = conn.progress.listen(&handle.progress_token);
        let deadline = tokio::time::sleep(self.options.call_timeout);
        tokio::pin!(deadline);
        let ended = loop {
            tokio::select! {
                r = &mut handle.rx => break Wait::Answered(Box::new(r.unwrap_or(Err(ServiceError::TransportClosed)))),
                Some(p) = progress.rx.recv() => relay.upstream(p).await,
                () = ctx.ct.cancelled() => break Wait::Cancelled,
                () = &mut deadline => break Wait::TimedOut,
            }
        };
        match ended {
            Wait::Answered(answer) => {
                // Progress that arrived with the answer still goes out before it.
                while let Ok(p) = progress.rx.try_recv() {
                    relay.upstream(p).await;
                }
                match *answer {
                    Ok(ServerResult::CallToolResult(r)) => Ok(r),
                    Ok(ServerResult::EmptyResult(_)) => Ok(CallToolResult::default()),
                    Ok(_) => Err(ToolError::new(
                        "upstream_error",
                        format!("upstream {server} answered tools/call with an unexpected result"),
                    )),
                    Err(e) => {
                        if conn.client.is_closed() {
                            self.drop_connection(server);
                        }
                        Err(upstream_error(e))
                    }
                }
            }
            Wait::Cancelled => {
                let id = handle.id.clone();
                let sent = tokio::time::timeout(
                    CANCEL_SEND_TIMEOUT,
                    handle.cancel(Some("cancelled by the client (relayed by Warden)".into())),
                )
                .await;
                let notified = matches!(sent, Ok(Ok(())));
                if !notified {
                    tracing::warn!(upstream = %server, "could not relay the cancellation to the upstream");
                }
                record["cancellation"] = record::cancellation("forwarded", Some((id, notified)));
                Err(cancelled_error())
            }
            Wait::TimedOut => {
                let _ = tokio::time::timeout(
                    CANCEL_SEND_TIMEOUT,
                    handle.cancel(Some(format!(
                        "Warden's call timeout ({:?}) passed",
                        self.options.call_timeout
                    ))),
                )
                .await;
                Err(ToolError::new(
                    "upstream_timeout",
                    format!(
                        "upstream {server} did not answer within {:?}",
                        self.options.call_timeout
                    ),
                ))
            }
        }
    }
}

async fn connect(spec: &UpstreamSpec) -> Result<Connected, String> {
    let progress = Arc::new(ProgressRoutes::default());
    let handler = UpstreamHandler {
        progress: progress.clone(),
    };
    let client: Client = match &spec.transport {
        UpstreamTransport::Stdio { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env.iter().cloned()).kill_on_drop(true);
            let transport = TokioChildProcess::new(cmd).map_err(|e| e.to_string())?;
            handler.serve(transport).await.map_err(|e| e.to_string())?
        }
        UpstreamTransport::Http { url, headers } => {
            let mut map = HashMap::new();
            for (k, v) in headers {
                let k = axum::http::HeaderName::try_from(k.as_str()).map_err(|e| e.to_string())?;
                let v = axum::http::HeaderValue::try_from(v.as_str()).map_err(|e| e.to_string())?;
                map.insert(k, v);
            }
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map);
            handler
                .serve(StreamableHttpClientTransport::from_config(config))
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let tools = client.list_all_tools().await.map_err(|e| e.to_string())?;
    Ok(Connected {
        client,
        tools,
        progress,
    })
}

fn cancelled_error() -> ToolError {
    ToolError::new("cancelled", "the client cancelled the call")
}

/// Tells a client whose `tools/list` left out an upstream that was still connecting that the
/// list has changed, once one of those upstreams connects (then it lists again and sees its
/// tools). Clients that talk the stateless revision (no `initialize`) have no channel for an
/// unsolicited notification and are not told.
pub(crate) fn notify_when_connected(pending: Vec<Pending>, peer: rmcp::Peer<RoleServer>) {
    if pending.is_empty() || peer.peer_info().is_none() {
        return;
    }
    tokio::spawn(async move {
        let attempts = pending.into_iter().map(|p| Box::pin(p.connected()));
        if futures_util::future::select_ok(attempts).await.is_ok() {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "tools/list_changed not delivered");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;

    #[test]
    fn debug_output_names_credentials_without_their_values() {
        let http = UpstreamTransport::Http {
            url: "https://mcp.example.com/mcp".into(),
            headers: vec![("Authorization".into(), "Bearer ghp_secretvalue".into())],
        };
        let stdio = UpstreamTransport::Stdio {
            command: "./tools".into(),
            args: vec![],
            env: vec![("API_TOKEN".into(), "tok_secretvalue".into())],
        };
        for shown in [format!("{http:?}"), format!("{stdio:?}")] {
            assert!(!shown.contains("secretvalue"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    fn token(n: i64) -> ProgressToken {
        ProgressToken(NumberOrString::Number(n))
    }

    #[test]
    fn upstream_progress_passes_unchanged_when_the_call_was_not_held() {
        let mut seq = ProgressSeq::default();
        assert_eq!(seq.upstream(0.0, Some(3.0)), Some((0.0, Some(3.0))));
        assert_eq!(seq.upstream(1.0, Some(3.0)), Some((1.0, Some(3.0))));
        assert_eq!(seq.upstream(2.5, None), Some((2.5, None)));
    }

    #[test]
    fn upstream_progress_after_a_hold_keeps_rising() {
        let mut seq = ProgressSeq::default();
        assert_eq!((seq.tick(), seq.tick(), seq.tick()), (1.0, 2.0, 3.0));
        // 0 of 4 would be 3 again: not a rise, dropped.
        assert_eq!(seq.upstream(0.0, Some(4.0)), None);
        assert_eq!(seq.upstream(1.0, Some(4.0)), Some((4.0, Some(7.0))));
        assert_eq!(seq.upstream(4.0, Some(4.0)), Some((7.0, Some(7.0))));
    }

    #[test]
    fn progress_that_does_not_rise_is_dropped() {
        let mut seq = ProgressSeq::default();
        assert!(seq.upstream(2.0, None).is_some());
        assert_eq!(seq.upstream(2.0, None), None);
        assert_eq!(seq.upstream(1.0, None), None);
        assert_eq!(seq.upstream(f64::NAN, None), None);
        assert_eq!(seq.upstream(3.0, None), Some((3.0, None)));
    }

    #[tokio::test]
    async fn progress_goes_to_the_call_of_its_token_even_if_it_came_first() {
        let routes = Arc::new(ProgressRoutes::default());
        // The upstream was quicker than Warden: token 2's first notification has no call yet.
        routes.deliver(ProgressNotificationParam::new(token(2), 1.0));
        routes.deliver(ProgressNotificationParam::new(token(9), 1.0));
        let mut two = routes.listen(&token(2));
        let mut three = routes.listen(&token(3));
        routes.deliver(ProgressNotificationParam::new(token(3), 5.0));
        routes.deliver(ProgressNotificationParam::new(token(2), 2.0));
        assert_eq!(two.rx.recv().await.unwrap().progress, 1.0);
        assert_eq!(two.rx.recv().await.unwrap().progress, 2.0);
        assert_eq!(three.rx.recv().await.unwrap().progress, 5.0);
        assert!(two.rx.try_recv().is_err() && three.rx.try_recv().is_err());
        // A call that ended no longer receives; what is left unrouted stays bounded.
        drop(two);
        for i in 0..200 {
            routes.deliver(ProgressNotificationParam::new(token(2), f64::from(i)));
        }
        let r = routes.0.lock().unwrap();
        assert!(!r.calls.contains_key(&token(2)) && r.calls.contains_key(&token(3)));
        assert_eq!(r.unrouted.len(), UNROUTED_KEPT);
    }
}
